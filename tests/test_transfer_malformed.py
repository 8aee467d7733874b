"""ssechat.transfer.detect.parse_any against malformed exports of every supported format:
truncated bytes, wrong types and deleted keys at random paths, cycles, missing parents, huge
strings, random JSON and random bytes. Each either raises ``ImportFormatError`` (a 400 naming
where) or returns conversations the store can take; never any other exception. Where a fault
must be refused (a cycle, a missing parent, a huge text that is imported), the test says so."""

from __future__ import annotations

import copy
import io
import json
import math
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssechat.transfer.detect import MAX_ANSWER_CHARS, check_limits, parse_any
from ssechat.transfer.librechat import MAX_EPOCH, NO_PARENT
from ssechat.transfer.model import ImportedConversation, ImportFormatError

from .test_transfer_detect import ours_document

FIXTURES = Path("/work/shared/fixtures/chat-exports")
DOCUMENTS: dict[str, Any] = {
    path.name: json.loads(path.read_bytes()) for path in sorted(FIXTURES.glob("*.json"))
}
DOCUMENTS["ours"] = ours_document()
NAMES = sorted(DOCUMENTS)
ROLES = {"system", "user", "assistant"}
STATUSES = {"complete", "length", "stopped", "error", "interrupted"}

Path_ = tuple[str | int, ...]


