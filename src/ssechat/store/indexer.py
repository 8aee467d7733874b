"""``SearchIndexer``: the search index's deferred work, written in batches off the request path
(SQLite's FTS5 index; ``Dialect.index_search``, in ``store.sqlite``).

An FTS5 index costs most per transaction that writes to it: each commit adds a segment, and
merges follow. Indexed by triggers in the transaction of every saved message (m007), a chat's
start paid for two or three such commits (its question, its title, its answer's end), which the
benchmark measured at about a quarter of a start's server CPU (``bench/PROFILE.md``, search).
So the triggers of migration ``m011_search_pending`` only note a saved message as pending (one
row of integers), and this indexer writes the pending messages into the index, ``BATCH`` at a
time, one short write transaction each:

- every ``INTERVAL`` seconds while the store is open (a tick that finds nothing pending writes
  nothing),
- before each search (``flush``), so that a search sees every message saved before it,
- and once more as the store closes.

A message is searchable within ``INTERVAL`` of its save, and at once by a search. This module
must never run a batch on the event loop, hold the write lock for more than a batch, or stop
when a batch fails: the database may be down, and the next tick tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Final

import sqlalchemy as sa

from ssechat.store.migrations import applied_migrations, m011_search_pending
from ssechat.store.threads import StoreThreads

__all__ = ["BATCH", "INTERVAL", "SearchIndexer", "start_search_indexer"]

logger = logging.getLogger(__name__)

INTERVAL: Final = 0.5
"""Seconds between the indexer's ticks: the run saver's interval, so an answer's batches and
its index work come at the same pace."""
BATCH: Final = 500
"""Messages indexed in one write transaction, at most (about 50 ms of CPU for long texts)."""


class SearchIndexer:
    """Writes a store's pending messages into its search index (see the module docstring).

    ``index_batch(conn, limit)`` indexes up to ``limit`` pending messages in the transaction of
    ``conn`` and returns how many it took.
    """

    def __init__(
        self,
        threads: StoreThreads,
        index_batch: Callable[[sa.Connection, int], int],
        *,
        interval: float | None = None,
        batch: int | None = None,
    ) -> None:
        self._threads = threads
        self._index_batch = index_batch
        self._interval = INTERVAL if interval is None else interval
        self._batch = BATCH if batch is None else batch
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    def start(self) -> None:
        """Begin the ticks (on the running event loop)."""
        if self._task is None:
            self._task = asyncio.create_task(self._tick(), name="ssechat-search-indexer")

    async def flush(self) -> int:
        """Index every message pending now, a batch per transaction; how many were indexed."""
        done = 0
        while True:
            taken = await self._threads.write(lambda conn: self._index_batch(conn, self._batch))
            done += taken
            if taken < self._batch:
                return done

    async def close(self) -> None:
        """Stop the ticks, then index what is pending (a failure is logged: the next start's
        ticks index it)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.flush()
        except Exception:
            logger.warning("indexing the last saved messages for search failed", exc_info=True)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
            except Exception:
                # Logged once per outage, not twice a second; the next tick tries again.
                if not self._failing:
                    logger.warning("indexing saved messages for search failed; will retry")
                self._failing = True
            else:
                if self._failing:
                    logger.info("indexing saved messages for search works again")
                self._failing = False


async def start_search_indexer(
    threads: StoreThreads, index_batch: Callable[[sa.Connection, int], int] | None
) -> SearchIndexer | None:
    """A started indexer if the database defers its index work (``index_batch``: SQLite's) and
    its schema has m011's pending table (a test may open an older one); else None."""
    if index_batch is None or not await threads.read(_defers_indexing):
        return None
    indexer = SearchIndexer(threads, index_batch)
    indexer.start()
    return indexer


def _defers_indexing(conn: sa.Connection) -> bool:
    return m011_search_pending.__name__ in applied_migrations(conn)
