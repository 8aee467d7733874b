"""The store's export and import (``store.transfer``), on SQLite and PostgreSQL: a lossless round
trip, all-or-nothing imports, skipping what was imported before, owners kept apart; an import
staged in short transactions that no one sees until it is published, while other writes go on,
and cleaned up on failure, cancellation or (a killed process's) at the next start."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
import sqlalchemy as sa

import ssechat.store.transfer as transfer
from ssechat.errors import ConflictError, InvalidRequestError, NotFoundError
from ssechat.store import LOCAL_OWNER, Store, open_store, schema
from ssechat.store.sql import SQLStore
from ssechat.transfer.chatgpt import parse_chatgpt
from ssechat.transfer.model import ImportedConversation, ImportedMessage
from ssechat.transfer.ours import build_document, parse_ours

from .services import PostgresServer
from .store_support import Database, Ticker, insert_message, sql, table_rows

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


def given(
    conversations: list[ImportedConversation],
) -> Callable[[], Iterator[ImportedConversation]]:
    """What the store takes: a callable making a fresh iterator (as a re-read file would)."""
    return lambda: iter(conversations)


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
        ids, skipped = await fresh.import_conversations(given(parse_ours(document)), owner="bob")
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
    ids, skipped = await store.import_conversations(given(parse_ours(document)), owner="bob")
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
    assert await store.import_conversations(given(parse_ours(document)), owner="alice") == ([], 1)


async def test_import_again_skips_what_it_brought(store: Store) -> None:
    data = json.loads((FIXTURES / "chatgpt-librechat-export.json").read_text())
    ids, skipped = await store.import_conversations(given(parse_chatgpt(data)), owner="alice")
    assert (len(ids), skipped) == (2, 0)
    assert await store.import_conversations(given(parse_chatgpt(data)), owner="alice") == ([], 2)
    # Another user's import is theirs: nothing skipped, nothing shared.
    theirs, skipped = await store.import_conversations(given(parse_chatgpt(data)), owner="bob")
    assert (len(theirs), skipped) == (2, 0)
    assert set(theirs).isdisjoint(ids)
    with pytest.raises(NotFoundError):
        await store.export_conversations(owner="bob", conversation_id=ids[0])
    # A deleted import comes back when imported again.
    await store.delete_conversation(ids[0], owner="alice")
    again, skipped = await store.import_conversations(given(parse_chatgpt(data)), owner="alice")
    assert (len(again), skipped) == (1, 1)


async def test_the_tree_times_and_leaf_are_kept(store: Store) -> None:
    data = json.loads((FIXTURES / "chatgpt-librechat-tree.json").read_text())
    (parsed,) = parse_chatgpt(data)
    (conversation_id,), _ = await store.import_conversations(given([parsed]), owner="alice")
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
        await store.import_conversations(given([good, bad]), owner="alice")
    assert await store.export_conversations(owner="alice") == []
    (one,), _ = await store.import_conversations(given([good]), owner="alice")
    ((conversation, messages),) = await store.export_conversations(owner="alice")
    # Times unknown: now (the store's clock); no leaf named: the newest leaf.
    assert conversation.id == one
    assert conversation.created_at == messages[0].created_at
    assert conversation.current_leaf_id == messages[0].id


def _numbered(count: int, *, source: str = "test", word: str = "x") -> list[ImportedConversation]:
    return [
        ImportedConversation(
            source, f"c{i}", f"T{i}", None, None, [ImportedMessage("1", None, "user", f"{word}{i}")]
        )
        for i in range(count)
    ]


class Held:
    """A file's conversations, read (on a worker thread) up to the one at ``at``, then held
    there until released: threading events, never sleeps."""

    def __init__(self, conversations: list[ImportedConversation], *, at: int) -> None:
        self.conversations = conversations
        self.at = at
        self.reached = threading.Event()
        self.released = threading.Event()

    def __call__(self) -> Iterator[ImportedConversation]:
        for index, conversation in enumerate(self.conversations):
            if index == self.at:
                self.reached.set()
                if not self.released.wait(30):
                    raise TimeoutError("the file was never released")
            yield conversation

    async def wait_reached(self) -> None:
        assert await anyio.to_thread.run_sync(self.reached.wait, 20), "never got that far"

    def release(self) -> None:
        self.released.set()


async def _staged_count(store: Store) -> int:
    """How many conversations are staged (by any import), read through the store's threads."""
    assert isinstance(store, SQLStore)
    conversations = schema.conversations
    statement = (
        sa.select(sa.func.count())
        .select_from(conversations)
        .where(conversations.c.owner.like(f"{transfer.STAGING_PREFIX}%"))
    )
    count: int = await store.threads.read(lambda conn: conn.execute(statement).scalar_one())
    return count


