"""ssechat.store's execution: each method runs whole on a store thread, never on the loop's; a
caller that leaves does not cut its write short; close waits for what is under way."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import anyio
import pytest
import sqlalchemy as sa

from ssechat.errors import NotFoundError
from ssechat.store import Store

from .test_store import Gate, Ticker

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
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "ssechat.db"


async def test_a_caller_cancelled_mid_write_leaves_it_to_finish_and_close_waits(
    db_path: Path,
) -> None:
    clock = GatedClock()
    store = await Store.open(db_path, clock=clock)
    conversation = await store.create_conversation()
    _, answer = await store.add_exchange(
        conversation.id, parent_id=None, user_content="q", model="demo"
    )
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

    async with await Store.open(db_path) as reopened:
        saved = await reopened.get_message(answer.id)
    assert (saved.content, saved.status) == ("saved", "stopped")


async def test_a_failure_nobody_waits_for_is_logged(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = GatedClock()
    store = await Store.open(db_path, clock=clock)
    try:
        gate = clock.arm()
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: store.update_message("nope", content="late"))
                await gate.wait_entered()
                tg.cancel_scope.cancel()
        with caplog.at_level(logging.WARNING, logger="ssechat.store.sql"):
            gate.release()
            await store.close()  # the failure reaches the loop before close is done
    finally:
        await store.close()
    [record] = [r for r in caplog.records if "after its caller left" in r.getMessage()]
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], NotFoundError)


async def test_close_waits_for_a_read_under_way(db_path: Path) -> None:
    store = await Store.open(db_path)
    conversation = await store.create_conversation(title="kept")
    gate = Gate()
    read: list[str] = []
    closed: list[bool] = []

    def slow_read(conn: sa.Connection) -> str:
        gate.hold()
        return str(conn.scalar(sa.text("SELECT title FROM conversations")))

    async def reader() -> None:
        read.append(await store._read(slow_read))

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
                await store.get_conversation(conversation.id)
            gate.release()
    assert (read, closed) == (["kept"], [True])


async def test_the_database_is_only_touched_on_the_store_threads(db_path: Path) -> None:
    clock = GatedClock()
    store = await Store.open(db_path, clock=clock)
    readers: set[threading.Thread] = set()
    try:
        conversation = await store.create_conversation()
        await store.start_exchange(conversation.id, user_content="q", model="m")

        def which(conn: sa.Connection) -> threading.Thread:
            return threading.current_thread()

        async def read() -> None:
            readers.add(await store._read(which))

        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(read)
    finally:
        await store.close()
    writers = clock.threads
    assert [t.name.startswith("ssechat-store-writer") for t in writers] == [True]
    assert readers
    assert all(t.name.startswith("ssechat-store-reader") for t in readers)
    assert threading.current_thread() not in writers | readers
    for thread in writers | readers:  # close stopped them
        thread.join(10)
        assert not thread.is_alive()
    # ... and gave back, then closed, every connection.
    assert store._reader.pool.checkedout() == store._writer.pool.checkedout() == 0
    assert store._reader.pool.checkedin() == store._writer.pool.checkedin() == 0


async def test_writes_run_in_the_order_they_were_asked_for(db_path: Path) -> None:
    async with await Store.open(db_path, clock=Ticker()) as store:
        conversation = await store.create_conversation()
        async with anyio.create_task_group() as tg:
            for i in range(30):
                tg.start_soon(
                    lambda i=i: store.add_message(
                        conversation.id, parent_id=None, role="user", content=str(i)
                    )
                )
        messages = await store.list_messages(conversation.id)
    assert [m.content for m in messages] == [str(i) for i in range(30)]
    times = [m.created_at for m in messages]
    assert times == sorted(times)


async def test_close_is_idempotent_and_concurrent(db_path: Path) -> None:
    store = await Store.open(db_path)
    await store.create_conversation()
    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(store.close)
    await store.close()
    with pytest.raises(RuntimeError, match="closed"):
        await store.save_partial_answers({})
