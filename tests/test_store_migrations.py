"""ssechat.store.migrations: an empty database migrates to the current schema, once."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ssechat.errors import NotFoundError
from ssechat.store import migrations, open_store, schema
from ssechat.store.dialects import pick
from ssechat.store.migrations import MIGRATIONS, applied_migrations, apply_migrations

from .store_support import OWNER, Database, Ticker, sql

pytestmark = pytest.mark.anyio

NAMES = [migration.__name__ for migration in MIGRATIONS]


@contextlib.contextmanager
def writer(database: Database) -> Iterator[Engine]:
    """The store's own write engine for ``database`` (same hooks), without opening a Store."""
    dialect = pick(database)
    reader, write_engine = dialect.create_engines(dialect.url)
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
                # PostgreSQL lists the index behind a UNIQUE column too (SQLite does not):
                # the constraint, not an index of the schema's.
                if not i.get("duplicates_constraint")
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


SEARCH_OBJECTS = {
    # What m007_search makes that schema.metadata cannot describe, in each database's terms.
    "sqlite": {
        "table messages_fts (fts5)",
        "table titles_fts (fts5)",
        "table titles_fts_keys",
        "table search_pending",
        "view search_messages",
        "trigger messages_fts_insert",
        "trigger messages_fts_update",
        "trigger messages_fts_delete",
        "trigger titles_fts_insert",
        "trigger titles_fts_update",
        "trigger titles_fts_delete",
    },
    "postgresql": {
        "column conversations.search: tsvector ALWAYS",
        "column messages.search: tsvector ALWAYS",
        "index ix_conversations_search: gin (search)",
        "index ix_messages_search: gin (search)",
    },
}


def split_search(conn: Connection, description: dict[str, Any]) -> set[str]:
    """Take the full-text search's objects out of ``description``, and say what they are (kind,
    name, and what kind of index or column, as the database reports them)."""
    if conn.dialect.name == "postgresql":
        for table in ("conversations", "messages"):
            entry = description[table]
            entry["columns"] = [c for c in entry["columns"] if c != ("search", True)]
            entry["indexes"] = [i for i in entry["indexes"] if i[0] != f"ix_{table}_search"]
        columns = conn.exec_driver_sql(
            "SELECT table_name, column_name, data_type, is_generated FROM "
            "information_schema.columns WHERE column_name = 'search'"
        )
        indexes = conn.exec_driver_sql(
            "SELECT indexname, indexdef FROM pg_indexes WHERE indexname LIKE '%%_search'"
        )
        return {f"column {t}.{c}: {kind} {generated}" for t, c, kind, generated in columns} | {
            f"index {name}: {str(definition).split(' ', 6)[-1]}" for name, definition in indexes
        }
    for table in list(description):
        if table.startswith(("messages_fts", "titles_fts", "search_pending")):  # FTS5 and its work
            del description[table]
    rows = conn.exec_driver_sql(
        "SELECT type, name, sql FROM sqlite_master WHERE name LIKE '%fts%' "
        "AND sql IS NOT NULL AND type != 'table' OR sql LIKE 'CREATE VIRTUAL TABLE%' "
        "OR name IN ('search_messages', 'titles_fts_keys', 'search_pending')"
    )
    return {
        f"{kind} {name}" + (" (fts5)" if "USING fts5" in str(sql) else "")
        for kind, name, sql in rows
    }


def recorded(database: Database) -> list[tuple[str, float]]:
    """The migrations recorded, in the order their rows were written."""
    order = "ctid" if isinstance(database, str) else "rowid"  # each engine's row order
    with writer(database) as engine, engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT name, applied_at FROM _migrations ORDER BY {order}"))
        return [(str(name), float(applied_at)) for name, applied_at in rows]


def test_migration_names_are_unique_and_ordered() -> None:
    assert len(set(NAMES)) == len(NAMES)
    assert sorted(NAMES) == NAMES
    assert all(name.startswith(f"m{i:03d}_") for i, name in enumerate(NAMES, start=1))


async def test_an_empty_database_migrates_to_the_current_schema(database: Database) -> None:
    async with await open_store(database, clock=lambda: 1234.5):
        pass
    assert recorded(database) == [(name, 1234.5) for name in NAMES]
    with writer(database) as engine, engine.connect() as conn:
        description = describe(conn)
        assert split_search(conn, description) == SEARCH_OBJECTS[conn.dialect.name]
        assert description == expected_description()
        assert applied_migrations(conn) == NAMES


async def test_reopening_applies_nothing(database: Database) -> None:
    async with await open_store(database) as store:
        conversation = await store.create_conversation(title="kept", owner=OWNER)
    first = recorded(database)
    async with await open_store(database) as store:
        assert (await store.get_conversation(conversation.id, owner=OWNER)).title == "kept"
    assert recorded(database) == first
    with writer(database) as engine, engine.begin() as conn:
        assert apply_migrations(conn) == []


async def test_an_older_database_is_brought_up_to_date(database: Database) -> None:
    with writer(database) as engine, engine.begin() as conn:
        assert apply_migrations(conn, MIGRATIONS[:1]) == NAMES[:1]
        conn.execute(
            sa.text(
                "INSERT INTO conversations (id, title, created_at, updated_at) "
                "VALUES ('c1', 'from before', 1.0, 2.0)"
            )
        )
    assert [name for name, _ in recorded(database)] == NAMES[:1]

    async with await open_store(database) as store:
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
    assert [name for name, _ in recorded(database)] == NAMES