async def test_a_file_failing_after_batches_were_written_imports_nothing(
    store: Store, database: Database
) -> None:
    # The iterator is the streaming parse: it may fail after hundreds of conversations were
    # written in earlier batches; all of them must go.
    await _rich_conversation(store, "alice")
    before = table_rows(database)
    consumed = 0

    def broken() -> Iterator[ImportedConversation]:
        nonlocal consumed
        for conversation in _numbered(350):
            consumed += 1
            yield conversation
        raise InvalidRequestError("the file breaks here")

    with pytest.raises(InvalidRequestError, match="breaks here"):
        await store.import_conversations(broken, owner="alice")
    assert consumed == 350  # it did get that far: three batches were written, then undone
    assert table_rows(database) == before


async def test_a_conversation_repeated_in_a_later_batch_is_skipped(store: Store) -> None:
    items = _numbered(250)
    items.append(items[3])  # the same (source, source id), two batches later
    items.insert(10, items[5])  # and within one batch
    ids, skipped = await store.import_conversations(given(items), owner="alice")
    assert (len(ids), skipped) == (250, 2)
    assert len(await store.export_conversations(owner="alice")) == 250


# --- staged, then published: the write lock is never held for long ---------------------------


async def test_between_batches_other_writes_go_on_and_see_nothing_of_the_import(
    store: Store,
) -> None:
    # The point of staging: while a big import is under way (here held after its first batch,
    # which is written), another write of the same user goes through at once, and nothing of
    # the import is listed, searched or exported until it is published. Were the file read
    # inside one write transaction, the writes below would wait for the whole import.
    held = Held(_numbered(150, word="zanzibar "), at=100)
    got: list[tuple[list[str], int]] = []

    async def run() -> None:
        got.append(await store.import_conversations(held, owner="alice"))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(run)
        try:
            await held.wait_reached()
            with anyio.fail_after(15):
                live = await store.create_conversation(owner="alice", title="Live")
                await store.start_exchange(
                    live.id, owner="alice", user_content="zanzibar now", model="m"
                )
                staged = await _staged_count(store)
                listed, _ = await store.list_conversations(owner="alice", limit=200)
                hits, _ = await store.search("alice", "zanzibar")
                exported = await store.export_conversations(owner="alice")
        finally:
            held.release()
    assert staged == 100  # the first batch was written, under the staging owner
    assert [c.id for c in listed] == [live.id]
    assert {hit.conversation_id for hit in hits} == {live.id}
    assert [c.id for c, _ in exported] == [live.id]
    ((ids, skipped),) = got
    assert (len(ids), skipped) == (150, 0)
    assert await _staged_count(store) == 0
    listed, _ = await store.list_conversations(owner="alice", limit=200)
    assert {c.id for c in listed} == {live.id, *ids}
    hits, _ = await store.search("alice", "zanzibar", limit=50)
    assert len({hit.conversation_id for hit in hits} - {live.id}) == 49  # the imported, found


async def test_a_cancelled_import_leaves_no_row(
    store: Store, database: Database, backend: str
) -> None:
    await _rich_conversation(store, "alice")
    before = table_rows(database)
    held = Held(_numbered(250), at=200)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(lambda: store.import_conversations(held, owner="alice"))
        await held.wait_reached()
        assert await _staged_count(store) == 200
        tasks.cancel_scope.cancel()
        held.release()  # the worker thread reading the file ends; then the import is cancelled
    assert table_rows(database) == before
    if backend == "sqlite":  # the staged texts left the search index with their rows
        sql(database, "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)")


async def test_two_imports_of_one_file_at_once_publish_one_copy(store: Store) -> None:
    items = _numbered(150)
    held = Held(items, at=100)
    got: list[tuple[list[str], int]] = []

    async def first() -> None:
        got.append(await store.import_conversations(held, owner="alice"))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(first)
        try:
            await held.wait_reached()
            # The same file again, whole, while the first is held with a batch staged.
            with anyio.fail_after(15):
                second, skipped = await store.import_conversations(given(items), owner="alice")
        finally:
            held.release()
    assert (len(second), skipped) == (150, 0)
    # The first finds the second's copies published: it skips its later ones and drops the
    # ones it had staged.
    assert got == [([], 150)]
    assert len(await store.export_conversations(owner="alice")) == 150
    assert await _staged_count(store) == 0


