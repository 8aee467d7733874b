"""ChatGPT's conversations.json into the neutral model, checked against values walked out of the
fixture files here the plain way (no code of the parser), and its refusals naming where."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from ssechat.transfer.chatgpt import parse_chatgpt
from ssechat.transfer.model import ImportFormatError
from ssechat.transfer.stream import zip_conversations

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "chat-exports"
FILES = ["chatgpt-librechat-tree.json", "chatgpt-librechat-export.json"]


def _visible(node: dict[str, Any]) -> bool:
    # The documented rule, written out plainly: text from user or assistant to everyone.
    message = node["message"]
    if message is None:
        return False
    content = message["content"]
    return (
        message["author"]["role"] in ("user", "assistant")
        and content["content_type"] == "text"
        and message.get("recipient", "all") == "all"
    )


def _expected(conversation: dict[str, Any]) -> dict[str, tuple[str | None, str, str]]:
    """Every kept message: id → (kept parent, role, text)."""
    mapping = conversation["mapping"]
    out = {}
    for key, node in mapping.items():
        if not _visible(node):
            continue
        parent = node["parent"]
        while parent is not None and not _visible(mapping[parent]):
            parent = mapping[parent]["parent"]
        message = node["message"]
        out[key] = (
            parent,
            message["author"]["role"],
            "\n".join(message["content"]["parts"]),
        )
    return out


@pytest.mark.parametrize("name", FILES)
def test_the_fixtures_tree_and_texts(name: str) -> None:
    data = json.loads((FIXTURES / name).read_text())
    parsed = parse_chatgpt(data)
    assert len(parsed) == len(data)
    for source, conversation in zip(data, parsed, strict=True):
        assert conversation.source == "chatgpt"
        assert conversation.source_id == source["conversation_id"]
        assert conversation.title == source["title"]
        assert conversation.created_at == source["create_time"]
        got = {m.id: (m.parent_id, m.role, m.content) for m in conversation.messages}
        assert got == _expected(source)
        seen: set[str] = set()
        for message in conversation.messages:  # parents first
            assert message.parent_id is None or message.parent_id in seen
            seen.add(message.id)
        assert conversation.current_leaf_id == source["current_node"]


def test_branches_interrupted_and_models() -> None:
    (source,) = json.loads((FIXTURES / FILES[0]).read_text())
    (conversation,) = parse_chatgpt([source])
    children: dict[str | None, int] = {}
    for message in conversation.messages:
        children[message.parent_id] = children.get(message.parent_id, 0) + 1
    assert sorted(n for n in children.values() if n > 1) == [2, 2]  # two branch points
    interrupted = [
        node["message"]["id"]
        for node in source["mapping"].values()
        if node["message"]
        and (node["message"]["metadata"].get("finish_details") or {}).get("type") == "interrupted"
    ]
    assert len(interrupted) == 1
    by_id = {m.id: m for m in conversation.messages}
    assert by_id[interrupted[0]].status == "interrupted"
    assistants = [m for m in conversation.messages if m.role == "assistant"]
    assert {m.model for m in assistants} == {source["default_model_slug"]}


def test_a_browsing_answer_follows_its_question() -> None:
    data = json.loads((FIXTURES / FILES[1]).read_text())
    conversation = parse_chatgpt(data)[0]
    by_id = {m.id: m for m in conversation.messages}
    for message in conversation.messages:
        if message.role == "assistant":
            assert by_id[message.parent_id or ""].role == "user"


def _one(mapping: dict[str, Any], **extra: Any) -> list[dict[str, Any]]:
    return [{"id": "c", "title": "t", "mapping": mapping, **extra}]


def _node(parent: str | None, text: str = "x", role: str = "user") -> dict[str, Any]:
    return {
        "parent": parent,
        "message": {
            "id": text,
            "author": {"role": role},
            "content": {"content_type": "text", "parts": [text]},
        },
    }


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"not": "a list"}, "$"),
        (["nope"], "$[0]"),
        (_one({"a": {"parent": "gone", "message": None}}), '$[0].mapping["a"].parent'),
        (_one({"a": _node("b", "a"), "b": _node("a", "b")}), "$[0].mapping"),
        (_one({"a": {"parent": 1}}), '$[0].mapping["a"].parent'),
        (_one({"a": _node(None)}, current_node="zz"), "$[0].current_node"),
        (_one({"a": {"parent": None, "message": {"id": "m", "author": {}}}}), ".author"),
    ],
    ids=["not-a-list", "not-an-object", "missing-parent", "cycle", "wrong-type", "leaf", "author"],
)
def test_refusals_name_where(data: Any, where: str) -> None:
    with pytest.raises(ImportFormatError) as caught:
        parse_chatgpt(data)
    assert where in str(caught.value)


def test_the_zip_member_and_its_absence() -> None:
    raw = (FIXTURES / FILES[0]).read_bytes()
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("export/conversations.json", raw)
    # The top-most member, wherever it sits, read as a stream.
    assert list(zip_conversations(io.BytesIO(packed.getvalue()))) == parse_chatgpt(json.loads(raw))
    empty = io.BytesIO()
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("user.json", "{}")
    with pytest.raises(ImportFormatError, match=r"no conversations\.json"):
        list(zip_conversations(io.BytesIO(empty.getvalue())))
    with pytest.raises(ImportFormatError, match="zip"):
        list(zip_conversations(io.BytesIO(b"PK\x03\x04 truncated")))
