"""Our export document: built from records, valid against its JSON Schema, parsed back field
for field, and refused with where when it is wrong."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import ssechat.transfer
from ssechat.store.models import Conversation, Message
from ssechat.transfer.markdown import render_markdown
from ssechat.transfer.model import ImportFormatError
from ssechat.transfer.ours import build_document, parse_ours

SCHEMA = json.loads(
    (
        Path(ssechat.transfer.__file__).parent / "schema" / "ssechat-export-v1.schema.json"
    ).read_text()
)


def _message(id: str, parent: str | None, role: str, content: str, **extra: Any) -> Message:
    fields: dict[str, Any] = {
        "conversation_id": "c" * 32,
        "status": "complete",
        "model": "m" if role == "assistant" else None,
        "finish_reason": None,
        "usage": None,
        "created_at": 1_700_000_000.123456,
        "updated_at": 1_700_000_001.000001,
        **extra,
    }
    return Message(id=id, parent_id=parent, role=role, content=content, **fields)


CONVERSATION = Conversation(
    "c" * 32, "Title", "m", "Be brief.", "alice", 1.25, 2.5, "4" * 32, ("files/read",)
)
MESSAGES = [
    _message("1" * 32, None, "user", "hello"),
    _message("2" * 32, "1" * 32, "assistant", "first", usage={"prompt_tokens": 1}),
    _message(
        "3" * 32,
        "1" * 32,
        "assistant",
        "second",
        status="error",
        error="boom",
        reasoning="hmm",
        reasoning_seconds=0.5,
        tool_calls=[{"id": "t", "name": "n", "arguments": "{}", "offset": 0, "result": None}],
    ),
    _message("4" * 32, "3" * 32, "user", "more", status="complete"),
]


def _document() -> dict[str, Any]:
    return json.loads(json.dumps(build_document([(CONVERSATION, MESSAGES)], exported_at=9.0)))


def test_the_document_is_valid_and_parses_back_field_for_field() -> None:
    document = _document()
    jsonschema.validate(document, SCHEMA, cls=jsonschema.Draft202012Validator)
    (parsed,) = parse_ours(document)
    assert (parsed.source, parsed.source_id, parsed.title) == ("ssechat", "c" * 32, "Title")
    assert (parsed.created_at, parsed.updated_at) == (1.25, 2.5)
    assert parsed.tools == ["files/read"]
    assert parsed.current_leaf_id == "4" * 32
    for source, message in zip(MESSAGES, parsed.messages, strict=True):
        for name in (
            "id", "parent_id", "role", "content", "status", "model", "usage", "error",
            "reasoning", "reasoning_seconds", "tool_calls", "created_at", "updated_at",
        ):  # fmt: skip
            assert getattr(message, name) == getattr(source, name), name


def _broken(change: Any) -> dict[str, Any]:
    document = copy.deepcopy(_document())
    change(document)
    return document


@pytest.mark.parametrize(
    ("document", "where"),
    [
        (_broken(lambda d: d.update(version=2)), "$.version"),
        (_broken(lambda d: d.update(format="x")), "$.format"),
        (
            _broken(lambda d: d["conversations"][0].update(messages={})),
            "$.conversations[0].messages",
        ),
        (
            _broken(lambda d: d["conversations"][0]["messages"][0].update(parent_id="4" * 32)),
            "$.conversations[0].messages[0].parent_id",
        ),
        (
            _broken(lambda d: d["conversations"][0]["messages"][1].update(role="tool")),
            "$.conversations[0].messages[1].role",
        ),
        (
            _broken(lambda d: d["conversations"][0]["messages"][1].update(created_at="now")),
            "$.conversations[0].messages[1].created_at",
        ),
        (
            _broken(lambda d: d["conversations"][0].update(current_leaf_id="9")),
            "$.conversations[0].current_leaf_id",
        ),
        (
            _broken(
                lambda d: d["conversations"][0]["messages"].append(
                    d["conversations"][0]["messages"][0]
                )
            ),
            "$.conversations[0].messages[4].id",
        ),
    ],
    ids=["newer", "format", "messages-type", "cycle", "role", "time", "leaf", "repeated"],
)
def test_refusals_name_where(document: dict[str, Any], where: str) -> None:
    with pytest.raises(ImportFormatError) as caught:
        parse_ours(document)
    assert caught.value.where == where


def test_streaming_comes_back_interrupted() -> None:
    document = _document()
    document["conversations"][0]["messages"][1]["status"] = "streaming"
    assert parse_ours(document)[0].messages[1].status == "interrupted"


def test_markdown_is_the_current_branch_only() -> None:
    text = render_markdown(CONVERSATION, MESSAGES)
    assert text.startswith("# Title\n")
    assert "Be brief." in text
    assert "first" not in text  # the other branch
    assert text.index("hello") < text.index("second") < text.index("more")
    assert "## Assistant (m) [error]" in text