async def test_a_failing_migration_leaves_the_database_untouched(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    def m999_broken(conn: Connection) -> None:
        conn.execute(sa.text("CREATE TABLE half_done (x INTEGER)"))
        raise RuntimeError("boom")

    monkeypatch.setattr(migrations, "MIGRATIONS", (*MIGRATIONS, m999_broken))
    with pytest.raises(RuntimeError, match="boom"):
        await open_store(database)
    # The whole run is one transaction, DDL included: not even the good migrations stayed.
    with writer(database) as engine, engine.connect() as conn:
        assert sa.inspect(conn).get_table_names() == []

    monkeypatch.undo()
    async with await open_store(database):
        pass
    assert [name for name, _ in recorded(database)] == NAMES


async def test_a_database_from_a_newer_version_is_refused(database: Database) -> None:
    async with await open_store(database):
        pass
    sql(database, "INSERT INTO _migrations (name, applied_at) VALUES ('m999_future', 9.0)")
    with pytest.raises(RuntimeError, match="m999_future"):
        await open_store(database)


async def test_titles_indexed_before_m009_are_found_the_same_after_it(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A database of m008 (titles indexed by m007's triggers, renamed and deleted there too)
    # migrates to m009 (SQLite: a key per title) and every search answers as before.
    monkeypatch.setattr(migrations, "MIGRATIONS", MIGRATIONS[: NAMES.index("m009_title_keys")])
    queries = ("zebra", "okapi", "zeb*", '"striped zebra"', "giraffe")
    async with await open_store(database, clock=Ticker()) as store:
        made = []
        for i in range(8):
            conversation = await store.create_conversation(
                owner=OWNER, title=f"striped zebra {i}" if i % 2 else f"okapi {i}"
            )
            await store.start_exchange(
                conversation.id, owner=OWNER, user_content=f"giraffe zebra {i}", model="m"
            )
            made.append(conversation.id)
        await store.update_conversation(made[0], owner=OWNER, title="renamed zebra")
        await store.delete_conversation(made[1], owner=OWNER)
        before = {q: await store.search(OWNER, q, limit=50) for q in queries}
    if not isinstance(database, str):  # a row of no conversation (left by a bug): dropped
        sql(database, "INSERT INTO titles_fts (title, conversation_id) VALUES ('zebra', 'gone')")
    monkeypatch.undo()
    async with await open_store(database, clock=Ticker(1_800_000_000.0)) as store:
        assert {q: await store.search(OWNER, q, limit=50) for q in queries} == before
        assert sum(hit.message_id is None for hit in before["zebra"][0]) == 4
        # The triggers m009 made: a rename and a delete reach the title by its key.
        await store.update_conversation(made[3], owner=OWNER, title="plain")
        await store.delete_conversation(made[5], owner=OWNER)
        titles = {
            hit.conversation_id
            for hit in (await store.search(OWNER, "zebra", limit=50))[0]
            if hit.message_id is None
        }
        assert titles == {made[0], made[7]}
    assert [name for name, _ in recorded(database)] == NAMES
    if not isinstance(database, str):
        with contextlib.closing(sqlite3.connect(database)) as con:
            assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            con.execute("INSERT INTO titles_fts (titles_fts, rank) VALUES ('integrity-check', 1)")
            keys = con.execute("SELECT key, conversation_id FROM titles_fts_keys ORDER BY key")
            indexed = con.execute("SELECT rowid, conversation_id FROM titles_fts ORDER BY rowid")
            assert keys.fetchall() == indexed.fetchall()
            titled = con.execute("SELECT count(*) FROM conversations WHERE title IS NOT NULL")
            assert titled.fetchone() == (6,)


async def test_answers_streaming_before_m010_leave_the_index_and_come_back_when_they_end(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under m009 a streaming answer's saved batches were indexed; m010 indexes an answer once
    # it ends: the migration takes the streaming ones out, and their end puts them in.
    monkeypatch.setattr(
        migrations, "MIGRATIONS", MIGRATIONS[: NAMES.index("m010_index_finished_answers")]
    )
    async with await open_store(database, clock=Ticker()) as store:
        conversation = await store.create_conversation(owner=OWNER)
        done = await store.start_exchange(
            conversation.id, owner=OWNER, user_content="first question", model="m"
        )
        await store.update_message(done.answer.id, content="ended aardvark", status="complete")
        live = await store.start_exchange(
            conversation.id, owner=OWNER, user_content="second question", model="m"
        )
        await store.save_partial_answers({live.answer.id: "streaming aardvark"})
        assert len((await store.search(OWNER, "aardvark"))[0]) == 2
    monkeypatch.undo()
    async with await open_store(database, clock=Ticker(1_800_000_000.0)) as store:
        hits, _ = await store.search(OWNER, "aardvark")
        assert [hit.message_id for hit in hits] == [done.answer.id]
        assert len((await store.search(OWNER, "question"))[0]) == 2  # questions stay indexed
        await store.save_partial_answers({live.answer.id: "streaming aardvark, more"})
        assert [hit.message_id for hit in (await store.search(OWNER, "more"))[0]] == []
        await store.update_message(live.answer.id, content="stopped aardvark", status="stopped")
        hits, _ = await store.search(OWNER, "aardvark")
        assert sorted(str(hit.message_id) for hit in hits) == sorted(
            [done.answer.id, live.answer.id]
        )
    assert [name for name, _ in recorded(database)] == NAMES
    if not isinstance(database, str):
        with contextlib.closing(sqlite3.connect(database)) as con:
            assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            con.execute(
                "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)"
            )
