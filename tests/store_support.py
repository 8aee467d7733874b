"""Helpers shared by the store's tests: a ticking clock, a gate for store threads, and plain-SQL
access to the database beside the store (to compare before/after, or to build what the store's
operations never make), with the stdlib driver for a SQLite file and psycopg for PostgreSQL."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeAlias

import anyio
import anyio.to_thread
import psycopg

from ssechat.store import Message

Database: TypeAlias = Path | str
"""What the ``database`` fixture gives: a SQLite file's path, or a PostgreSQL URL."""

NOT_DERIVED = (
    " AND name NOT LIKE 'messages_fts%' AND name NOT LIKE 'titles_fts%'"
    " AND name != 'search_pending'"
)
"""A ``sqlite_master`` condition leaving out the search index (FTS5's tables) and what is still
to be indexed: derived from the rows, written by the store's indexer in its own time, not data."""

OWNER = "ann"
"""The owner the store's tests act as (any string: the store does not check it names a user)."""
OTHER = "bob"
"""Another owner, whose ids must answer exactly as unknown ones."""


class Ticker:
    """A clock that moves one second per reading, so every write has its own time."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


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


def table_rows(database: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table in the database (conversations, messages, users, sessions,
    keys, setup tokens…), by table name, ordered by the first column (each table's key), read
    beside the store, for before/after checks."""
    if isinstance(database, str):
        with psycopg.connect(database) as pg:
            names = [
                str(name)
                for (name,) in pg.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
                )
            ]
            return {
                name: [tuple(row) for row in pg.execute(f'SELECT * FROM "{name}" ORDER BY 1')]
                for name in names
            }
    with contextlib.closing(sqlite3.connect(database)) as con:
        names = [
            name
            for (name,) in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                + NOT_DERIVED
            )
        ]
        return {
            name: con.execute(f'SELECT * FROM "{name}" ORDER BY 1').fetchall() for name in names
        }


def sql(database: Database, statement: str, parameters: Sequence[Any] = ()) -> None:
    """Run one statement (``?`` placeholders) on the database beside the store, and commit."""
    if isinstance(database, str):
        with psycopg.connect(database) as pg:
            pg.execute(statement.replace("?", "%s"), parameters)  # type: ignore[arg-type]
        return
    with contextlib.closing(sqlite3.connect(database)) as con, con:
        con.execute(statement, parameters)


def insert_message(
    path: Database,
    conversation_id: str,
    *,
    role: str,
    content: str,
    status: str = "complete",
    parent_id: str | None = None,
) -> str:
    """Insert, with plain SQL, a message the store's operations never make (a system message,
    an answer without a question, a question still being written); return its id."""
    message_id = uuid.uuid4().hex
    sql(
        path,
        "INSERT INTO messages (id, conversation_id, parent_id, role, content, status, "
        "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 0, 0)",
        (message_id, conversation_id, parent_id, role, content, status),
    )
    return message_id


def path_in(tree: Sequence[Message], message_id: str) -> list[Message]:
    """The branch from the root down to ``message_id``, by the parent links of ``tree`` (a
    conversation's messages as listed): what the store's own branch must agree with."""
    by_id = {message.id: message for message in tree}
    path = [by_id[message_id]]
    while (parent_id := path[-1].parent_id) is not None:
        path.append(by_id[parent_id])
    return path[::-1]
