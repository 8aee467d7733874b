"""ssechat.store.indexer on SQLite: a saved message is noted as pending by the triggers
(m011), written into the FTS5 index later in batches (each tick, before each search, at close),
and the index agrees with its content at every commit in between."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
import sqlalchemy as sa

from ssechat.store import Store, open_store, sqlite
from ssechat.store import indexer as indexer_module
from ssechat.store.indexer import SearchIndexer

from .store_support import OWNER, Ticker

pytestmark = [pytest.mark.anyio, pytest.mark.sqlite_only]


def rows(path: Path, statement: str) -> list[Any]:
    with contextlib.closing(sqlite3.connect(path)) as con:
        return con.execute(statement).fetchall()


def pending(path: Path) -> int:
    return int(rows(path, "SELECT count(*) FROM search_pending")[0][0])


def check_index(path: Path) -> None:
    """FTS5's own check: the index holds exactly what its content (the view) shows."""
    with contextlib.closing(sqlite3.connect(path)) as con, con:
        con.execute("INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)")


@pytest.fixture
async def quiet(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Store]:
    """A store whose indexer never ticks during the test: only searches and close index."""
    monkeypatch.setattr(indexer_module, "INTERVAL", 3600.0)
    async with await open_store(db_path, clock=Ticker()) as store:
        yield store


async def ask(store: Store, text: str) -> tuple[str, str]:
    conversation = await store.create_conversation(owner=OWNER)
    started = await store.start_exchange(conversation.id, owner=OWNER, user_content=text, model="m")
    return conversation.id, started.answer.id


async def test_a_save_is_noted_pending_and_a_search_indexes_it_first(
    quiet: Store, db_path: Path
) -> None:
    _, answer = await ask(quiet, "where do numbats live")
    await quiet.update_message(answer, content="numbats live in the south west", status="complete")
    assert pending(db_path) == 2  # the question, and the answer once it ended
    check_index(db_path)  # pending rows are not in the index's content either
    assert rows(
        db_path, "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'numbats'"
    ) == [(0,)]
    hits, _ = await quiet.search(OWNER, "numbats")
    assert sorted(hit.role or "" for hit in hits) == ["assistant", "user"]
    assert pending(db_path) == 0
    check_index(db_path)


async def test_pending_messages_are_indexed_a_batch_per_transaction(
    quiet: Store, db_path: Path
) -> None:
    for i in range(7):
        await ask(quiet, f"quokka question {i}")
    assert pending(db_path) == 7
    taken = await quiet.threads.write(lambda conn: _index(conn, 3))
    assert (taken, pending(db_path)) == (3, 4)
    check_index(db_path)
    indexed = rows(db_path, "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'quokka'")
    assert indexed == [(3,)]  # the oldest three
    hits, _ = await quiet.search(OWNER, "quokka", limit=50)
    assert len(hits) == 7


def _index(conn: sa.Connection, limit: int) -> int:
    return sqlite.index_pending(conn, limit)


async def test_a_pending_message_changed_or_deleted_never_reaches_the_index(
    quiet: Store, db_path: Path
) -> None:
    conversation, answer = await ask(quiet, "about the bilby")
    await quiet.update_message(answer, content="first words: dingo", status="complete")
    await quiet.update_message(answer, content="second words: echidna", status="complete")
    gone, _ = await ask(quiet, "a doomed platypus")
    await quiet.delete_conversation(gone, owner=OWNER)
    assert pending(db_path) == 2  # the bilby question and its answer, once each
    check_index(db_path)
    assert (await quiet.search(OWNER, "dingo"))[0] == []
    assert (await quiet.search(OWNER, "platypus"))[0] == []
    assert [hit.message_id for hit in (await quiet.search(OWNER, "echidna"))[0]] == [answer]
    # Indexed now: a change takes the old words out of the index at once, the new ones follow.
    await quiet.update_message(answer, content="third words: wallaby", status="complete")
    assert (await quiet.search(OWNER, "echidna"))[0] == []
    assert [hit.message_id for hit in (await quiet.search(OWNER, "wallaby"))[0]] == [answer]
    await quiet.delete_conversation(conversation, owner=OWNER)
    assert (await quiet.search(OWNER, "wallaby"))[0] == []
    check_index(db_path)


async def test_the_ticks_index_without_a_search_and_close_indexes_the_rest(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    indexed = threading.Event()
    original = sqlite.index_pending

    def index_pending(conn: sa.Connection, limit: int) -> int:
        taken = original(conn, limit)
        if taken:
            indexed.set()
        return taken

    monkeypatch.setattr(indexer_module, "INTERVAL", 0.05)
    monkeypatch.setattr(sqlite, "index_pending", index_pending)  # as pick() finds it
    async with await open_store(db_path, clock=Ticker()) as store:
        await ask(store, "the kookaburra laughs")
        # A tick indexes it, however long the machine takes to come to it.
        assert await anyio.to_thread.run_sync(indexed.wait, 20)
        assert pending(db_path) == 0
    monkeypatch.undo()
    check_index(db_path)
    assert rows(
        db_path, "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'kookaburra'"
    ) == [(1,)]
    monkeypatch.setattr(indexer_module, "INTERVAL", 3600.0)
    async with await open_store(db_path, clock=Ticker(1_800_000_000.0)) as store:
        await ask(store, "the lyrebird mimics")
        assert pending(db_path) == 1
    assert pending(db_path) == 0  # close indexed it
    check_index(db_path)


async def test_a_failing_batch_is_logged_once_and_the_next_tick_goes_on(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []
    again = threading.Event()

    def index_batch(conn: sa.Connection, limit: int) -> int:
        calls.append(limit)
        if len(calls) <= 3:
            raise sa.exc.OperationalError("SELECT 1", {}, Exception("database is locked"))
        if len(calls) == 5:  # the tick after the first good one: that one has logged
            again.set()
        return 0

    async with await open_store(db_path, clock=Ticker()) as store:
        indexer = SearchIndexer(store.threads, index_batch, interval=0.01, batch=5)
        with caplog.at_level(logging.INFO, logger="ssechat.store.indexer"):
            indexer.start()
            assert await anyio.to_thread.run_sync(again.wait, 20)
            await indexer.close()
    failures = [r for r in caplog.records if "failed; will retry" in r.getMessage()]
    assert len(failures) == 1
    assert [r for r in caplog.records if "works again" in r.getMessage()]
    assert calls[0] == 5
