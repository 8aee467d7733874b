"""ssechat.store: conversations, the message tree, paging, and SQLite behaviour, on real files."""

from __future__ import annotations

import contextlib
import functools
import math
import sqlite3
import tempfile
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import platformdirs
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

import ssechat.store
from ssechat.errors import InvalidRequestError, NotFoundError
from ssechat.store import UNSET, Conversation, Message, Store, default_database_url, schema

pytestmark = pytest.mark.anyio


class Ticker:
    """A clock that moves one second per reading, so every write has its own time."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "ssechat.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(db_path, clock=Ticker()) as opened:
        yield opened


class Gate:
    """Holds a store thread inside an operation until released (events, never sleeps)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()

    def hold(self) -> None:
        """Called on a store thread: say so, then wait for ``release``."""
        self.entered.set()
        if not self.released.wait(10):
            raise TimeoutError("the gate was never released")

    async def wait_entered(self) -> None:
        assert await anyio.to_thread.run_sync(self.entered.wait, 10)

    def release(self) -> None:
        self.released.set()


def table_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the store's tables, read with the stdlib driver, for before/after checks."""
    with contextlib.closing(sqlite3.connect(path)) as con:
        return {
            "conversations": con.execute("SELECT * FROM conversations ORDER BY id").fetchall(),
            "messages": con.execute("SELECT * FROM messages ORDER BY seq").fetchall(),
        }


def test_all_names_the_public_api() -> None:
    names = ssechat.store.__all__
    assert len(set(names)) == len(names)
    assert set(names) == {
        "MESSAGE_STATUSES",
        "ROLES",
        "UNSET",
        "Conversation",
        "Exchange",
        "Message",
        "Store",
        "Unset",
        "default_database_url",
    }
    for name in names:
        assert getattr(ssechat.store, name) is not None
    # Those the package re-exports are the very objects of their modules.
    assert ssechat.store.Store is ssechat.store.sql.Store
    assert ssechat.store.Message is ssechat.store.models.Message


# --- conversations ------------------------------------------------------------------------------


async def test_create_and_get_conversation(store: Store) -> None:
    created = await store.create_conversation(
        title="Plans", model="demo", system_prompt="Be brief.", owner="ann"
    )
    assert len(created.id) == 32
    assert created.created_at == created.updated_at
    assert created.current_leaf_id is None
    fetched = await store.get_conversation(created.id)
    assert fetched == created
    data = fetched.as_dict()
    assert data["title"] == "Plans"
    assert data["system_prompt"] == "Be brief."
    assert data["owner"] == "ann"
    assert data["created_at"].endswith("Z")
    assert data["current_leaf_id"] is None


def test_as_dict_times_are_iso_utc() -> None:
    conversation = Conversation("c", None, None, None, None, 0.0, 86_400.25, None)
    assert conversation.as_dict()["created_at"] == "1970-01-01T00:00:00.000Z"
    assert conversation.as_dict()["updated_at"] == "1970-01-02T00:00:00.250Z"
    message = Message(
        "m", "c", None, "assistant", "hi", "complete", "demo", "stop", {"total_tokens": 3}, 0.0, 0.0
    )
    data = message.as_dict()
    assert data["usage"] == {"total_tokens": 3}
    assert data["error"] is None
    assert data["finish_reason"] == "stop"


async def test_unknown_conversation_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError):
        await store.get_conversation("nope")
    with pytest.raises(NotFoundError):
        await store.list_messages("nope")
    with pytest.raises(NotFoundError):
        await store.update_conversation("nope", title="x")
    with pytest.raises(NotFoundError):
        await store.delete_conversation("nope")
    with pytest.raises(NotFoundError):
        await store.add_message("nope", parent_id=None, role="user", content="hi")
    with pytest.raises(NotFoundError):
        await store.add_exchange("nope", parent_id=None, user_content="hi", model="demo")


async def test_update_conversation_changes_only_what_is_given(store: Store) -> None:
    created = await store.create_conversation(title="A", model="m1", system_prompt="S")
    updated = await store.update_conversation(created.id, title="B")
    assert (updated.title, updated.model, updated.system_prompt) == ("B", "m1", "S")
    assert updated.updated_at > created.updated_at
    assert updated.created_at == created.created_at

    cleared = await store.update_conversation(created.id, system_prompt=None, model=UNSET)
    assert (cleared.title, cleared.model, cleared.system_prompt) == ("B", "m1", None)
    assert await store.get_conversation(created.id) == cleared


