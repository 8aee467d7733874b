"""POST /api/import against malformed exports of every format, on the real app (in process, a
SQLite file), the body sent in random chunks: truncated at a random byte, a wrong type at a path
that must be typed, a cycle in ChatGPT's ``mapping``, a missing parent, a huge text, and each of
those after a valid conversation never imported before (all or nothing). Each gets a 4xx whose
message says what and where, and every table of the database is the same afterwards."""

from __future__ import annotations

import contextlib
import copy
import json
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx
import pytest
from anyio.from_thread import BlockingPortal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssechat.config import Settings
from ssechat.transfer.detect import MAX_ANSWER_CHARS

from .api_support import api_client
from .store_support import table_rows
from .test_transfer_malformed import DOCUMENTS, descendants, setting

CHATGPT = DOCUMENTS["chatgpt-librechat-tree.json"]  # a list of one conversation
LIBRECHAT = DOCUMENTS["librechat-flat-branches.json"]  # one conversation, flat
OURS = DOCUMENTS["ours"]

App = tuple[BlockingPortal, httpx.AsyncClient, Path]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    tmp = tmp_path_factory.mktemp("import-api")
    config = Settings(
        database_url=str(tmp / "chat.db"),
        demo_tokens_per_second=0,
        web_dir=str(tmp / "no-web"),
        auth="off",
        allowed_hosts="test",
    )
    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(api_client(config)) as client,
    ):
        # Something in every table an import writes, so that "unchanged" means something.
        first = portal.call(_post, client, json.dumps(CHATGPT).encode(), 1 << 20)
        assert first.status_code == 200, first.text
        assert first.json()["imported"] == 1
        yield portal, client, tmp / "chat.db"


async def _post(client: httpx.AsyncClient, body: bytes, chunk: int) -> httpx.Response:
    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(body), chunk):
            yield body[start : start + chunk]

    return await client.post("/api/import", content=pieces())


# --- faults, each one a file that must be refused ---------------------------------------------

wrong = st.one_of(
    st.integers(),
    st.lists(st.integers(), min_size=1, max_size=2),
    st.dictionaries(st.just("x"), st.integers(), min_size=1, max_size=1),
)
"""Values that are none of string, null or true/false: wrong at every path ``typed`` names."""

MESSAGE_NODES = sorted(k for k, node in CHATGPT[0]["mapping"].items() if node["message"])
KEPT_NODES = sorted(
    key
    for key, node in CHATGPT[0]["mapping"].items()
    if node["message"]
    and node["message"]["author"]["role"] in ("user", "assistant")
    and node["message"]["content"]["content_type"] == "text"
    and node["message"].get("recipient", "all") == "all"
)


def typed(data: st.DataObject) -> tuple[str, Any]:
    """A document with a wrong value at a path that must be a string, an object or a list."""
    node = data.draw(st.sampled_from(MESSAGE_NODES))
    flat = data.draw(st.integers(0, len(LIBRECHAT["messages"]) - 1))
    ours = data.draw(st.integers(0, len(OURS["conversations"][0]["messages"]) - 1))
    kind, document, path = data.draw(
        st.sampled_from(
            [
                ("chatgpt", CHATGPT, (0, "mapping")),
                ("chatgpt", CHATGPT, (0, "conversation_id")),
                ("chatgpt", CHATGPT, (0, "mapping", node, "parent")),
                ("chatgpt", CHATGPT, (0, "mapping", node, "message", "author")),
                ("chatgpt", CHATGPT, (0, "mapping", node, "message", "content")),
                ("librechat", LIBRECHAT, ("messages",)),
                ("librechat", LIBRECHAT, ("messages", flat, "messageId")),
                ("ours", OURS, ("conversations", 0, "id")),
                ("ours", OURS, ("conversations", 0, "messages", ours, "role")),
                ("ours", OURS, ("conversations", 0, "messages", ours, "content")),
            ]
        )
    )
    return kind, setting(document, path, data.draw(wrong))


def cycle(data: st.DataObject) -> tuple[str, Any]:
    mapping = CHATGPT[0]["mapping"]
    parents = {key: node["parent"] for key, node in mapping.items()}
    node = data.draw(st.sampled_from(sorted(mapping)))
    below = data.draw(st.sampled_from(sorted(descendants(parents, node))))
    document = setting(CHATGPT, (0, "mapping", node, "parent"), below)
    document[0]["mapping"][below]["children"].append(node)
    return "chatgpt", document


def missing_parent(data: st.DataObject) -> tuple[str, Any]:
    missing = "missing-" + uuid.uuid4().hex
    kind = data.draw(st.sampled_from(["chatgpt", "librechat", "ours"]))
    if kind == "chatgpt":
        node = data.draw(st.sampled_from(sorted(CHATGPT[0]["mapping"])))
        return kind, setting(CHATGPT, (0, "mapping", node, "parent"), missing)
    if kind == "librechat":
        index = data.draw(st.integers(0, len(LIBRECHAT["messages"]) - 1))
        return kind, setting(LIBRECHAT, ("messages", index, "parentMessageId"), missing)
    index = data.draw(st.integers(0, len(OURS["conversations"][0]["messages"]) - 1))
    return kind, setting(OURS, ("conversations", 0, "messages", index, "parent_id"), missing)


