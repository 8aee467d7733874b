"""Everything PostgreSQL-specific about the store: database URLs, engines, the global lock, and
which driver errors mean the server cannot be reached.

The store runs on PostgreSQL through psycopg 3, synchronously, on the same ``StoreThreads`` as
SQLite (the driver was chosen by measurement: ``bench/PROFILE.md``). The reader engine's
transactions are ``REPEATABLE READ``, so every read sees one snapshot as it does on SQLite; the
writer's are ``READ COMMITTED``. Several ssechat processes may write at once, so a write that
keeps a rule spanning rows (one first admin, never no active admin, unique emails) first takes
``pg_advisory_xact_lock`` (``lock_invariants``): such writes run one after the other across
processes, as ``BEGIN IMMEDIATE`` makes them on SQLite. Connections give up after
``CONNECT_TIMEOUT`` seconds, so an unreachable server fails a request fast (``unreachable`` tells
``StoreThreads`` which errors mean that).

The runs' batched save of their answers so far (``save_partial``) is the one query here: on
PostgreSQL it is a single ``UPDATE … FROM unnest(…)`` of arrays, rather than the portable
executemany of one UPDATE per answer, which cost psycopg 2.4 times the CPU (the bench). No other
module of the store may hold PostgreSQL-only SQL; this one must never hold the store's other
queries, and never put a URL in an error message (it holds a password).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

__all__ = [
    "CONNECT_TIMEOUT",
    "INVARIANTS_LOCK",
    "SUPPORTED",
    "WRITER_THREADS",
    "accepts",
    "create_engines",
    "lock_invariants",
    "resolve_url",
    "save_partial",
    "unreachable",
]

WRITER_THREADS = 4
"""Writes at once: a turn's start is several round trips, and one writer made them the limit on
starts per second (``bench/PROFILE.md``); PostgreSQL's row locks keep concurrent writes right."""

CONNECT_TIMEOUT = 5
"""Seconds to wait for a connection before calling the database unreachable."""

INVARIANTS_LOCK = 0x55EC4A7
"""The advisory lock key of the writes that keep a rule spanning rows (ssechat's own number)."""

SUPPORTED = (
    "postgresql://user:password@host:port/database (or postgres://, or postgresql+psycopg://)"
)

_DRIVER = "postgresql+psycopg"
_ACCEPTED_DRIVERS = frozenset({"postgresql", "postgres", "postgresql+psycopg"})
_SCHEMES = tuple(f"{name}://" for name in _ACCEPTED_DRIVERS)

# SQLSTATE classes and codes that say the server is gone or not taking connections: connection
# exceptions (08…), and admin/crash shutdown or "starting up" (57P01-57P03).
_UNREACHABLE_CLASS = "08"
_UNREACHABLE_CODES = frozenset({"57P01", "57P02", "57P03"})


def accepts(url: str) -> bool:
    """Whether ``url`` is meant for PostgreSQL (by its scheme)."""
    return url.lower().startswith(_SCHEMES)


def resolve_url(url: str) -> URL:
    """The ``postgresql+psycopg`` URL for ``url``; ``ValueError`` naming the supported forms
    (never the URL) for anything else."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise ValueError(f"not a database URL; use {SUPPORTED}") from None
    if parsed.drivername not in _ACCEPTED_DRIVERS:
        raise ValueError(f"unsupported PostgreSQL URL scheme; use {SUPPORTED}")
    if not parsed.database:
        raise ValueError(f"the PostgreSQL URL names no database; use {SUPPORTED}")
    return parsed.set(drivername=_DRIVER)


def create_engines(
    url: URL, *, readers: int = 3, writers: int = WRITER_THREADS
) -> tuple[sa.Engine, sa.Engine]:
    """The (reader, writer) engines: a connection for each of ``readers`` and ``writers``
    threads. Nothing connects yet."""
    connect_args: dict[str, Any] = {
        "connect_timeout": CONNECT_TIMEOUT,
        "application_name": f"ssechat-{os.getpid()}",
    }
    # "format" (positional %s) so that the batched save's driver-level executemany
    # (``statements.positional``) takes plain tuples, as it does on SQLite.
    reader = sa.create_engine(
        url,
        pool_size=readers,
        max_overflow=readers,
        connect_args=connect_args,
        paramstyle="format",
        isolation_level="REPEATABLE READ",
    )
    writer = sa.create_engine(
        url,
        pool_size=writers,
        max_overflow=0,
        connect_args=connect_args,
        paramstyle="format",
        isolation_level="READ COMMITTED",
    )
    return reader, writer


def lock_invariants(conn: sa.Connection) -> None:
    """Take the invariants' advisory lock for the rest of this transaction (released at its
    commit or rollback); another process's such write waits for it."""
    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({INVARIANTS_LOCK})")


def unreachable(error: BaseException) -> bool:
    """Whether ``error`` (raised by SQLAlchemy) means the server cannot be reached: the
    connection was lost, could not be made, or the server is shutting down or starting up."""
    if not isinstance(error, sa.exc.DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    code: str | None = getattr(error.orig, "sqlstate", None)
    if code is None:
        # No SQLSTATE: a failure on the client's side of the connection (refused, timed out,
        # closed), which psycopg raises as an OperationalError.
        return isinstance(error, sa.exc.OperationalError)
    return code.startswith(_UNREACHABLE_CLASS) or code in _UNREACHABLE_CODES


_SAVE_PARTIAL = (
    "UPDATE messages AS m SET content = v.content, updated_at = %s "
    "FROM unnest(%s::text[], %s::text[]) AS v(id, content) "
    "WHERE m.id = v.id AND m.status = 'streaming'"
)
_SAVE_PARTIAL_REASONING = (
    "UPDATE messages AS m SET content = v.content, reasoning = v.reasoning, updated_at = %s "
    "FROM unnest(%s::text[], %s::text[], %s::text[]) AS v(id, content, reasoning) "
    "WHERE m.id = v.id AND m.status = 'streaming'"
)


def save_partial(
    conn: sa.Connection,
    items: Sequence[tuple[str, str]],
    reasoning: Mapping[str, str] | None,
    now: float,
) -> None:
    """``statements.SAVE_PARTIAL`` (or ``SAVE_PARTIAL_REASONING``) for every (id, text) of
    ``items`` at once: one statement, its values in arrays (an answer without reasoning gets
    NULL), so the work per answer is the server's alone."""
    ids = [id for id, _ in items]
    texts = [text for _, text in items]
    if reasoning is None:
        conn.exec_driver_sql(_SAVE_PARTIAL, (now, ids, texts))
    else:
        thoughts = [reasoning.get(id) for id in ids]
        conn.exec_driver_sql(_SAVE_PARTIAL_REASONING, (now, ids, texts, thoughts))