async def test_current_leaf_must_be_a_message_of_the_conversation(
    store: Store, db_path: Path
) -> None:
    first = await store.create_conversation()
    other = await store.create_conversation()
    question, answer = await store.add_exchange(
        first.id, parent_id=None, user_content="q", model="demo"
    )
    foreign = await store.add_message(other.id, parent_id=None, role="user", content="elsewhere")
    before = table_rows(db_path)
    for bad in (foreign.id, "unknown"):
        with pytest.raises(InvalidRequestError):
            await store.update_conversation(first.id, title="changed", current_leaf_id=bad)
    assert table_rows(db_path) == before

    moved = await store.update_conversation(first.id, current_leaf_id=question.id)
    assert moved.current_leaf_id == question.id
    assert (await store.update_conversation(first.id, current_leaf_id=None)).current_leaf_id is None
    assert answer.id != question.id


async def test_delete_conversation_takes_its_messages(store: Store, db_path: Path) -> None:
    doomed = await store.create_conversation(title="doomed")
    kept = await store.create_conversation(title="kept")
    question, answer = await store.add_exchange(
        doomed.id, parent_id=None, user_content="q", model="demo"
    )
    kept_question, _ = await store.add_exchange(
        kept.id, parent_id=None, user_content="k", model="demo"
    )

    await store.delete_conversation(doomed.id)

    with pytest.raises(NotFoundError):
        await store.get_conversation(doomed.id)
    for message_id in (question.id, answer.id):
        with pytest.raises(NotFoundError):
            await store.get_message(message_id)
        with pytest.raises(NotFoundError):
            await store.path_to(message_id)
    with pytest.raises(NotFoundError):
        await store.update_message(answer.id, content="late")
    with pytest.raises(NotFoundError):
        await store.list_messages(doomed.id)
    with pytest.raises(NotFoundError):
        await store.delete_conversation(doomed.id)
    assert await store.set_title_if_empty(doomed.id, "late title") is False

    rows = table_rows(db_path)
    assert [row[0] for row in rows["conversations"]] == [kept.id]
    assert {row[2] for row in rows["messages"]} == {kept.id}
    assert [m.id for m in await store.list_messages(kept.id)][:1] == [kept_question.id]
    page, _ = await store.list_conversations()
    assert [c.id for c in page] == [kept.id]


async def test_set_title_if_empty(store: Store) -> None:
    untitled = await store.create_conversation()
    assert await store.set_title_if_empty(untitled.id, "First") is True
    assert await store.set_title_if_empty(untitled.id, "Second") is False
    assert (await store.get_conversation(untitled.id)).title == "First"

    blank = await store.create_conversation(title="")
    assert await store.set_title_if_empty(blank.id, "Named") is True
    assert (await store.get_conversation(blank.id)).title == "Named"

    titled = await store.create_conversation(title="Mine")
    assert await store.set_title_if_empty(titled.id, "Theirs") is False
    assert (await store.get_conversation(titled.id)).title == "Mine"


# --- the message tree ---------------------------------------------------------------------------


async def test_exchange_regenerate_and_edit_make_a_tree(store: Store) -> None:
    conversation = await store.create_conversation()
    q1, a1 = await store.add_exchange(
        conversation.id, parent_id=None, user_content="Hello", model="demo"
    )
    assert (q1.role, q1.status, q1.parent_id, q1.content) == ("user", "complete", None, "Hello")
    assert (a1.role, a1.status, a1.parent_id, a1.content) == ("assistant", "streaming", q1.id, "")
    assert a1.model == "demo"
    assert (await store.get_conversation(conversation.id)).current_leaf_id == a1.id

    await store.update_message(a1.id, content="Hi!", status="complete", finish_reason="stop")
    q2, a2 = await store.add_exchange(
        conversation.id, parent_id=a1.id, user_content="Tell a joke", model="demo"
    )
    regenerated = await store.add_assistant(conversation.id, parent_id=q2.id, model="other")
    assert (regenerated.parent_id, regenerated.status, regenerated.model) == (
        q2.id,
        "streaming",
        "other",
    )
    assert (await store.get_conversation(conversation.id)).current_leaf_id == regenerated.id

    edited = await store.add_message(
        conversation.id, parent_id=a1.id, role="user", content="Tell a poem"
    )
    assert edited.parent_id == q2.parent_id
    assert (await store.get_conversation(conversation.id)).current_leaf_id == edited.id

    tree = await store.list_messages(conversation.id)
    assert [m.id for m in tree] == [q1.id, a1.id, q2.id, a2.id, regenerated.id, edited.id]
    assert tree[1].content == "Hi!"
    children_of_q2 = [m.id for m in tree if m.parent_id == q2.id]
    assert children_of_q2 == [a2.id, regenerated.id]

    assert [m.id for m in await store.path_to(regenerated.id)] == [
        q1.id,
        a1.id,
        q2.id,
        regenerated.id,
    ]
    assert [m.id for m in await store.path_to(a2.id)] == [q1.id, a1.id, q2.id, a2.id]
    assert [m.id for m in await store.path_to(edited.id)] == [q1.id, a1.id, edited.id]
    assert [m.id for m in await store.path_to(q1.id)] == [q1.id]


