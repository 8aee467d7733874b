"""The store's threads: writer threads, reader threads, and the hand-off to the loop.

``StoreThreads`` runs a synchronous body (a function of a SQLAlchemy ``Connection``) whole on a
thread, in one transaction, and hands its outcome to the event loop: the loop pays a single
thread hop per operation. Writes run on the writer threads, reads on the reader threads, each
thread with a connection of its own, one snapshot per read. SQLite has ONE writer thread, so its
writes are serialized in the order they were asked for and never meet SQLite's file lock;
PostgreSQL takes concurrent writers (row locks; the store's writes take theirs in one order), so
it has a few: a turn's start is several round trips, and one writer thread made them the limit
on starts per second (measured: ``bench/PROFILE.md``).

A body runs to its end even when its caller is cancelled (a client leaves, a run is stopped):
the caller stops waiting at once, and the thread finishes the transaction, never cut in the
middle of a driver call; a failure nobody is left to see is logged. ``close`` waits for the
bodies under way, then closes the connections and stops the threads.

When the database cannot be reached (a PostgreSQL server down or restarting: the dialect's
``unreachable`` says which errors mean that), the operation raises ``ServiceUnavailableError``,
never the driver's error, and every thread's connection is dropped and made again at its next
operation, so the store recovers by itself when the server is back. A kept connection found
dead before the commit (the server restarted between two operations) costs no failure: nothing
was committed, so the body runs again on a new one. On SQLite nothing is ever unreachable.

``reads`` and ``writes`` turn a method whose body takes the transaction's connection into the
public coroutine that runs it there: the store's conversations (``store.sql``) and its accounts
(``store.accounts``) are both made of such methods.

This module must never hold a query or know the store's tables, and never run a body on the
event loop's thread.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import sqlalchemy as sa

from ssechat.errors import ServiceUnavailableError

__all__ = ["READER_THREADS", "OnThreads", "StoreThreads", "reads", "writes"]

logger = logging.getLogger(__name__)

UNREACHABLE = "the database is unreachable; try again shortly"

READER_THREADS = 3
"""How many reads may run at once (each thread keeps one connection)."""

_T = TypeVar("_T")
_P = ParamSpec("_P")


class StoreThreads:
    """The threads of one store, over its (reader, writer) engines, which it disposes on close.

    The engines' pools must hold a connection for each thread: ``readers`` for the reader,
    ``writers`` for the writer. ``lock_invariants`` and ``unreachable`` are the dialect's hooks
    (see ``store.dialects``): no lock and nothing unreachable unless given.
    """

    def __init__(
        self,
        reader: sa.Engine,
        writer: sa.Engine,
        *,
        readers: int = READER_THREADS,
        writers: int = 1,
        lock_invariants: Callable[[sa.Connection], None] = lambda conn: None,
        unreachable: Callable[[BaseException], bool] = lambda error: False,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.lock_invariants = lock_invariants
        """Called first by a write that keeps a rule spanning rows (the dialect's hook)."""
        self._unreachable = unreachable
        # Bumped when any thread finds the database unreachable: every connection made before
        # is dead too (the server went away), and is made again at its thread's next operation.
        self._generation = 0
        self._writes = ThreadPoolExecutor(writers, thread_name_prefix="ssechat-store-writer")
        self._reads = ThreadPoolExecutor(readers, thread_name_prefix="ssechat-store-reader")
        self._write_local = _Connections(writer)
        self._read_local = _Connections(reader)
        self._closed = False
        self._closing: asyncio.Future[None] | None = None

    def check_open(self) -> None:
        """``RuntimeError`` once ``close`` has been called."""
        if self._closed:
            raise RuntimeError("the store is closed")

    async def write(self, body: Callable[[sa.Connection], _T]) -> _T:
        """Run ``body`` on a writer thread in one write transaction (on SQLite it takes the
        write lock as it begins): committed if ``body`` returns, rolled back if it raises. Runs
        to its end even if this caller is cancelled."""
        self.check_open()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[_T] = loop.create_future()
        self._writes.submit(_job, loop, waiter, functools.partial(self._in_write, body))
        return await waiter

    async def read(self, body: Callable[[sa.Connection], _T]) -> _T:
        """Run ``body`` on a reader thread in one read transaction (one snapshot)."""
        self.check_open()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[_T] = loop.create_future()
        self._reads.submit(_job, loop, waiter, functools.partial(self._in_read, body))
        return await waiter

    async def close(self) -> None:
        """Wait for the bodies under way, then close every connection. Idempotent."""
        self._closed = True
        if self._closing is None:
            loop = asyncio.get_running_loop()
            self._closing = loop.create_future()
            # On a thread of its own: it waits for every write and read already asked for.
            threading.Thread(
                target=_job,
                args=(loop, self._closing, self._shut_down),
                name="ssechat-store-close",
                daemon=True,
            ).start()
        await asyncio.shield(self._closing)

    def _shut_down(self) -> None:
        try:
            self._writes.shutdown(wait=True)
            self._reads.shutdown(wait=True)
            self._write_local.close_all()
            self._read_local.close_all()
        finally:
            self.writer.dispose()
            self.reader.dispose()

    def _in_write(self, body: Callable[[sa.Connection], _T]) -> _T:
        return self._run(body, self._write_local)

    def _in_read(self, body: Callable[[sa.Connection], _T]) -> _T:
        return self._run(body, self._read_local)

    def _run(self, body: Callable[[sa.Connection], _T], connections: _Connections) -> _T:
        """Run ``body`` in a transaction of this thread's connection (made if needed).

        A connection kept from before may have died meanwhile (the server restarted): if it
        fails as unreachable before the commit, nothing was committed, so the body runs once
        more on a new connection. Unreachable otherwise (a new connection refused, or lost at
        the commit, when whether it committed is unknown): ``ServiceUnavailableError``.
        """
        may_retry = True
        while True:
            conn: sa.Connection | None = None
            fresh = committing = False
            try:
                conn, fresh = connections.get(self._generation)
                with conn.begin():
                    result = body(conn)
                    committing = True
                return result
            except sa.exc.DBAPIError as error:
                if not self._unreachable(error):
                    raise
                # Every connection made before is as dead: each thread makes its own again.
                self._generation += 1
                if conn is not None:
                    connections.forget(conn)
                if conn is None or fresh or committing or not may_retry:
                    raise ServiceUnavailableError(UNREACHABLE) from None
                may_retry = False


class _Connections:
    """Each thread's connection of one engine (made at the thread's first operation, and again
    after the database was found unreachable), and the list of them all, to close them."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._local = threading.local()  # .conn, .generation: this thread's
        self._all: list[sa.Connection] = []
        self._lock = threading.Lock()

    def get(self, generation: int) -> tuple[sa.Connection, bool]:
        """This thread's connection, and whether it was made just now."""
        local = self._local
        conn: sa.Connection | None = getattr(local, "conn", None)
        if conn is not None and local.generation == generation:
            return conn, False
        if conn is not None:
            self.forget(conn)
        local.generation = generation
        conn = local.conn = self.engine.connect()
        with self._lock:
            self._all.append(conn)
        return conn, True

    def forget(self, conn: sa.Connection) -> None:
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)
        _drop(conn)

    def close_all(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()


def _drop(conn: sa.Connection) -> None:
    """Let go of a connection to a server that went away: never reused, never raising."""
    try:
        conn.invalidate()
        conn.close()
    except Exception:  # a dead connection may fail to close; it is gone either way
        logger.debug("closing a lost database connection failed", exc_info=True)


def _job(
    loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[_T], call: Callable[[], _T]
) -> None:
    """On a store thread: run ``call`` to its end, then hand its outcome to the loop."""
    try:
        outcome: tuple[bool, Any] = (True, call())
    except BaseException as error:  # handed over to the caller, whatever it is
        outcome = (False, error)
    try:
        loop.call_soon_threadsafe(_deliver, waiter, *outcome)
    except RuntimeError:  # the loop is closed: nobody can be waiting any more
        if not outcome[0]:
            logger.warning("a store operation failed after its loop closed", exc_info=outcome[1])


def _deliver(waiter: asyncio.Future[Any], ok: bool, value: Any) -> None:
    """On the loop: give the caller the outcome, or log a failure if the caller left."""
    if waiter.cancelled():
        if not ok:
            logger.warning("a store operation failed after its caller left", exc_info=value)
    elif ok:
        waiter.set_result(value)
    else:
        waiter.set_exception(value)


class OnThreads(Protocol):
    """What ``reads`` and ``writes`` need of the object whose methods they make."""

    @property
    def threads(self) -> StoreThreads: ...


_S = TypeVar("_S", bound=OnThreads)


def reads(
    method: Callable[Concatenate[_S, sa.Connection, _P], _T],
) -> Callable[Concatenate[_S, _P], Coroutine[Any, Any, _T]]:
    """Make the public method: ``method``'s body runs whole on a reader thread, in one
    transaction of that thread's connection."""

    @functools.wraps(method)
    async def run(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        return await self.threads.read(lambda conn: method(self, conn, *args, **kwargs))

    return run


def writes(
    method: Callable[Concatenate[_S, sa.Connection, _P], _T],
) -> Callable[Concatenate[_S, _P], Coroutine[Any, Any, _T]]:
    """Make the public method: ``method``'s body runs whole on the writer thread, in one write
    transaction, committed on success and rolled back on any error."""

    @functools.wraps(method)
    async def run(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        return await self.threads.write(lambda conn: method(self, conn, *args, **kwargs))

    return run