async def test_ids_kept_by_two_imports_at_once_are_a_conflict_not_a_500(
    store: Store, backend: str, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Our format keeps its ids when free. Two imports of one such file at once can both find
    # them free (PostgreSQL runs writes side by side; SQLite's one writer cannot interleave
    # them): the second insert collides, and must be a clear 409 that leaves nothing behind.
    if backend == "sqlite":
        pytest.skip("one writer thread: two stagings never interleave")
    before = table_rows(database)
    kept = uuid.uuid4().hex
    ours = ImportedConversation(
        "ssechat", kept, "Ours", 1.0, 2.0, [ImportedMessage(uuid.uuid4().hex, None, "user", "hi")]
    )
    checked = [threading.Event(), threading.Event()]
    calls: list[int] = []
    real_keep, real_insert = transfer._keep_ids, transfer._insert

    def keep_ids(*args: Any) -> Any:
        found = real_keep(*args)
        checked[len(calls)].set()  # the first import's check, then the second's
        calls.append(1)
        return found

    def insert(*args: Any) -> str:
        if len(calls) == 1:  # the first import: insert only once the second has checked too
            assert checked[1].wait(20), "the second import never checked its ids"
        return real_insert(*args)

    monkeypatch.setattr(transfer, "_keep_ids", keep_ids)
    monkeypatch.setattr(transfer, "_insert", insert)
    outcomes: list[object] = []

    async def run() -> None:
        try:
            outcomes.append(await store.import_conversations(given([ours]), owner="alice"))
        except ConflictError as error:
            outcomes.append(error)

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(run)
            assert await anyio.to_thread.run_sync(checked[0].wait, 20)
            tasks.start_soon(run)
    assert len(calls) == 2
    assert ([kept], 0) in outcomes
    (conflict,) = [o for o in outcomes if isinstance(o, ConflictError)]
    assert str(conflict) == transfer.COLLIDED
    assert await _staged_count(store) == 0
    after = table_rows(database)
    assert len(after["conversations"]) == len(before["conversations"]) + 1


async def test_the_start_sweeps_staged_imports_older_than_an_hour(database: Database) -> None:
    start = 1_700_000_000.0
    async with await open_store(database, clock=Ticker(start)) as store:
        mine = await store.create_conversation(owner="alice", title="Mine")
        await store.import_conversations(given(_numbered(2)), owner="alice")
    kept = table_rows(database)
    # What two killed imports left: one started two hours ago, one a minute ago (another
    # process may be importing it right now).
    old = f"{transfer.STAGING_PREFIX}{int(start) - 7200}:{uuid.uuid4().hex}"
    young = f"{transfer.STAGING_PREFIX}{int(start) - 60}:{uuid.uuid4().hex}"
    staged: dict[str, str] = {}
    for owner in (old, young):
        staged[owner] = conversation = uuid.uuid4().hex
        sql(
            database,
            "INSERT INTO conversations (id, title, owner, created_at, updated_at) "
            "VALUES (?, 'staged', ?, 0, 0)",
            (conversation, owner),
        )
        insert_message(database, conversation, role="user", content="left behind")
        sql(
            database,
            "INSERT INTO imports (owner, source, source_id, conversation_id, imported_at) "
            "VALUES (?, 'test', 'z', ?, 0)",
            (owner, conversation),
        )
    async with await open_store(database, clock=Ticker(start)) as store:
        assert await _staged_count(store) == 1
        assert next(c.id for c, _ in await store.export_conversations(owner="alice")) == mine.id
    after = table_rows(database)
    for table in ("conversations", "messages", "imports"):
        young_rows = [row for row in after[table] if staged[young] in row or young in row]
        assert young_rows, table  # the young import is kept whole
        assert sorted(set(after[table]) - set(young_rows)) == sorted(kept[table]), table


async def test_an_import_whose_user_is_deleted_meanwhile_publishes_nothing(
    store: Store, database: Database
) -> None:
    # The user is deleted (their rows with them) while their file is being staged: the publish
    # must not hand the staged rows to an owner no one can be; they go, and the import fails.
    def user(email: str, role: str) -> Any:
        return store.accounts.create_user(
            email=email, name=None, password_hash="h", role=role, status="active"
        )

    admin = await user("admin@example.com", "admin")
    doomed = await user("doomed@example.com", "user")
    await _rich_conversation(store, doomed.id)
    held = Held(_numbered(150), at=100)
    failed: list[NotFoundError] = []

    async def run() -> None:
        try:
            await store.import_conversations(held, owner=doomed.id)
        except NotFoundError as error:
            failed.append(error)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(run)
        try:
            await held.wait_reached()
            assert await _staged_count(store) == 100
            with anyio.fail_after(15):
                await store.accounts.delete_user(doomed.id)
        finally:
            held.release()
    (error,) = failed
    assert "deleted" in str(error)
    after = table_rows(database)
    assert {table: after[table] for table in ("conversations", "messages", "imports")} == {
        "conversations": [],
        "messages": [],
        "imports": [],
    }
    assert [row[0] for row in after["users"]] == [admin.id]
    # Owners that exist import as ever: a user, and the owner of accounts off.
    for owner in (admin.id, LOCAL_OWNER):
        ids, _ = await store.import_conversations(given(_numbered(3)), owner=owner)
        assert len(await store.export_conversations(owner=owner)) == len(ids) == 3