async def test_a_new_root_is_a_sibling_of_the_first_question(store: Store) -> None:
    conversation = await store.create_conversation()
    first, _ = await store.add_exchange(
        conversation.id, parent_id=None, user_content="v1", model="demo"
    )
    second = await store.add_message(conversation.id, parent_id=None, role="user", content="v2")
    assert second.parent_id is None
    assert [m.id for m in await store.path_to(second.id)] == [second.id]
    roots = [m.id for m in await store.list_messages(conversation.id) if m.parent_id is None]
    assert roots == [first.id, second.id]


async def test_adding_a_message_bumps_the_conversation(store: Store) -> None:
    older = await store.create_conversation(title="older")
    newer = await store.create_conversation(title="newer")
    page, _ = await store.list_conversations()
    assert [c.id for c in page] == [newer.id, older.id]

    message = await store.add_message(older.id, parent_id=None, role="user", content="hi")
    bumped = await store.get_conversation(older.id)
    assert bumped.updated_at == message.created_at > newer.updated_at
    page, _ = await store.list_conversations()
    assert [c.id for c in page] == [older.id, newer.id]


async def test_a_parent_from_another_conversation_changes_nothing(
    store: Store, db_path: Path
) -> None:
    mine = await store.create_conversation()
    theirs = await store.create_conversation()
    await store.add_exchange(mine.id, parent_id=None, user_content="mine", model="demo")
    their_question, _ = await store.add_exchange(
        theirs.id, parent_id=None, user_content="theirs", model="demo"
    )
    before = table_rows(db_path)

    for parent in (their_question.id, "not-a-message"):
        with pytest.raises(InvalidRequestError):
            await store.add_message(mine.id, parent_id=parent, role="user", content="x")
        with pytest.raises(InvalidRequestError):
            await store.add_exchange(mine.id, parent_id=parent, user_content="x", model="demo")
        with pytest.raises(InvalidRequestError):
            await store.add_assistant(mine.id, parent_id=parent, model="demo")

    assert table_rows(db_path) == before


async def test_add_message_checks_role_and_status(store: Store, db_path: Path) -> None:
    conversation = await store.create_conversation()
    before = table_rows(db_path)
    with pytest.raises(InvalidRequestError):
        await store.add_message(conversation.id, parent_id=None, role="tool", content="x")
    with pytest.raises(InvalidRequestError):
        await store.add_message(
            conversation.id, parent_id=None, role="user", content="x", status="done"
        )
    assert table_rows(db_path) == before
    system = await store.add_message(
        conversation.id, parent_id=None, role="system", content="rules", model="demo"
    )
    assert (system.role, system.status, system.model) == ("system", "complete", "demo")


async def test_update_message_changes_only_what_is_given(store: Store) -> None:
    conversation = await store.create_conversation()
    question, answer = await store.add_exchange(
        conversation.id, parent_id=None, user_content="q", model="demo"
    )

    await store.update_message(answer.id, content="Hel")
    first = await store.get_message(answer.id)
    assert (first.content, first.status, first.finish_reason, first.usage, first.error) == (
        "Hel",
        "streaming",
        None,
        None,
        None,
    )
    assert first.updated_at > answer.updated_at
    assert first.created_at == answer.created_at

    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    await store.update_message(answer.id, status="length", finish_reason="length", usage=usage)
    second = await store.get_message(answer.id)
    assert (second.content, second.status, second.finish_reason, second.usage) == (
        "Hel",
        "length",
        "length",
        usage,
    )
    assert second.updated_at > first.updated_at

    await store.update_message(answer.id, status="error", error="upstream said no")
    third = await store.get_message(answer.id)
    assert (third.content, third.status, third.error, third.usage) == (
        "Hel",
        "error",
        "upstream said no",
        usage,
    )
    assert third.as_dict()["error"] == "upstream said no"
    assert await store.get_message(question.id) == question

    with pytest.raises(InvalidRequestError):
        await store.update_message(answer.id, status="finished")
    assert await store.get_message(answer.id) == third
    with pytest.raises(NotFoundError):
        await store.update_message("nope", content="x")