def huge(data: st.DataObject) -> tuple[str, Any]:
    text = "x" * (MAX_ANSWER_CHARS + data.draw(st.integers(1, 1000)))
    kind = data.draw(st.sampled_from(["chatgpt", "librechat", "ours"]))
    if kind == "chatgpt":
        node = data.draw(st.sampled_from(KEPT_NODES))
        path: tuple[Any, ...] = (0, "mapping", node, "message", "content", "parts", 0)
        return kind, setting(CHATGPT, path, text)
    if kind == "librechat":
        index = data.draw(st.integers(0, len(LIBRECHAT["messages"]) - 1))
        return kind, setting(LIBRECHAT, ("messages", index, "text"), text)
    index = data.draw(st.integers(0, len(OURS["conversations"][0]["messages"]) - 1))
    return kind, setting(OURS, ("conversations", 0, "messages", index, "content"), text)


def untouched(data: st.DataObject) -> tuple[str, Any]:
    """A valid document: only truncation (below) breaks it."""
    kind = data.draw(st.sampled_from(["chatgpt", "librechat", "ours"]))
    return kind, {"chatgpt": CHATGPT, "librechat": LIBRECHAT, "ours": OURS}[kind]


FAULTS: dict[str, Callable[[st.DataObject], tuple[str, Any]]] = {
    "wrong-type": typed,
    "cycle": cycle,
    "missing-parent": missing_parent,
    "huge": huge,
}


def after_a_fresh_conversation(kind: str, document: Any) -> Any:
    """``document`` with a valid conversation never imported before (a new id) coming first,
    which a non-atomic import would write before it met the fault."""
    fresh = uuid.uuid4().hex
    if kind == "chatgpt":
        valid = {**copy.deepcopy(CHATGPT[0]), "conversation_id": fresh, "id": fresh}
        return [valid, *document]
    if kind == "librechat":
        return [{**copy.deepcopy(LIBRECHAT), "conversationId": fresh}, document]
    valid = {**copy.deepcopy(OURS["conversations"][0]), "id": fresh}
    for message in valid["messages"]:  # new ids all through: the file's ids are kept if free
        message["id"] = message["id"] + fresh
        if message["parent_id"] is not None:
            message["parent_id"] = message["parent_id"] + fresh
    valid["current_leaf_id"] = valid["current_leaf_id"] + fresh
    return {**document, "conversations": [valid, *document["conversations"]]}


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    fault=st.sampled_from([*sorted(FAULTS), "truncated"]),
    fresh_first=st.booleans(),
    chunk=st.sampled_from([1 << 20, 65536, 4096, 777]),
    data=st.data(),
)
def test_a_malformed_export_gets_a_4xx_and_changes_nothing(
    app: App, fault: str, fresh_first: bool, chunk: int, data: st.DataObject
) -> None:
    portal, client, database = app
    kind, document = (untouched if fault == "truncated" else FAULTS[fault])(data)
    if fresh_first or fault == "truncated":
        document = after_a_fresh_conversation(kind, document)
    body = json.dumps(document).encode()
    if fault == "truncated":
        body = body[: data.draw(st.integers(0, len(body) - 1))]
    before = table_rows(database)
    answer = portal.call(_post, client, body, chunk)
    assert 400 <= answer.status_code < 500, answer.text
    error = answer.json()["error"]
    assert error["code"] in ("invalid_request", "payload_too_large")
    assert "(at " in error["message"]  # what, then where
    assert table_rows(database) == before


def test_the_fresh_conversations_would_be_imported(app: App) -> None:
    # Otherwise the property above proves no atomicity: a valid file with a fresh conversation
    # first is imported, that conversation included.
    portal, client, _ = app
    for kind, document in (("chatgpt", CHATGPT), ("librechat", LIBRECHAT), ("ours", OURS)):
        body = json.dumps(after_a_fresh_conversation(kind, document)).encode()
        answer = portal.call(_post, client, body, 4096)
        assert answer.status_code == 200, answer.text
        assert answer.json()["imported"] >= 1


def test_a_client_that_disconnects_mid_upload_leaves_nothing_behind(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    portal, client, database = app
    spools: list[Any] = []
    real = tempfile.TemporaryFile

    def tracked(*args: Any, **kwargs: Any) -> Any:
        spools.append(real(*args, **kwargs))
        return spools[-1]

    monkeypatch.setattr(tempfile, "TemporaryFile", tracked)  # what the service opens
    one = json.dumps(after_a_fresh_conversation("chatgpt", CHATGPT)[0]).encode()
    # Valid conversations (repeats of one, which the store would skip but the first), 3 MiB.
    body = b"[" + b",".join([one] * (3 * (1 << 20) // len(one))) + b"]"
    before = table_rows(database)
    asgi = client.app  # type: ignore[attr-defined]
    sent: list[dict[str, Any]] = []
    # The first half of the body (more than a piece: it reaches the spool file and the reader),
    # then the client is gone.
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": body[: len(body) // 2], "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/import",
        "raw_path": b"/api/import",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"test"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 1234),
        "server": ("test", 80),
    }

    async def call() -> None:
        with contextlib.suppress(Exception):
            await asgi(scope, receive, send)

    portal.call(call)
    assert not messages  # the body was read up to the disconnect
    assert len(spools) == 1
    assert spools[0].closed
    assert all(m.get("status", 200) != 200 for m in sent if m["type"] == "http.response.start")
    assert table_rows(database) == before
