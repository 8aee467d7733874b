"""Everything SQLite-specific about the store: database URLs, the engines' connect hook, and the
(empty) hooks ``store.postgres`` fills: the invariants' lock and which errors mean unreachable.

The store gets two synchronous engines (the stdlib ``sqlite3`` driver) for one file: a pooled
*reader* whose connections run concurrently on the store's reader threads (WAL lets them read
while a write is in progress), and a *writer* with a single connection that only the store's one
writer thread uses, so SQLite never sees two writers of ours at once. The connect hook sets the
pragmas (WAL, busy timeout, foreign keys, synchronous=NORMAL), and the begin hook (the engine's
dialect's ``do_begin``) makes SQLAlchemy, not the sqlite3 module, emit ``BEGIN`` — ``BEGIN
IMMEDIATE`` on the writer, so a write transaction takes the lock up front instead of failing to
upgrade a read lock when another process wrote in between.

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

__all__ = [
    "BUSY_TIMEOUT_MS",
    "SUPPORTED",
    "create_engines",
    "default_database_url",
    "index_pending",
    "lock_invariants",
    "resolve_url",
    "unreachable",
]

BUSY_TIMEOUT_MS = 5000
"""How long a connection waits for another process's lock before failing with "locked"."""

SUPPORTED = (
    "sqlite:///path/to/file.db (or sqlite+pysqlite:///, or sqlite+aiosqlite:/// as older "
    "configurations wrote it), or a file path"
)

_DRIVER = "sqlite+pysqlite"
_ACCEPTED_DRIVERS = frozenset({"sqlite", "sqlite+pysqlite", "sqlite+aiosqlite"})
"""URL schemes taken for a SQLite file; ``sqlite+aiosqlite`` is what ssechat used to run on."""


def default_database_url() -> str:
    """``sqlite:///<user data dir>/ssechat.db``; the directory is made when opened."""
    return URL.create("sqlite", database=str(_default_path())).render_as_string(hide_password=False)


def _default_path() -> Path:
    return Path(platformdirs.user_data_dir("ssechat")) / "ssechat.db"


def resolve_url(url_or_path: str | os.PathLike[str] | None) -> URL:
    """Turn what the user gave into a ``sqlite+pysqlite`` URL for a database file.

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
    if url.drivername not in _ACCEPTED_DRIVERS:
        raise ValueError(f"unsupported database URL scheme {url.drivername!r}; use {SUPPORTED}")
    if not url.database or url.database == ":memory:":
        raise ValueError(f"an in-memory database cannot be shared; use {SUPPORTED}")
    return url.set(drivername=_DRIVER)


def _file_url(path: Path) -> URL:
    return URL.create(_DRIVER, database=str(path))


def create_engines(url: URL, *, readers: int = 3, writers: int = 1) -> tuple[sa.Engine, sa.Engine]:
    """Make the (reader, writer) engines for the database file of ``url``, creating its folder.

    The reader's pool holds a connection for each of ``readers`` threads; the writer's holds one
    (``writers`` must be 1: SQLite has one writer at a time).
    Connections may be closed by another thread than the one that opened them (the store closes
    them all at once), never used by two at a time.
    """
    database = url.database or ""
    if not database.startswith("file:"):  # a "file:" URI is the caller's to manage
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    connect_args = {"check_same_thread": False}
    reader = sa.create_engine(
        url, pool_size=readers, max_overflow=readers, connect_args=connect_args
    )
    writer = sa.create_engine(url, pool_size=1, max_overflow=0, connect_args=connect_args)
    _install_hooks(reader, begin="BEGIN")
    _install_hooks(writer, begin="BEGIN IMMEDIATE")
    return reader, writer


def _install_hooks(engine: sa.Engine, *, begin: str) -> None:
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

    def do_begin(connection: Any) -> None:
        connection.dbapi_connection.execute(begin)

    sa.event.listen(engine, "connect", on_connect)
    # The dialect's do_begin (a no-op for sqlite3) rather than a "begin" event listener: any
    # connection event makes SQLAlchemy run its event machinery around every statement.
    setattr(engine.dialect, "do_begin", do_begin)  # noqa: B010 - an instance's, not the class's


def lock_invariants(conn: sa.Connection) -> None:
    """Nothing to do: a write transaction on SQLite holds the database's one write lock from
    its ``BEGIN IMMEDIATE``, so the writes that keep a rule spanning rows already run one after
    the other, across processes too."""


def unreachable(error: BaseException) -> bool:
    """Never: a file is always reachable (a locked or broken one is another failure)."""
    return False


# --- the search index's deferred work (m011_search_pending; store.indexer runs it) ----------

_PENDING_UP_TO = sa.text(
    "SELECT max(seq) FROM (SELECT seq FROM search_pending ORDER BY seq LIMIT :limit)"
)
# The text as m007's view gives it to FTS5 (the snippet marks stripped): what is indexed must be
# what the view shows, or FTS5's deletes and snippets would disagree with its index.
_INDEX_PENDING = sa.text(
    "INSERT INTO messages_fts (rowid, content) "
    "SELECT m.seq, replace(replace(m.content, char(57344), ''), char(57345), '') "
    "FROM search_pending AS p JOIN messages AS m ON m.seq = p.seq WHERE p.seq <= :last"
)
_NO_LONGER_PENDING = sa.text("DELETE FROM search_pending WHERE seq <= :last")


def index_pending(conn: sa.Connection, limit: int) -> int:
    """Write up to ``limit`` pending messages (the oldest) into the FTS5 index, in the
    transaction of ``conn``; how many. A pending message is one the triggers noted as saved and
    not yet indexed: ``search_messages`` (the index's content) leaves them out until now."""
    last = conn.execute(_PENDING_UP_TO, {"limit": limit}).scalar()
    if last is None:
        return 0
    conn.execute(_INDEX_PENDING, {"last": last})
    return conn.execute(_NO_LONGER_PENDING, {"last": last}).rowcount
