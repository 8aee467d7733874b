"""The store's export and import (``store.transfer``), on SQLite and PostgreSQL: a lossless round
trip, all-or-nothing imports, skipping what was imported before, owners kept apart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ssechat.errors import InvalidRequestError, NotFoundError
from ssechat.store import Store, open_store
from ssechat.transfer.chatgpt import parse_chatgpt
from ssechat.transfer.model import ImportedConversation, ImportedMessage
from ssechat.transfer.ours import build_document, parse_ours

from .services import PostgresServer
from .store_support import Database, Ticker

pytestmark = pytest.mark.anyio

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "chat-exports"
CALLS = [
    {
        "id": "call_1",
        "name": "files__read",
        "arguments": '{"path": "a"}',
        "server": "files",
        "tool": "read",
        "approval": "ask",
        "decision": "approved",
        "offset": 3,
        "result": {"content": "text", "is_error": False},
    }
]


async def _rich_conversation(store: Store, owner: str) -> str:
    """A conversation with two branches, reasoning, usage, tool calls, an error and tools."""
    conversation = await store.create_conversation(
        owner=owner, title="Rich", system_prompt="Be brief.", tools=["files/read"]
    )
    first = await store.start_exchange(
        conversation.id, owner=owner, user_content="hello", model="m1"
    )
    await store.update_message(
        first.answer.id,
        content="hi there",
        status="complete",
        finish_reason="stop",
        usage={"prompt_tokens": 3, "completion_tokens": 2},
        reasoning="think",
        reasoning_seconds=0.125,
        tool_calls=CALLS,
    )
    again = await store.start_answer(first.answer.id, owner=owner, model="m2")
    await store.update_message(again.answer.id, content="oops", status="error", error="boom")
    await store.start_exchange(
        conversation.id, owner=owner, parent_id=first.answer.id, user_content="more", model="m1"
    )  # left streaming: exported as is
    await store.update_conversation(conversation.id, owner=owner, current_leaf_id=again.answer.id)
    return conversation.id


def _document(exported: Any) -> dict[str, Any]:
    # Through JSON text, as the API sends it.
    return json.loads(json.dumps(build_document(exported, exported_at=1.5)))


async def test_export_holds_every_message_and_field(store: Store) -> None:
    conversation_id = await _rich_conversation(store, "alice")
    (pair,) = await store.export_conversations(owner="alice", conversation_id=conversation_id)
    conversation, messages = pair
    assert conversation.id == conversation_id
    assert messages == await store.list_messages(conversation_id, owner="alice")
    assert len(messages) == 5
    assert {m.status for m in messages} == {"complete", "error", "streaming"}


async def test_round_trip_into_a_fresh_database_gives_the_same_document(
    store: Store, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    await _rich_conversation(store, "alice")
    await _rich_conversation(store, "alice")
    document = _document(await store.export_conversations(owner="alice"))
    assert len(document["conversations"]) == 2
    # The streaming answer comes back interrupted (as after a restart): the one field that moves.
    for conversation in document["conversations"]:
        for message in conversation["messages"]:
            if message["status"] == "streaming":
                message["status"] = "interrupted"
    if backend == "sqlite":
        other: Database = tmp_path / "fresh.db"
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        name = server.create_database()
        request.addfinalizer(lambda: server.drop_database(name))
        other = server.url(name)
    async with await open_store(other, clock=Ticker(2_000_000_000.0)) as fresh:
        ids, skipped = await fresh.import_conversations(parse_ours(document), owner="bob")
        assert skipped == 0
        assert ids == [c["id"] for c in document["conversations"]]
        again = _document(await fresh.export_conversations(owner="bob"))
    assert again == document


async def test_round_trip_within_one_database_kept_ids_or_new_ones(store: Store) -> None:
    # Imported back into the database it came from, by another user: the ids are taken, so the
    # copy gets new ones, and is the same document once ids are mapped.
    await _rich_conversation(store, "alice")
    document = _document(await store.export_conversations(owner="alice"))
    for message in document["conversations"][0]["messages"]:
        if message["status"] == "streaming":
            message["status"] = "interrupted"
    ids, skipped = await store.import_conversations(parse_ours(document), owner="bob")
    assert (len(ids), skipped) == (1, 0)
    copy = _document(await store.export_conversations(owner="bob"))
    original = document["conversations"][0]
    (imported,) = copy["conversations"]
    assert imported["id"] == ids[0] != original["id"]
    mapping = {original["id"]: imported["id"]}
    mapping.update(
        zip(
            [m["id"] for m in original["messages"]],
            [m["id"] for m in imported["messages"]],
            strict=True,
        )
    )
    assert set(mapping) & set(mapping.values()) == set()

    def renamed(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: renamed(v) for k, v in value.items()}
        if isinstance(value, list):
            return [renamed(v) for v in value]
        return mapping.get(value, value) if isinstance(value, str) else value

    assert renamed(original) == imported
    # The owner already has her own conversation: importing it for her skips it.
    assert await store.import_conversations(parse_ours(document), owner="alice") == ([], 1)


async def test_import_again_skips_what_it_brought(store: Store) -> None:
    data = json.loads((FIXTURES / "chatgpt-librechat-export.json").read_text())
    ids, skipped = await store.import_conversations(parse_chatgpt(data), owner="alice")
    assert (len(ids), skipped) == (2, 0)
    assert await store.import_conversations(parse_chatgpt(data), owner="alice") == ([], 2)
    # Another user's import is theirs: nothing skipped, nothing shared.
    theirs, skipped = await store.import_conversations(parse_chatgpt(data), owner="bob")
    assert (len(theirs), skipped) == (2, 0)
    assert set(theirs).isdisjoint(ids)
    with pytest.raises(NotFoundError):
        await store.export_conversations(owner="bob", conversation_id=ids[0])
    # A deleted import comes back when imported again.
    await store.delete_conversation(ids[0], owner="alice")
    again, skipped = await store.import_conversations(parse_chatgpt(data), owner="alice")
    assert (len(again), skipped) == (1, 1)


async def test_the_tree_times_and_leaf_are_kept(store: Store) -> None:
    data = json.loads((FIXTURES / "chatgpt-librechat-tree.json").read_text())
    (parsed,) = parse_chatgpt(data)
    (conversation_id,), _ = await store.import_conversations([parsed], owner="alice")
    ((conversation, messages),) = await store.export_conversations(owner="alice")
    assert conversation.id == conversation_id
    assert conversation.title == data[0]["title"]
    assert conversation.created_at == data[0]["create_time"]
    assert conversation.updated_at == data[0]["update_time"]
    ours = {m.id: mine.id for m, mine in zip(parsed.messages, messages, strict=True)}
    for source, mine in zip(parsed.messages, messages, strict=True):
        assert mine.parent_id == (ours[source.parent_id] if source.parent_id else None)
        assert (mine.content, mine.role, mine.status) == (
            source.content,
            source.role,
            source.status,
        )
        assert mine.created_at == source.created_at
    assert parsed.current_leaf_id is not None
    assert conversation.current_leaf_id == ours[parsed.current_leaf_id]


async def test_a_bad_conversation_imports_nothing(store: Store) -> None:
    good = ImportedConversation(
        "test", "a", "A", None, None, [ImportedMessage("1", None, "user", "x")]
    )
    bad = ImportedConversation(
        "test", "b", "B", None, None, [ImportedMessage("2", "missing", "user", "y")]
    )
    with pytest.raises(InvalidRequestError):
        await store.import_conversations([good, bad], owner="alice")
    assert await store.export_conversations(owner="alice") == []
    (one,), _ = await store.import_conversations([good], owner="alice")
    ((conversation, messages),) = await store.export_conversations(owner="alice")
    # Times unknown: now (the store's clock); no leaf named: the newest leaf.
    assert conversation.id == one
    assert conversation.created_at == messages[0].created_at
    assert conversation.current_leaf_id == messages[0].id
