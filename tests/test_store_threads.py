"""ssechat.store's execution: each operation runs whole on a store thread, never on the loop's;
reads run beside a write, writes one after another (two stores on one file take turns); a caller
that leaves does not cut its write short; close waits for what is under way."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import AsyncIterator

import anyio
import anyio.lowlevel
import pytest
import sqlalchemy as sa

from ssechat.errors import NotFoundError
from ssechat.store import Conversation, SQLStore, Store, open_store, schema

from .store_support import OWNER, Database, Gate, Ticker

pytestmark = pytest.mark.anyio


class GatedClock(Ticker):
    """The store's clock, which it reads on its writer thread in the middle of a write (after
    ``BEGIN``, before the statements that use the time): armed, the next reading holds the
    writer there until the test releases it."""

    def __init__(self) -> None:
        super().__init__()
        self.gate: Gate | None = None
        self.threads: set[threading.Thread] = set()

    def arm(self) -> Gate:
        self.gate = Gate()
        return self.gate

    def __call__(self) -> float:
        self.threads.add(threading.current_thread())
        gate, self.gate = self.gate, None
        if gate is not None:
            gate.hold()
        return super().__call__()


@pytest.fixture
async def store(database: Database) -> AsyncIterator[SQLStore]:
    async with await SQLStore.open(database, clock=Ticker()) as opened:
        yield opened


async def test_a_caller_cancelled_mid_write_leaves_it_to_finish_and_close_waits(
    database: Database,
) -> None:
    clock = GatedClock()
    store = await open_store(database, clock=clock)
    conversation = await store.create_conversation(owner=OWNER)
    started = await store.start_exchange(
        conversation.id, owner=OWNER, parent_id=None, user_content="q", model="demo"
    )
    answer = started.answer
    outcome: list[str] = []
    closed: list[bool] = []
    scope = anyio.CancelScope()

    async def save() -> None:
        with scope:
            await store.update_message(answer.id, content="saved", status="stopped")
        outcome.append("cancelled" if scope.cancelled_caught else "returned")

    async def close() -> None:
        await store.close()
        closed.append(True)

    gate = clock.arm()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(save)
            await gate.wait_entered()  # the writer is inside update_message's transaction
            scope.cancel()
            await anyio.wait_all_tasks_blocked()
            assert outcome == ["cancelled"]  # at once, though the write is under way
            tg.start_soon(close)
            await anyio.wait_all_tasks_blocked()
            assert closed == []  # close waits for the write its caller left behind
            gate.release()
    assert closed == [True]

    async with await open_store(database) as reopened:
        saved = await reopened.get_message(answer.id, owner=OWNER)
    assert (saved.content, saved.status) == ("saved", "stopped")


async def test_a_failure_nobody_waits_for_is_logged(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    clock = GatedClock()
    store = await open_store(database, clock=clock)
    try:
        gate = clock.arm()
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: store.update_message("nope", content="late"))
                await gate.wait_entered()
                tg.cancel_scope.cancel()
        with caplog.at_level(logging.WARNING, logger="ssechat.store.threads"):
            gate.release()
            await store.close()  # the failure reaches the loop before close is done
    finally:
        await store.close()
    [record] = [r for r in caplog.records if "after its caller left" in r.getMessage()]
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], NotFoundError)


async def test_close_waits_for_a_read_under_way(database: Database) -> None:
    store = await SQLStore.open(database)
    conversation = await store.create_conversation(title="kept", owner=OWNER)
    gate = Gate()
    read: list[str] = []
    closed: list[bool] = []

    def slow_read(conn: sa.Connection) -> str:
        gate.hold()
        return str(conn.scalar(sa.text("SELECT title FROM conversations")))

    async def reader() -> None:
        read.append(await store.threads.read(slow_read))

    async def close() -> None:
        await store.close()
        closed.append(True)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            await gate.wait_entered()
            tg.start_soon(close)
            await anyio.wait_all_tasks_blocked()
            assert closed == []
            with pytest.raises(RuntimeError, match="closed"):  # nothing new meanwhile
                await store.get_conversation(conversation.id, owner=OWNER)
            gate.release()
    assert (read, closed) == (["kept"], [True])


async def test_the_database_is_only_touched_on_the_store_threads(database: Database) -> None:
    clock = GatedClock()
    store = await SQLStore.open(database, clock=clock)
    readers: set[threading.Thread] = set()
    try:
        conversation = await store.create_conversation(owner=OWNER)
        await store.start_exchange(conversation.id, owner=OWNER, user_content="q", model="m")

        def which(conn: sa.Connection) -> threading.Thread:
            return threading.current_thread()

        async def read() -> None:
            readers.add(await store.threads.read(which))

        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(read)
    finally:
        await store.close()
    writers = clock.threads
    # One writer thread on SQLite; PostgreSQL has several, and two writes may run on two.
    assert writers
    assert all(t.name.startswith("ssechat-store-writer") for t in writers)
    assert readers
    assert all(t.name.startswith("ssechat-store-reader") for t in readers)
    assert threading.current_thread() not in writers | readers
    for thread in writers | readers:  # close stopped them
        thread.join(10)
        assert not thread.is_alive()
    # ... and gave back, then closed, every connection.
    engines = store.threads.reader, store.threads.writer
    assert [engine.pool.checkedout() for engine in engines] == [0, 0]
    assert [engine.pool.checkedin() for engine in engines] == [0, 0]


@pytest.mark.sqlite_only("SQLite has one writer thread; PostgreSQL has several (see below)")
async def test_writes_run_in_the_order_they_were_asked_for(database: Database) -> None:
    async with await open_store(database, clock=Ticker()) as store:
        conversation = await start_thirty_at_once(store)
        messages = await store.list_messages(conversation.id, owner=OWNER)
    questions = [m for m in messages if m.role == "user"]
    assert [m.content for m in questions] == [str(i) for i in range(30)]
    times = [m.created_at for m in questions]
    assert times == sorted(times)


async def test_close_is_idempotent_and_concurrent(database: Database) -> None:
    store = await open_store(database)
    await store.create_conversation(owner=OWNER)
    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(store.close)
    await store.close()
    with pytest.raises(RuntimeError, match="closed"):
        await store.save_partial_answers({})


# --- reads beside writes, writes in turn -------------------------------------------------------


async def test_concurrent_reads_and_writes_all_succeed(store: Store) -> None:
    conversation = await store.create_conversation(owner=OWNER)
    seen: list[int] = []

    async def write(i: int) -> None:
        await store.start_exchange(
            conversation.id, owner=OWNER, parent_id=None, user_content=f"m{i}", model="m"
        )

    async def read() -> None:
        seen.append(len(await store.list_messages(conversation.id, owner=OWNER)))
        await store.list_conversations(owner=OWNER)
        await store.get_conversation(conversation.id, owner=OWNER)

    async with anyio.create_task_group() as tg:
        for i in range(40):
            tg.start_soon(write, i)
            tg.start_soon(read)

    messages = await store.list_messages(conversation.id, owner=OWNER)
    questions = [m.content for m in messages if m.role == "user"]
    assert sorted(questions) == sorted(f"m{i}" for i in range(40))
    assert len(messages) == 80
    assert len(seen) == 40
    # A read sees whole turns only: each question went in with its answer, in one transaction.
    assert all(0 <= n <= 80 and n % 2 == 0 for n in seen)
    assert (await store.get_conversation(conversation.id, owner=OWNER)).current_leaf_id in {
        m.id for m in messages
    }


async def test_two_stores_on_one_file_both_write(database: Database) -> None:
    # Like two server processes: BEGIN IMMEDIATE and the busy timeout make them take turns.
    async with await open_store(database) as first, await open_store(database) as second:
        conversation = await first.create_conversation(owner=OWNER)

        async def write(store: Store, i: int) -> None:
            await store.start_exchange(
                conversation.id, owner=OWNER, parent_id=None, user_content=str(i), model="m"
            )

        async with anyio.create_task_group() as tg:
            for i in range(30):
                tg.start_soon(write, first if i % 2 else second, i)
        assert len(await second.list_messages(conversation.id, owner=OWNER)) == 60


async def test_reads_do_not_wait_for_an_open_write(store: SQLStore) -> None:
    conversation = await store.create_conversation(title="before", owner=OWNER)
    gate = Gate()

    def rename_and_hold(conn: sa.Connection) -> None:
        conn.execute(sa.update(schema.conversations).values(title="uncommitted"))
        gate.hold()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(store.threads.write, rename_and_hold)
            await gate.wait_entered()
            # A read runs on its own thread and connection: it does not queue behind the
            # writer, and it sees the last committed state.
            assert (await store.get_conversation(conversation.id, owner=OWNER)).title == "before"
            gate.release()
    assert (await store.get_conversation(conversation.id, owner=OWNER)).title == "uncommitted"


async def test_writes_wait_for_one_another(store: SQLStore) -> None:
    conversation = await store.create_conversation(title="before", owner=OWNER)
    finished: list[str] = []

    async def rename() -> None:
        await store.update_conversation(conversation.id, owner=OWNER, title="second")
        finished.append("second")

    gate = Gate()

    def rename_first_and_hold(conn: sa.Connection) -> None:
        conn.execute(sa.update(schema.conversations).values(title="first"))
        gate.hold()

    with anyio.fail_after(10):
        # The first write commits once released; only then can the second begin: it wins.
        async with anyio.create_task_group() as tg:
            tg.start_soon(store.threads.write, rename_first_and_hold)
            await gate.wait_entered()
            tg.start_soon(rename)
            await anyio.wait_all_tasks_blocked()
            assert finished == []
            gate.release()
    assert finished == ["second"]
    assert (await store.get_conversation(conversation.id, owner=OWNER)).title == "second"


# --- cancellation -------------------------------------------------------------------------------


async def test_a_cancelled_caller_stops_waiting_but_the_write_completes(database: Database) -> None:
    store = await SQLStore.open(database)
    try:
        conversation = await store.create_conversation(owner=OWNER)
        started = await store.start_exchange(
            conversation.id, owner=OWNER, parent_id=None, user_content="q", model="demo"
        )
        answer = started.answer
        outcome: list[str] = []
        scope = anyio.CancelScope()

        async def save() -> None:
            with scope:
                await store.update_message(answer.id, content="saved", status="stopped")
            outcome.append("cancelled" if scope.cancelled_caught else "returned")

        gate = Gate()
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(store.threads.write, lambda conn: gate.hold())
                await gate.wait_entered()
                tg.start_soon(save)
                await anyio.wait_all_tasks_blocked()  # save() waits for the writer we hold
                scope.cancel()
                await anyio.wait_all_tasks_blocked()
                assert outcome == ["cancelled"]  # at once, though the writer is still held
                gate.release()
    finally:
        await store.close()  # waits for the write its caller left behind

    async with await open_store(database) as reopened:
        saved = await reopened.get_message(answer.id, owner=OWNER)
    assert (saved.content, saved.status) == ("saved", "stopped")


async def test_cancellation_at_any_point_keeps_the_store_whole(
    store: Store, database: Database
) -> None:
    conversation = await store.create_conversation(owner=OWNER)
    for checkpoints in range(25):
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                for i in range(4):
                    tg.start_soon(
                        functools.partial(
                            store.start_exchange,
                            conversation.id,
                            owner=OWNER,
                            parent_id=None,
                            user_content=f"{checkpoints}.{i}",
                            model="demo",
                        )
                    )
                    tg.start_soon(
                        functools.partial(store.list_messages, conversation.id, owner=OWNER)
                    )
                for _ in range(checkpoints):
                    await anyio.lowlevel.checkpoint()
                scope.cancel()
        with anyio.fail_after(10):  # nothing is left locked
            await store.update_conversation(conversation.id, owner=OWNER, title=str(checkpoints))
    await store.close()
    async with await open_store(database) as reopened:
        messages = await reopened.list_messages(conversation.id, owner=OWNER)
    # Each exchange is whole: every question written has its answer, and nothing else.
    questions = sorted(m.id for m in messages if m.role == "user")
    assert sorted(m.parent_id or "" for m in messages if m.role == "assistant") == questions


async def test_concurrent_writes_all_land_each_whole(database: Database) -> None:
    # PostgreSQL's writer threads run turns' starts at once (SQLite's one runs them in turn):
    # every one lands, each question with its answer under it, and the leaf is one of them.
    async with await open_store(database, clock=Ticker()) as store:
        conversation = await start_thirty_at_once(store)
        messages = await store.list_messages(conversation.id, owner=OWNER)
        leaf = (await store.get_conversation(conversation.id, owner=OWNER)).current_leaf_id
    questions = {m.id: m for m in messages if m.role == "user"}
    assert sorted(int(m.content) for m in questions.values()) == list(range(30))
    answers = [m for m in messages if m.role == "assistant"]
    assert sorted(a.parent_id or "" for a in answers) == sorted(questions)
    assert leaf in {a.id for a in answers}


async def start_thirty_at_once(store: Store) -> Conversation:
    """A new conversation, and thirty turns started in it at once (each a new root), numbered
    by their question in the order they were asked."""
    conversation = await store.create_conversation(owner=OWNER)
    async with anyio.create_task_group() as tg:
        for i in range(30):
            tg.start_soon(
                lambda i=i: store.start_exchange(
                    conversation.id, owner=OWNER, parent_id=None, user_content=str(i), model="m"
                )
            )
    return conversation