def paths(value: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every path into a JSON value (the root excluded)."""
    found: list[Path_] = []
    if isinstance(value, dict):
        items: list[tuple[str | int, Any]] = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return found
    for key, child in items:
        found.append((*prefix, key))
        found.extend(paths(child, (*prefix, key)))
    return found


PATHS = {name: paths(document) for name, document in DOCUMENTS.items()}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=8,
)


def outcome(data: bytes) -> list[ImportedConversation] | ImportFormatError:
    """What ``parse_any`` gives: conversations checked here to be ones the store can take, or
    the refusal. Any other exception fails the test."""
    try:
        conversations = parse_any(data)
    except ImportFormatError as error:
        refusal = error
    else:
        refusal = None
    if refusal is not None:
        assert refusal.status_code == 400
        assert refusal.where
        assert refusal.where in refusal.message
        return refusal
    assert isinstance(conversations, list)
    check_limits(conversations)  # unique ids, parents first, current leaf known, lengths, NUL
    for conversation in conversations:
        assert isinstance(conversation.source_id, str)
        assert conversation.title is None or isinstance(conversation.title, str)
        for time in (conversation.created_at, conversation.updated_at):
            assert time is None or (math.isfinite(time) and 0 <= time <= MAX_EPOCH)
        for message in conversation.messages:
            assert message.role in ROLES
            assert message.status in STATUSES
            assert isinstance(message.content, str)
            assert message.created_at is None or math.isfinite(message.created_at)
    return conversations


def refused(data: bytes) -> ImportFormatError:
    result = outcome(data)
    assert isinstance(result, ImportFormatError), "a malformed file was imported"
    return result


def dumps(value: Any) -> bytes:
    # The standard library's writer: orjson would refuse integers past 64 bits, which a file
    # may hold (and the parser must then refuse, or read as floats).
    return json.dumps(value).encode()


def setting(document: Any, path: Path_, value: Any) -> Any:
    """A copy of ``document`` with ``value`` at ``path``."""
    changed = copy.deepcopy(document)
    target = changed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return changed


def zipped(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("conversations.json", data)
    return buffer.getvalue()


def test_every_document_is_valid_before_it_is_broken() -> None:
    # Otherwise the properties below would prove nothing: a refusal must come from the fault.
    for name in NAMES:
        result = outcome(dumps(DOCUMENTS[name]))
        assert isinstance(result, list)
        assert result


SLOW = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SLOW
@given(name=st.sampled_from(NAMES), cut=st.floats(min_value=0, max_value=1, exclude_max=True))
def test_truncated_files_are_refused(name: str, cut: float) -> None:
    data = dumps(DOCUMENTS[name])
    refused(data[: int(len(data) * cut)])


@SLOW
@given(cut=st.floats(min_value=0, max_value=1, exclude_max=True))
def test_truncated_zips_are_refused(cut: float) -> None:
    data = zipped(dumps(DOCUMENTS["chatgpt-librechat-tree.json"]))
    refused(data[: int(len(data) * cut)])


# Found by the property below: a ``content_type`` that is a list or an object once raised
# TypeError ("unhashable type") instead of a 400.
def test_a_content_type_of_the_wrong_type_is_refused() -> None:
    mapping = TREE_CHATGPT[0]["mapping"]
    node = next(key for key, value in mapping.items() if value["message"])
    path = (0, "mapping", node, "message", "content", "content_type")
    refused(dumps(setting(TREE_CHATGPT, path, ["text"])))


@SLOW
@given(name=st.sampled_from(NAMES), where=st.integers(min_value=0), value=json_values)
def test_a_wrong_value_at_any_path_is_refused_or_imported_safely(
    name: str, where: int, value: Any
) -> None:
    path = PATHS[name][where % len(PATHS[name])]
    outcome(dumps(setting(DOCUMENTS[name], path, value)))


@SLOW
@given(name=st.sampled_from(NAMES), where=st.integers(min_value=0))
def test_a_key_deleted_anywhere_is_refused_or_imported_safely(name: str, where: int) -> None:
    path = PATHS[name][where % len(PATHS[name])]
    document = copy.deepcopy(DOCUMENTS[name])
    target = document
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    outcome(dumps(document))


@SLOW
@given(value=json_values)
def test_random_json_is_refused_or_imported_safely(value: Any) -> None:
    outcome(dumps(value))


@SLOW
@given(messages=st.lists(json_values, max_size=5), mapping=json_values)
def test_near_misses_of_each_shape_are_refused_or_imported_safely(
    messages: list[Any], mapping: Any
) -> None:
    outcome(dumps({"conversationId": "c", "messages": messages}))
    outcome(dumps([{"mapping": mapping, "title": "t"}]))
    outcome(dumps({"format": "ssechat-export", "version": 1, "conversations": messages}))


@SLOW
@given(data=st.binary(max_size=200))
def test_random_bytes_are_refused_or_imported_safely(data: bytes) -> None:
    outcome(data)
    outcome(b"PK\x03\x04" + data)


# --- faults that must be refused ------------------------------------------------------------


def descendants(parents: dict[str, str | None], node: str) -> set[str]:
    """``node`` and everything below it, from a plain child -> parent table."""
    found = {node}
    changed = True
    while changed:
        changed = False
        for child, parent in parents.items():
            if parent in found and child not in found:
                found.add(child)
                changed = True
    return found


FLAT = DOCUMENTS["librechat-flat-branches.json"]
TREE_CHATGPT = DOCUMENTS["chatgpt-librechat-tree.json"]


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_cycle_in_a_librechat_flat_export_is_refused(data: st.DataObject) -> None:
    messages = FLAT["messages"]
    parents = {
        m["messageId"]: None if m["parentMessageId"] == NO_PARENT else m["parentMessageId"]
        for m in messages
    }
    index = data.draw(st.integers(0, len(messages) - 1))
    node = messages[index]["messageId"]
    below = data.draw(st.sampled_from(sorted(descendants(parents, node))))
    error = refused(dumps(setting(FLAT, ("messages", index, "parentMessageId"), below)))
    assert "cycle" in error.message


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_cycle_in_a_chatgpt_mapping_is_refused(data: st.DataObject) -> None:
    mapping = TREE_CHATGPT[0]["mapping"]
    parents = {key: node["parent"] for key, node in mapping.items()}
    node = data.draw(st.sampled_from(sorted(mapping)))
    below = data.draw(st.sampled_from(sorted(descendants(parents, node))))
    document = setting(TREE_CHATGPT, (0, "mapping", node, "parent"), below)
    # Both links, so that a parser reading either ``parent`` or ``children`` meets the cycle.
    document[0]["mapping"][below]["children"].append(node)
    refused(dumps(document))


@settings(max_examples=60, deadline=None)
@given(data=st.data(), missing=st.text(min_size=1, max_size=40))
def test_a_missing_parent_is_refused_in_every_format(data: st.DataObject, missing: str) -> None:
    flat_ids = {m["messageId"] for m in FLAT["messages"]}
    chatgpt_ids = set(TREE_CHATGPT[0]["mapping"])
    ours = DOCUMENTS["ours"]
    ours_ids = {m["id"] for m in ours["conversations"][0]["messages"]}
    if missing in flat_ids | chatgpt_ids | ours_ids | {NO_PARENT}:
        return  # not missing after all
    index = data.draw(st.integers(0, len(FLAT["messages"]) - 1))
    refused(dumps(setting(FLAT, ("messages", index, "parentMessageId"), missing)))

    node = data.draw(st.sampled_from(sorted(chatgpt_ids)))
    refused(dumps(setting(TREE_CHATGPT, (0, "mapping", node, "parent"), missing)))

    index = data.draw(st.integers(0, len(ours_ids) - 1))
    path = ("conversations", 0, "messages", index, "parent_id")
    refused(dumps(setting(ours, path, missing)))


HUGE = "x" * (MAX_ANSWER_CHARS + 1)  # over every limit, an answer's too


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_a_huge_text_is_refused_unless_it_is_in_a_skipped_message(data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(FLAT["messages"]) - 1))
    refused(dumps(setting(FLAT, ("messages", index, "text"), HUGE)))

    ours = DOCUMENTS["ours"]
    index = data.draw(st.integers(0, len(ours["conversations"][0]["messages"]) - 1))
    refused(dumps(setting(ours, ("conversations", 0, "messages", index, "content"), HUGE)))
    refused(dumps(setting(ours, ("conversations", 0, "title"), HUGE)))

    # ChatGPT: a kept message's text must be refused; a skipped one's (hidden system, tool) may
    # pass, but then nothing huge may come out (outcome() re-checks the limits).
    texts = [
        key
        for key, node in TREE_CHATGPT[0]["mapping"].items()
        if node["message"] and node["message"]["content"].get("parts")
    ]
    node = data.draw(st.sampled_from(texts))
    path = (0, "mapping", node, "message", "content", "parts", 0)
    result = outcome(dumps(setting(TREE_CHATGPT, path, HUGE)))
    if not isinstance(result, ImportFormatError):
        message = TREE_CHATGPT[0]["mapping"][node]["message"]
        assert message["author"]["role"] not in ("user", "assistant") or (
            message.get("recipient", "all") != "all"
        ), "a kept ChatGPT message's huge text was imported"


@pytest.mark.parametrize("name", NAMES)
def test_a_nul_character_in_a_text_is_refused(name: str) -> None:
    document = DOCUMENTS[name]
    if name == "ours":
        path: Path_ = ("conversations", 0, "messages", 0, "content")
    elif name.startswith("librechat"):
        path = ("messages", 0, "text")
    else:
        kept = next(
            key
            for key, node in document[0]["mapping"].items()
            if node["message"] and node["message"]["author"]["role"] == "user"
        )
        path = (0, "mapping", kept, "message", "content", "parts", 0)
    error = refused(dumps(setting(document, path, "a\x00b")))
    assert "NUL" in error.message
