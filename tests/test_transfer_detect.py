"""ssechat.transfer.detect: every fixture file, a ChatGPT zip and our own document go to their
parser; anything else is refused naming what is supported; and every format's result is held to
the same limits."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ssechat.transfer.chatgpt import parse_chatgpt
from ssechat.transfer.detect import (
    MAX_ANSWER_CHARS,
    SUPPORTED,
    check_limits,
    detect,
    parse_any,
)
from ssechat.transfer.librechat import parse_librechat
from ssechat.transfer.model import ImportedConversation, ImportedMessage, ImportFormatError

FIXTURES = Path("/work/shared/fixtures/chat-exports")
FILES = sorted(FIXTURES.glob("*.json"))


def ours_document() -> dict[str, Any]:
    """A small document of our own format: one conversation, an answer regenerated."""
    message = {
        "role": "user",
        "content": "Hi",
        "status": "complete",
        "model": None,
        "finish_reason": None,
        "usage": None,
        "error": None,
        "reasoning": None,
        "reasoning_seconds": None,
        "tool_calls": None,
        "created_at": 1700000000.5,
        "updated_at": 1700000000.5,
    }
    answer = {**message, "role": "assistant", "model": "demo", "finish_reason": "stop"}
    return {
        "format": "ssechat-export",
        "version": 1,
        "exported_at": 1700000100.0,
        "conversations": [
            {
                "id": "c1",
                "title": "Greeting",
                "model": "demo",
                "system_prompt": None,
                "tools": [],
                "created_at": 1700000000.5,
                "updated_at": 1700000001.0,
                "current_leaf_id": "a2",
                "messages": [
                    {**message, "id": "u1", "parent_id": None},
                    {**answer, "id": "a1", "parent_id": "u1", "content": "Hello"},
                    {**answer, "id": "a2", "parent_id": "u1", "content": "Hello again"},
                ],
            }
        ],
    }


def zipped(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
        archive.writestr("chat.html", b"<html></html>")
    return buffer.getvalue()


def expected_format(path: Path) -> str:
    # Named by SOURCES.md: the chatgpt-* files are ChatGPT's own export shape.
    return "chatgpt" if path.name.startswith("chatgpt-") else "librechat"


def test_every_fixture_file_is_covered() -> None:
    assert {p.name for p in FILES} == {
        "chatgpt-librechat-export.json",
        "chatgpt-librechat-tree.json",
        "librechat-flat-branches.json",
        "librechat-tree.json",
    }


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_each_fixture_goes_to_its_parser(path: Path) -> None:
    data = path.read_bytes()
    kind = detect(data)
    value = json.loads(data)
    assert kind == expected_format(path)
    conversations = parse_any(data)
    parser = parse_chatgpt if kind == "chatgpt" else parse_librechat
    assert conversations == parser(json.loads(data))
    assert {c.source for c in conversations} == {kind}
    assert len(conversations) == (len(value) if isinstance(value, list) else 1)


def test_a_chatgpt_zip_reads_its_conversations_json() -> None:
    data = (FIXTURES / "chatgpt-librechat-tree.json").read_bytes()
    archive = zipped("conversations.json", data)
    assert detect(archive) == "chatgpt-zip"
    assert parse_any(archive) == parse_chatgpt(json.loads(data))


def test_a_zip_without_conversations_json_is_refused() -> None:
    with pytest.raises(ImportFormatError, match=r"conversations\.json"):
        parse_any(zipped("other.json", b"[]"))


def test_a_zip_whose_conversations_json_is_not_chatgpts_is_refused() -> None:
    data = (FIXTURES / "librechat-tree.json").read_bytes()
    with pytest.raises(ImportFormatError, match="not a list of ChatGPT") as caught:
        parse_any(zipped("conversations.json", data))
    assert caught.value.where == "zip:conversations.json"


def test_our_own_document_goes_to_our_parser() -> None:
    document = ours_document()
    data = json.dumps(document).encode()
    assert detect(data) == "ssechat"
    (conversation,) = parse_any(data)
    assert conversation.source == "ssechat"
    assert [(m.id, m.parent_id) for m in conversation.messages] == [
        (m["id"], m["parent_id"]) for m in document["conversations"][0]["messages"]
    ]
    assert conversation.current_leaf_id == "a2"


def test_a_byte_order_mark_is_allowed_and_an_empty_list_imports_nothing() -> None:
    data = b"\xef\xbb\xbf" + (FIXTURES / "librechat-flat-branches.json").read_bytes()
    assert [c.source for c in parse_any(data)] == ["librechat"]
    assert parse_any(b" [] ") == []


@pytest.mark.parametrize(
    "data", [b"{}", b'{"a": 1}', b"[1, 2]", b'"text"', b"3", b"null", b'[{"title": "x"}]']
)
def test_json_of_no_known_shape_is_refused_naming_what_is_supported(data: bytes) -> None:
    with pytest.raises(ImportFormatError) as caught:
        parse_any(data)
    assert SUPPORTED in caught.value.message
    assert caught.value.where == "$"


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (b"", "$"),
        (b"  \n", "$"),
        # Inside the first conversation, which is named (a streaming reader knows it is open).
        (b'[{"a": [1, 2', "$[0], byte 12"),
        (b"\xff\xfe[]", "byte 0"),
        (b"[NaN]", "byte 1"),
    ],
)
def test_what_is_not_json_is_refused_with_the_byte_it_breaks_at(data: bytes, where: str) -> None:
    with pytest.raises(ImportFormatError) as caught:
        parse_any(data)
    assert caught.value.where == where
    assert caught.value.status_code == 400


def conversation(*messages: ImportedMessage, **fields: Any) -> ImportedConversation:
    base: dict[str, Any] = {
        "source": "x",
        "source_id": "c",
        "title": "t",
        "created_at": None,
        "updated_at": None,
    }
    return ImportedConversation(**{**base, **fields}, messages=list(messages))


USER = ImportedMessage(id="u", parent_id=None, role="user", content="hi")
ANSWER = ImportedMessage(id="a", parent_id="u", role="assistant", content="hello")


def test_the_limits_let_a_valid_conversation_through() -> None:
    check_limits([conversation(USER, ANSWER, current_leaf_id="a")], max_content_chars=2)


@pytest.mark.parametrize(
    ("item", "words"),
    [
        (conversation(replace(USER, content="abc")), "the text is 3 characters; the limit is 2"),
        (conversation(USER, replace(ANSWER, content="x" * (MAX_ANSWER_CHARS + 1))), "the text"),
        (conversation(USER, replace(ANSWER, reasoning="a\x00b")), "NUL"),
        (conversation(USER, replace(ANSWER, content="a\ud800b")), "lone surrogate"),
        (conversation(USER, title="x" * 201), "the title"),
        (conversation(USER, system_prompt="abc"), "the system prompt"),
        (conversation(USER, replace(ANSWER, model="m" * 201)), "the model"),
        (conversation(ANSWER, USER), "parent is not an earlier"),
        (conversation(USER, replace(ANSWER, id="u")), "appears twice"),
        (conversation(USER, current_leaf_id="gone"), "current message"),
    ],
)
def test_the_limits_refuse_naming_the_conversation_and_message(
    item: ImportedConversation, words: str
) -> None:
    with pytest.raises(ImportFormatError, match=words) as caught:
        check_limits([item], max_content_chars=2)
    assert caught.value.where.startswith("conversation 'c'")


def test_a_lone_surrogate_in_a_zip_is_refused() -> None:
    raw = json.loads((FIXTURES / "chatgpt-librechat-tree.json").read_bytes())
    user = next(
        node["message"]
        for node in raw[0]["mapping"].values()
        if node["message"] and node["message"]["author"]["role"] == "user"
    )
    user["content"]["parts"] = ["a\ud800b"]
    with pytest.raises(ImportFormatError, match="lone surrogate") as caught:
        parse_any(zipped("conversations.json", json.dumps(raw).encode()))
    # Found in the bytes, before yajl would make it "?": named by the member, the conversation
    # and the byte of its escape.
    data = json.dumps(raw).encode()
    at = data.index(b"\\ud800")
    assert caught.value.where == f"zip:conversations.json, $[0], byte {at}"


def test_a_huge_message_in_a_file_is_refused_by_parse_any() -> None:
    raw = json.loads((FIXTURES / "librechat-flat-branches.json").read_bytes())
    raw["messages"][0]["text"] = "x" * 100_001
    data = json.dumps(raw).encode()
    with pytest.raises(ImportFormatError, match="100001 characters") as caught:
        parse_any(data)
    assert raw["messages"][0]["messageId"] in caught.value.where
    # The server's own limit, when the service passes a larger one, lets it through.
    assert parse_any(data, max_content_chars=200_000)[0].messages[0].content == "x" * 100_001