async def test_mark_streaming_interrupted(store: Store) -> None:
    one = await store.create_conversation()
    two = await store.create_conversation()
    _, live1 = await store.add_exchange(one.id, parent_id=None, user_content="a", model="m")
    question, done = await store.add_exchange(two.id, parent_id=None, user_content="b", model="m")
    await store.update_message(done.id, content="ok", status="complete")
    live2 = await store.add_assistant(two.id, parent_id=question.id, model="m")
    await store.update_message(live2.id, content="partial")

    assert await store.mark_streaming_interrupted() == 2
    statuses = {m.id: m.status for c in (one, two) for m in await store.list_messages(c.id)}
    assert statuses[live1.id] == statuses[live2.id] == "interrupted"
    assert statuses[done.id] == "complete"
    assert (await store.get_message(live2.id)).content == "partial"
    assert list(statuses.values()).count("complete") == 3  # two questions and one answer
    assert await store.mark_streaming_interrupted() == 0


# --- paging -------------------------------------------------------------------------------------


async def all_pages(store: Store, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        page, cursor = await store.list_conversations(limit=limit, cursor=cursor)
        assert len(page) <= limit
        pages.append([c.id for c in page])
        if cursor is None:
            return pages
        assert page, "a cursor is only given when a page is full"


async def test_pages_follow_one_another(store: Store) -> None:
    created = [await store.create_conversation(title=str(i)) for i in range(5)]
    newest_first = [c.id for c in reversed(created)]
    assert await all_pages(store, 2) == [newest_first[0:2], newest_first[2:4], newest_first[4:]]
    assert await all_pages(store, 5) == [newest_first]
    assert await all_pages(store, 50) == [newest_first]


async def test_a_conversation_bumped_while_paging_is_not_seen_twice(store: Store) -> None:
    created = [await store.create_conversation(title=str(i)) for i in range(4)]
    page1, cursor = await store.list_conversations(limit=2)
    assert [c.id for c in page1] == [created[3].id, created[2].id]
    await store.add_message(created[3].id, parent_id=None, role="user", content="bump")
    fresh = await store.create_conversation(title="fresh")
    page2, cursor = await store.list_conversations(limit=2, cursor=cursor)
    assert [c.id for c in page2] == [created[1].id, created[0].id]
    assert cursor is None
    page, _ = await store.list_conversations(limit=2)
    assert [c.id for c in page] == [fresh.id, created[3].id]


@settings(max_examples=25, deadline=None)
@given(
    times=st.lists(st.integers(min_value=0, max_value=4), max_size=12),
    limit=st.integers(min_value=1, max_value=5),
)
async def test_paging_returns_every_conversation_once_in_order(
    times: list[int], limit: int
) -> None:
    now = [0.0]
    with tempfile.TemporaryDirectory() as folder:
        async with await Store.open(Path(folder) / "p.db", clock=lambda: now[0]) as store:
            created: list[Conversation] = []
            for t in times:  # equal times exercise the tie-break on id
                now[0] = 1_700_000_000.0 + t
                created.append(await store.create_conversation())
            pages = await all_pages(store, limit)
    expected = [c.id for c in sorted(created, key=lambda c: (c.updated_at, c.id), reverse=True)]
    assert [i for page in pages for i in page] == expected
    assert len(pages) == max(1, math.ceil(len(created) / limit))


@pytest.mark.parametrize(
    "cursor",
    ["", "!!!", "bm90IGpzb24", "WzFd", "WyJhIiwiYiJd", "WzEsMl0", "WzEsImEiLDNd", "WyJhIl0", "é"],
)
async def test_a_malformed_cursor_is_an_invalid_request(store: Store, cursor: str) -> None:
    await store.create_conversation()
    with pytest.raises(InvalidRequestError):
        await store.list_conversations(cursor=cursor)


async def test_limit_must_be_positive(store: Store) -> None:
    with pytest.raises(InvalidRequestError):
        await store.list_conversations(limit=0)


# --- SQLite, files and concurrency -------------------------------------------------------------


async def test_sqlite_runs_in_wal_mode_with_its_pragmas(store: Store, db_path: Path) -> None:
    with contextlib.closing(sqlite3.connect(db_path)) as con:
        assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)

    def pragmas(conn: sa.Connection) -> list[Any]:
        names = ["journal_mode", "foreign_keys", "busy_timeout", "synchronous"]
        return [conn.scalar(sa.text(f"PRAGMA {name}")) for name in names]

    # The connections the store's own threads use, reader and writer.
    expected = ["wal", 1, 5000, 1]  # synchronous 1 is NORMAL
    assert await store._read(pragmas) == expected
    assert await store._write(pragmas) == expected


