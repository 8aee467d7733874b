"""ssechat.store.migrations: an empty database migrates to the current schema, once."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ssechat.errors import NotFoundError
from ssechat.store import migrations, open_store, schema
from ssechat.store.migrations import MIGRATIONS, applied_migrations, apply_migrations
from ssechat.store.sqlite import create_engines, resolve_url

from .store_support import OWNER

pytestmark = pytest.mark.anyio

NAMES = [migration.__name__ for migration in MIGRATIONS]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "ssechat.db"


@contextlib.contextmanager
def writer(path: Path) -> Iterator[Engine]:
    """The store's own write engine for ``path`` (same hooks), without opening a Store."""
    reader, write_engine = create_engines(resolve_url(path))
    try:
        yield write_engine
    finally:
        write_engine.dispose()
        reader.dispose()


def describe(conn: Connection) -> dict[str, Any]:
    """Each table's columns (name, nullable) and indexes (name, columns, unique), as reflected
    from the database."""
    inspector = sa.inspect(conn)
    return {
        table: {
            "columns": sorted((c["name"], c["nullable"]) for c in inspector.get_columns(table)),
            "indexes": sorted(
                (str(i["name"]), tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(table)
            ),
        }
        for table in inspector.get_table_names()
    }


def expected_description() -> dict[str, Any]:
    """The same description, from ``schema``'s tables."""
    return {
        table.name: {
            "columns": sorted((c.name, bool(c.nullable)) for c in table.columns),
            "indexes": sorted(
                (str(i.name), tuple(c.name for c in i.columns), bool(i.unique))
                for i in table.indexes
            ),
        }
        for table in schema.metadata.sorted_tables
    }


def recorded(path: Path) -> list[tuple[str, float]]:
    with contextlib.closing(sqlite3.connect(path)) as con:
        return con.execute("SELECT name, applied_at FROM _migrations ORDER BY rowid").fetchall()


def test_migration_names_are_unique_and_ordered() -> None:
    assert len(set(NAMES)) == len(NAMES)
    assert sorted(NAMES) == NAMES
    assert all(name.startswith(f"m{i:03d}_") for i, name in enumerate(NAMES, start=1))


async def test_an_empty_database_migrates_to_the_current_schema(db_path: Path) -> None:
    async with await open_store(db_path, clock=lambda: 1234.5):
        pass
    assert recorded(db_path) == [(name, 1234.5) for name in NAMES]
    with writer(db_path) as engine, engine.connect() as conn:
        assert describe(conn) == expected_description()
        assert applied_migrations(conn) == NAMES


async def test_reopening_applies_nothing(db_path: Path) -> None:
    async with await open_store(db_path) as store:
        conversation = await store.create_conversation(title="kept", owner=OWNER)
    first = recorded(db_path)
    async with await open_store(db_path) as store:
        assert (await store.get_conversation(conversation.id, owner=OWNER)).title == "kept"
    assert recorded(db_path) == first
    with writer(db_path) as engine, engine.begin() as conn:
        assert apply_migrations(conn) == []


async def test_an_older_database_is_brought_up_to_date(db_path: Path) -> None:
    with writer(db_path) as engine, engine.begin() as conn:
        assert apply_migrations(conn, MIGRATIONS[:1]) == NAMES[:1]
        conn.execute(
            sa.text(
                "INSERT INTO conversations (id, title, created_at, updated_at) "
                "VALUES ('c1', 'from before', 1.0, 2.0)"
            )
        )
    assert [name for name, _ in recorded(db_path)] == NAMES[:1]

    async with await open_store(db_path) as store:
        # Made before accounts: nobody's until the first admin adopts it.
        with pytest.raises(NotFoundError):
            await store.get_conversation("c1", owner=OWNER)
        assert await store.adopt_conversations(OWNER) == 1
        old = await store.get_conversation("c1", owner=OWNER)
        assert (old.title, old.owner, old.created_at, old.updated_at) == (
            "from before",
            OWNER,
            1.0,
            2.0,
        )
        started = await store.start_exchange("c1", owner=OWNER, user_content="hi", model="m")
        assert started.branch == [started.user]
        assert await store.list_messages("c1", owner=OWNER) == [started.user, started.answer]
    assert [name for name, _ in recorded(db_path)] == NAMES


async def test_a_failing_migration_leaves_the_database_untouched(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def m999_broken(conn: Connection) -> None:
        conn.execute(sa.text("CREATE TABLE half_done (x INTEGER)"))
        raise RuntimeError("boom")

    monkeypatch.setattr(migrations, "MIGRATIONS", (*MIGRATIONS, m999_broken))
    with pytest.raises(RuntimeError, match="boom"):
        await open_store(db_path)
    # The whole run is one transaction, DDL included: not even the good migrations stayed.
    with contextlib.closing(sqlite3.connect(db_path)) as con:
        tables = con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    assert tables == []

    monkeypatch.undo()
    async with await open_store(db_path):
        pass
    assert [name for name, _ in recorded(db_path)] == NAMES


async def test_a_database_from_a_newer_version_is_refused(db_path: Path) -> None:
    async with await open_store(db_path):
        pass
    with contextlib.closing(sqlite3.connect(db_path)) as con, con:
        con.execute("INSERT INTO _migrations (name, applied_at) VALUES ('m999_future', 9.0)")
    with pytest.raises(RuntimeError, match="m999_future"):
        await open_store(db_path)
