"""Everything SQLite-specific about the store: database URLs, and the engines' connect hook.

The store gets two engines for one file: a pooled *reader* whose connections run concurrently
(WAL lets them read while a write is in progress), and a *writer* with a single connection that
the store only uses under its write lock, so SQLite never sees two writers of ours at once. The
connect hook sets the pragmas (WAL, busy timeout, foreign keys, synchronous=NORMAL), and the begin
hook makes SQLAlchemy, not the sqlite3 module, emit ``BEGIN`` — ``BEGIN IMMEDIATE`` on the writer,
so a write transaction takes the lock up front instead of failing to upgrade a read lock when
another process wrote in between.

No other module of the store may hold SQLite-only SQL; this one must never hold queries.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import platformdirs
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = [
    "BUSY_TIMEOUT_MS",
    "SUPPORTED",
    "create_engines",
    "default_database_url",
    "resolve_url",
]

BUSY_TIMEOUT_MS = 5000
"""How long a connection waits for another process's lock before failing with "locked"."""

SUPPORTED = "sqlite+aiosqlite:///path/to/file.db, sqlite:///path/to/file.db, or a file path"

_DRIVER = "sqlite+aiosqlite"


def default_database_url() -> str:
    """``sqlite+aiosqlite:///<user data dir>/ssechat.db``; the directory is made when opened."""
    return _file_url(_default_path()).render_as_string(hide_password=False)


def _default_path() -> Path:
    return Path(platformdirs.user_data_dir("ssechat")) / "ssechat.db"


def resolve_url(url_or_path: str | os.PathLike[str] | None) -> URL:
    """Turn what the user gave into an aiosqlite URL for a database file.

    Raises ``ValueError`` for anything else, naming what is supported but never echoing the URL
    (it may hold a password).
    """
    if url_or_path is None:
        return _file_url(_default_path())
    if isinstance(url_or_path, os.PathLike) or "://" not in url_or_path:
        text = os.fspath(url_or_path)
        if not text or text == ":memory:":
            raise ValueError(f"an in-memory database cannot be shared; use {SUPPORTED}")
        return _file_url(Path(text).expanduser())
    try:
        url = make_url(url_or_path)
    except ArgumentError:
        raise ValueError(f"not a database URL; use {SUPPORTED}") from None
    if url.drivername == "sqlite":
        url = url.set(drivername=_DRIVER)
    if url.drivername != _DRIVER:
        raise ValueError(f"unsupported database URL scheme {url.drivername!r}; use {SUPPORTED}")
    if not url.database or url.database == ":memory:":
        raise ValueError(f"an in-memory database cannot be shared; use {SUPPORTED}")
    return url


def _file_url(path: Path) -> URL:
    return URL.create(_DRIVER, database=str(path))


def create_engines(url: URL) -> tuple[AsyncEngine, AsyncEngine]:
    """Make the (reader, writer) engines for the database file of ``url``, creating its folder."""
    database = url.database or ""
    if not database.startswith("file:"):  # a "file:" URI is the caller's to manage
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    reader = create_async_engine(url, pool_size=5, max_overflow=10)
    writer = create_async_engine(url, pool_size=1, max_overflow=0)
    _install_hooks(reader, begin="BEGIN")
    _install_hooks(writer, begin="BEGIN IMMEDIATE")
    return reader, writer


def _install_hooks(engine: AsyncEngine, *, begin: str) -> None:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Transactions are begun by the hook below, not by the driver's legacy implicit BEGIN
        # (which skips SELECT and DDL, so reads were not repeatable and DDL not transactional).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # busy_timeout first: switching to WAL needs a lock another process may hold.
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    def on_begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql(begin)

    sa.event.listen(engine.sync_engine, "connect", on_connect)
    sa.event.listen(engine.sync_engine, "begin", on_begin)