async def test_data_persists_across_close_and_reopen(db_path: Path) -> None:
    async with await Store.open(db_path) as store:
        conversation = await store.create_conversation(title="kept", system_prompt="S")
        question, answer = await store.add_exchange(
            conversation.id, parent_id=None, user_content="q", model="demo"
        )
        await store.update_message(answer.id, content="a", status="complete", usage={"x": 1})
        saved = await store.get_conversation(conversation.id)
        tree = await store.list_messages(conversation.id)
    async with await Store.open(f"sqlite:///{db_path}") as store:
        assert await store.get_conversation(conversation.id) == saved
        assert await store.list_messages(conversation.id) == tree
        assert tree[0].id == question.id
        assert tree[1].usage == {"x": 1}


async def test_concurrent_reads_and_writes_all_succeed(store: Store) -> None:
    conversation = await store.create_conversation()
    seen: list[int] = []

    async def write(i: int) -> None:
        await store.add_message(conversation.id, parent_id=None, role="user", content=f"m{i}")

    async def read() -> None:
        seen.append(len(await store.list_messages(conversation.id)))
        await store.list_conversations()
        await store.get_conversation(conversation.id)

    async with anyio.create_task_group() as tg:
        for i in range(40):
            tg.start_soon(write, i)
            tg.start_soon(read)

    messages = await store.list_messages(conversation.id)
    assert sorted(m.content for m in messages) == sorted(f"m{i}" for i in range(40))
    assert len(seen) == 40
    assert all(0 <= n <= 40 for n in seen)
    assert (await store.get_conversation(conversation.id)).current_leaf_id in {
        m.id for m in messages
    }


async def test_two_stores_on_one_file_both_write(db_path: Path) -> None:
    # Like two server processes: BEGIN IMMEDIATE and the busy timeout make them take turns.
    async with await Store.open(db_path) as first, await Store.open(db_path) as second:
        conversation = await first.create_conversation()

        async def write(store: Store, i: int) -> None:
            await store.add_message(conversation.id, parent_id=None, role="user", content=str(i))

        async with anyio.create_task_group() as tg:
            for i in range(30):
                tg.start_soon(write, first if i % 2 else second, i)
        assert len(await second.list_messages(conversation.id)) == 30


async def test_reads_do_not_wait_for_an_open_write(store: Store) -> None:
    conversation = await store.create_conversation(title="before")
    gate = Gate()

    def rename_and_hold(conn: sa.Connection) -> None:
        conn.execute(sa.update(schema.conversations).values(title="uncommitted"))
        gate.hold()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(store._write, rename_and_hold)
            await gate.wait_entered()
            # A read runs on its own thread and connection: it does not queue behind the
            # writer, and it sees the last committed state.
            assert (await store.get_conversation(conversation.id)).title == "before"
            gate.release()
    assert (await store.get_conversation(conversation.id)).title == "uncommitted"


async def test_writes_wait_for_one_another(store: Store) -> None:
    conversation = await store.create_conversation(title="before")
    finished: list[str] = []

    async def rename() -> None:
        await store.update_conversation(conversation.id, title="second")
        finished.append("second")

    gate = Gate()

    def rename_first_and_hold(conn: sa.Connection) -> None:
        conn.execute(sa.update(schema.conversations).values(title="first"))
        gate.hold()

    with anyio.fail_after(10):
        # The first write commits once released; only then can the second begin: it wins.
        async with anyio.create_task_group() as tg:
            tg.start_soon(store._write, rename_first_and_hold)
            await gate.wait_entered()
            tg.start_soon(rename)
            await anyio.wait_all_tasks_blocked()
            assert finished == []
            gate.release()
    assert finished == ["second"]
    assert (await store.get_conversation(conversation.id)).title == "second"


