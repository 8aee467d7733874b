"""Export and import over HTTP: our JSON (checked against its JSON Schema) and Markdown,
ChatGPT's conversations.json and zip, errors that say where, all or nothing, the size limit."""

from __future__ import annotations

import dataclasses
import io
import json
import sqlite3
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

import ssechat.transfer
from ssechat.api.transfer_schemas import ExportDocument
from ssechat.api.transfer_service import MAX_IMPORT_BYTES
from ssechat.config import Settings

from .api_support import api_client

pytestmark = pytest.mark.anyio

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "chat-exports"
SCHEMA = json.loads(
    (
        Path(ssechat.transfer.__file__).parent / "schema" / "ssechat-export-v1.schema.json"
    ).read_text()
)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=str(tmp_path / "chat.db"),
        demo_tokens_per_second=0,
        web_dir=str(tmp_path / "no-web"),
        auth="off",
        allowed_hosts="test",
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(settings) as client:
        yield client


async def _chat(client: httpx.AsyncClient) -> str:
    made = await client.post("/api/conversations", json={"title": "Two\nlines", "model": "demo"})
    conversation_id: str = made.json()["id"]
    for text in ("first question", "second question"):
        sent = await client.post(
            f"/api/conversations/{conversation_id}/messages",
            json={"content": text},
            headers={"Accept": "text/event-stream"},
        )
        assert sent.status_code == 200, sent.text
    return conversation_id


def _snapshot(settings: Settings) -> list[Any]:
    with sqlite3.connect(settings.database_url) as db:
        rows: list[Any] = []
        for table in ("conversations", "messages", "imports"):
            rows.append(db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall())
        return rows


async def test_export_json_is_valid_and_imports_back_as_the_same_document(
    client: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    conversation_id = await _chat(client)
    one = await client.get(f"/api/conversations/{conversation_id}/export")
    assert one.status_code == 200
    assert one.headers["content-disposition"].startswith("attachment;")
    document = one.json()
    jsonschema.validate(document, SCHEMA, cls=jsonschema.Draft202012Validator)
    ExportDocument.model_validate(document)
    (conversation,) = document["conversations"]
    detail = (await client.get(f"/api/conversations/{conversation_id}")).json()
    assert [m["id"] for m in conversation["messages"]] == [m["id"] for m in detail["messages"]]
    assert [m["content"] for m in conversation["messages"]] == [
        m["content"] for m in detail["messages"]
    ]
    everything = (await client.get("/api/export")).json()
    assert everything["conversations"] == document["conversations"]

    fresh = dataclasses.replace(settings, database_url=str(tmp_path / "fresh.db"))
    async with api_client(fresh) as other:
        imported = await other.post("/api/import", content=one.content)
        assert imported.json() == {
            "imported": 1,
            "skipped": 0,
            "conversations": [conversation_id],
        }
        again = (await other.get("/api/export")).json()
        assert again["conversations"] == document["conversations"]
        repeated = await other.post("/api/import", content=one.content)
        assert repeated.json() == {"imported": 0, "skipped": 1, "conversations": []}


async def test_markdown_export_shows_the_current_branch(client: httpx.AsyncClient) -> None:
    conversation_id = await _chat(client)
    detail = (await client.get(f"/api/conversations/{conversation_id}")).json()
    by_id = {m["id"]: m for m in detail["messages"]}
    branch, at = [], detail["current_leaf_id"]
    while at is not None:
        branch.append(by_id[at])
        at = by_id[at]["parent_id"]
    branch.reverse()
    answer = await client.get(
        f"/api/conversations/{conversation_id}/export", params={"format": "markdown"}
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/markdown")
    text = answer.text
    assert text.startswith("# Two lines\n")
    positions = [text.index(m["content"]) for m in branch]
    assert positions == sorted(positions)
    assert text.count("## You") == 2
    assert text.count("## Assistant (demo)") == 2


async def test_chatgpt_file_and_zip_import(client: httpx.AsyncClient) -> None:
    raw = (FIXTURES / "chatgpt-librechat-export.json").read_bytes()
    titles = [c["title"] for c in json.loads(raw)]
    answer = await client.post("/api/import", content=raw)
    assert answer.status_code == 200, answer.text
    assert answer.json()["imported"] == 2
    listed = (await client.get("/api/conversations")).json()["conversations"]
    assert sorted(c["title"] for c in listed) == sorted(titles)

    tree = (FIXTURES / "chatgpt-librechat-tree.json").read_bytes()
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("conversations.json", tree)
        archive.writestr("chat.html", "<html></html>")
    answer = await client.post(
        "/api/import", content=packed.getvalue(), headers={"Content-Type": "application/zip"}
    )
    assert answer.json()["imported"] == 1
    # The same conversations.json on its own is the same conversation: skipped.
    assert (await client.post("/api/import", content=tree)).json()["skipped"] == 1


@pytest.mark.parametrize(
    ("body", "where"),
    [
        # Streaming, the first fault met is the one named: here the end comes too soon.
        (b'[{"id": "t", "mapping": {"a": {"parent": null, "message": null}}}', "byte"),
        (
            json.dumps(
                [
                    {"id": "c", "mapping": {}},
                    {
                        "id": "d",
                        "mapping": {
                            "a": {"parent": "b", "message": None},
                            "b": {"parent": "a", "message": None},
                        },
                    },
                ]
            ).encode(),
            "$[2].mapping",
        ),
        (json.dumps([{"id": "c", "mapping": {"a": {"parent": 3}}}]).encode(), ".parent"),
        (b'{"hello": "world"}', "$"),
    ],
    ids=["truncated", "cycle", "wrong-type", "unknown-format"],
)
async def test_a_malformed_file_gets_400_saying_where_and_imports_nothing(
    client: httpx.AsyncClient, settings: Settings, body: bytes, where: str
) -> None:
    good = (FIXTURES / "chatgpt-librechat-export.json").read_bytes()
    await client.post("/api/import", content=good)
    before = _snapshot(settings)
    # A good conversation not imported yet, with the bad ones after it: none of it is written.
    if body.startswith(b"[{") and body.endswith(b"]"):
        fresh = json.loads((FIXTURES / "chatgpt-librechat-tree.json").read_bytes())
        body = json.dumps([*fresh, *json.loads(body)]).encode()
    answer = await client.post("/api/import", content=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_request"
    assert where in error["message"]
    assert _snapshot(settings) == before


async def test_a_zip_without_conversations_json_is_refused(client: httpx.AsyncClient) -> None:
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("chat.html", "<html></html>")
    answer = await client.post("/api/import", content=packed.getvalue())
    assert answer.status_code == 400
    assert "conversations.json" in answer.json()["error"]["message"]


async def test_a_file_over_the_limit_is_413_before_it_is_read(client: httpx.AsyncClient) -> None:
    sent: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        for _ in range(MAX_IMPORT_BYTES // (1 << 20) + 2):
            sent.append(1)
            yield b" " * (1 << 20)

    answer = await client.post("/api/import", content=body())  # chunked: no length first
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "payload_too_large"
    declared = await client.post(
        "/api/import", content=b"[]", headers={"Content-Length": str(MAX_IMPORT_BYTES + 1)}
    )
    assert declared.status_code == 413


async def test_another_users_conversation_is_not_found_for_export(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.get("/api/conversations/0123456789abcdef0123456789abcdef/export")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"