async def test_a_cancelled_caller_stops_waiting_but_the_write_completes(db_path: Path) -> None:
    store = await Store.open(db_path)
    try:
        conversation = await store.create_conversation()
        _, answer = await store.add_exchange(
            conversation.id, parent_id=None, user_content="q", model="demo"
        )
        outcome: list[str] = []
        scope = anyio.CancelScope()

        async def save() -> None:
            with scope:
                await store.update_message(answer.id, content="saved", status="stopped")
            outcome.append("cancelled" if scope.cancelled_caught else "returned")

        gate = Gate()
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(store._write, lambda conn: gate.hold())
                await gate.wait_entered()
                tg.start_soon(save)
                await anyio.wait_all_tasks_blocked()  # save() waits for the writer we hold
                scope.cancel()
                await anyio.wait_all_tasks_blocked()
                assert outcome == ["cancelled"]  # at once, though the writer is still held
                gate.release()
    finally:
        await store.close()  # waits for the write its caller left behind

    async with await Store.open(db_path) as reopened:
        saved = await reopened.get_message(answer.id)
    assert (saved.content, saved.status) == ("saved", "stopped")


async def test_cancellation_at_any_point_keeps_the_store_whole(store: Store, db_path: Path) -> None:
    conversation = await store.create_conversation()
    for checkpoints in range(25):
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                for i in range(4):
                    tg.start_soon(
                        functools.partial(
                            store.add_exchange,
                            conversation.id,
                            parent_id=None,
                            user_content=f"{checkpoints}.{i}",
                            model="demo",
                        )
                    )
                    tg.start_soon(store.list_messages, conversation.id)
                for _ in range(checkpoints):
                    await anyio.lowlevel.checkpoint()
                scope.cancel()
        with anyio.fail_after(10):  # nothing is left locked
            await store.update_conversation(conversation.id, title=str(checkpoints))
    await store.close()
    async with await Store.open(db_path) as reopened:
        messages = await reopened.list_messages(conversation.id)
    # Each exchange is whole: every question written has its answer, and nothing else.
    questions = sorted(m.id for m in messages if m.role == "user")
    assert sorted(m.parent_id or "" for m in messages if m.role == "assistant") == questions


# --- opening --------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["path", "str", "sqlite", "pysqlite", "aiosqlite"])
async def test_open_accepts_paths_and_sqlite_urls(tmp_path: Path, form: str) -> None:
    path = tmp_path / "nested" / "dir" / "chat.db"
    target: str | Path = {
        "path": path,
        "str": str(path),
        "sqlite": f"sqlite:///{path}",
        "pysqlite": f"sqlite+pysqlite:///{path}",
        "aiosqlite": f"sqlite+aiosqlite:///{path}",  # what older configurations hold
    }[form]
    async with await Store.open(target) as store:
        await store.create_conversation(title="here")
    assert path.is_file()
    assert len(table_rows(path)["conversations"]) == 1


async def test_a_path_is_taken_literally(tmp_path: Path) -> None:
    path = tmp_path / "my chats" / "50% #1?.db"  # would mean something else in a URL
    async with await Store.open(path) as store:
        await store.create_conversation()
    async with await Store.open(str(path)) as store:
        page, _ = await store.list_conversations()
    assert len(page) == 1
    assert path.is_file()


async def test_open_without_a_url_uses_the_user_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data" / "ssechat"
    monkeypatch.setattr(platformdirs, "user_data_dir", lambda appname: str(data_dir))
    assert default_database_url() == f"sqlite:///{data_dir / 'ssechat.db'}"
    async with await Store.open(None) as store:
        await store.create_conversation()
    assert (data_dir / "ssechat.db").is_file()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://user:s3cret@db.example/chat",
        "mysql+aiomysql://user:s3cret@db/chat",
        "sqlite+aiosqlite://",
        "sqlite://",
        "sqlite+aiosqlite:///:memory:",
        ":memory:",
        "",
        "not a url://at all",
    ],
)
async def test_open_refuses_what_is_not_a_sqlite_file(url: str) -> None:
    with pytest.raises(ValueError, match=r"sqlite:///path/to/file\.db") as caught:
        await Store.open(url)
    assert "s3cret" not in str(caught.value)


async def test_a_closed_store_refuses_work(db_path: Path) -> None:
    store = await Store.open(db_path)
    await store.close()
    await store.close()  # twice is fine
    with pytest.raises(RuntimeError, match="closed"):
        await store.list_conversations()
    with pytest.raises(RuntimeError, match="closed"):
        await store.create_conversation()
