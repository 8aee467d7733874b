"""Versioned schema migrations: an ordered list of small named functions, applied once each.

Every function takes a synchronous SQLAlchemy ``Connection`` inside the migration transaction and
changes the schema one step; its name is recorded in the ``_migrations`` table (name, applied_at)
when it has run, so opening a database again applies only what is new. Each migration describes
the tables it creates with its own ``MetaData`` snapshot, never with ``schema``'s current tables:
what an old migration does must not change when the schema moves on.

Rules for adding one: append a new function to ``MIGRATIONS`` (never edit, reorder or remove an
applied one), use Core DDL or portable SQL only (the store is meant to grow a PostgreSQL backend),
and keep each one small. This module must never touch rows it does not have to migrate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ssechat.store import schema

__all__ = ["MIGRATIONS", "Migration", "applied_migrations", "apply_migrations"]

Migration = Callable[[Connection], None]

_ID = sa.String(32)
_HASH = sa.String(64)


def m001_conversations(conn: Connection) -> None:
    snapshot = sa.MetaData()
    sa.Table(
        "conversations",
        snapshot,
        sa.Column("id", _ID, primary_key=True),
        sa.Column("title", sa.Text),
        sa.Column("model", sa.Text),
        sa.Column("system_prompt", sa.Text),
        sa.Column("owner", sa.Text),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Column("current_leaf_id", _ID),
    ).create(conn)


def m002_messages(conn: Connection) -> None:
    snapshot = sa.MetaData()
    # Only what the foreign key needs to resolve; the table itself exists already.
    sa.Table("conversations", snapshot, sa.Column("id", _ID, primary_key=True))
    sa.Table(
        "messages",
        snapshot,
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", _ID, nullable=False, unique=True),
        sa.Column(
            "conversation_id",
            _ID,
            sa.ForeignKey("conversations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("parent_id", _ID, sa.ForeignKey("messages.id", ondelete="CASCADE")),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("model", sa.Text),
        sa.Column("finish_reason", sa.Text),
        sa.Column("usage", sa.JSON(none_as_null=True)),
        sa.Column("error", sa.Text),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
    ).create(conn)


def m003_indexes(conn: Connection) -> None:
    snapshot = sa.MetaData()
    conversations = sa.Table(
        "conversations",
        snapshot,
        sa.Column("id", _ID),
        sa.Column("updated_at", sa.Double),
    )
    messages = sa.Table(
        "messages",
        snapshot,
        sa.Column("seq", sa.Integer),
        sa.Column("conversation_id", _ID),
        sa.Column("parent_id", _ID),
        sa.Column("status", sa.String(16)),
    )
    # The conversation list is read newest first, page by page, on (updated_at, id).
    sa.Index(
        "ix_conversations_updated_at_id", conversations.c.updated_at, conversations.c.id
    ).create(conn)
    sa.Index("ix_messages_conversation_id_seq", messages.c.conversation_id, messages.c.seq).create(
        conn
    )
    # Children are looked up when a conversation's messages are deleted (the self foreign key).
    sa.Index("ix_messages_parent_id", messages.c.parent_id).create(conn)
    # Startup looks for answers a crash left "streaming".
    sa.Index("ix_messages_status", messages.c.status).create(conn)


def m004_accounts(conn: Connection) -> None:
    snapshot = sa.MetaData()
    conversations = sa.Table(
        "conversations",
        snapshot,
        sa.Column("id", _ID),
        sa.Column("owner", sa.Text),
        sa.Column("updated_at", sa.Double),
    )
    users = sa.Table(
        "users",
        snapshot,
        sa.Column("id", _ID, primary_key=True),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column("email_key", sa.String(320), nullable=False, unique=True),
        sa.Column("name", sa.Text),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
    )
    sessions = sa.Table(
        "sessions",
        snapshot,
        sa.Column("token_hash", _HASH, primary_key=True),
        sa.Column("user_id", _ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("last_seen_at", sa.Double, nullable=False),
    )
    api_keys = sa.Table(
        "api_keys",
        snapshot,
        sa.Column("id", _ID, primary_key=True),
        sa.Column("user_id", _ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("key_hash", _HASH, nullable=False, unique=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("last_used_at", sa.Double),
    )
    setup_tokens = sa.Table(
        "setup_tokens",
        snapshot,
        sa.Column("token_hash", _HASH, primary_key=True),
        sa.Column("created_at", sa.Double, nullable=False),
    )
    for table in (users, sessions, api_keys, setup_tokens):
        table.create(conn)
    # Each user reads their own conversations, newest first, page by page. Existing ones keep
    # their NULL owner: the first admin adopts them when made.
    sa.Index(
        "ix_conversations_owner_updated_at_id",
        conversations.c.owner,
        conversations.c.updated_at,
        conversations.c.id,
    ).create(conn)
    # A user's sessions and keys are ended together (disable, new password, delete); idle
    # sessions are swept by their last use.
    sa.Index("ix_sessions_user_id", sessions.c.user_id).create(conn)
    sa.Index("ix_sessions_last_seen_at", sessions.c.last_seen_at).create(conn)
    sa.Index("ix_api_keys_user_id", api_keys.c.user_id).create(conn)


def m005_reasoning(conn: Connection) -> None:
    # A message's reasoning text, its duration (first to last reasoning token, in seconds) and
    # the tool calls its model asked for: all NULL for the messages written before.
    for column in (
        sa.Column("reasoning", sa.Text),
        sa.Column("reasoning_seconds", sa.Double),
        sa.Column("tool_calls", sa.JSON(none_as_null=True)),
    ):
        _add_column(conn, "messages", column)


def m006_tools(conn: Connection) -> None:
    # The tools a conversation lets its model call (NULL: none, as for every older one), and
    # the admins' MCP server settings.
    _add_column(conn, "conversations", sa.Column("tools", sa.JSON(none_as_null=True)))
    snapshot = sa.MetaData()
    sa.Table(
        "mcp_servers",
        snapshot,
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("config", sa.JSON(none_as_null=True)),
        sa.Column("enabled", sa.Boolean),
        sa.Column("approvals", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
    ).create(conn)


def _add_column(conn: Connection, table: str, column: sa.Column[Any]) -> None:
    # Core has no ALTER TABLE construct: the portable ADD COLUMN, with the column's type as this
    # dialect names it (the same name CREATE TABLE would give).
    quote = conn.dialect.identifier_preparer.quote
    column_type = column.type.compile(dialect=conn.dialect)
    conn.execute(
        sa.text(f"ALTER TABLE {quote(table)} ADD COLUMN {quote(column.name)} {column_type}")
    )


def m007_search(conn: Connection) -> None:
    # Full-text search of titles and message texts, in each database's own form (there is no
    # portable one): the DDL is frozen here as every migration's is; ``store.search_sql`` reads
    # these objects. Both strip the snippet marks (U+E000, U+E001: ``store.search_query``) from
    # what they index, and both index existing rows now.
    if conn.dialect.name == "postgresql":
        # A stored generated column per table (computed on write, indexed by GIN). The "simple"
        # configuration (lower-case, no stemming, no stop words), over runs of letters and
        # digits: chats mix languages, and the same words match as on SQLite's unicode61.
        vector = "to_tsvector('simple'::regconfig, regexp_replace({}, '[^[:alnum:]]+', ' ', 'g'))"
        title = "coalesce(title, '')"
        statements = [
            "ALTER TABLE messages ADD COLUMN search tsvector GENERATED ALWAYS AS "
            f"({vector.format('content')}) STORED",
            "ALTER TABLE conversations ADD COLUMN search tsvector GENERATED ALWAYS AS "
            f"({vector.format(title)}) STORED",
            "CREATE INDEX ix_messages_search ON messages USING gin (search)",
            "CREATE INDEX ix_conversations_search ON conversations USING gin (search)",
        ]
    else:
        strip = "replace(replace({}, char(57344), ''), char(57345), '')"
        # Messages: an external-content FTS5 table (no copy of the texts) over a view that
        # strips the marks (and holds the messages with a text: those the triggers index), kept
        # up to date by triggers; a batch of an answer's saved text (save_partial_answers)
        # re-indexes it once, and a save that leaves the text as it was re-indexes nothing.
        # Titles: a table of their own (short texts; conversations have no stable integer key
        # to point at), by conversation id.
        statements = [
            "CREATE VIEW search_messages AS SELECT seq, "
            f"{strip.format('content')} AS content FROM messages WHERE content != ''",
            "CREATE VIRTUAL TABLE messages_fts USING fts5(content, content='search_messages', "
            "content_rowid='seq')",
            "CREATE VIRTUAL TABLE titles_fts USING fts5(title, conversation_id UNINDEXED)",
            # A message is indexed while its text is not empty: an answer starts empty (its
            # start then costs no index work) and is indexed at its first saved batch.
            "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages "
            "WHEN new.content != '' BEGIN "
            "INSERT INTO messages_fts (rowid, content) "
            f"VALUES (new.seq, {strip.format('new.content')}); END",
            "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages "
            "WHEN old.content != '' BEGIN "
            "INSERT INTO messages_fts (messages_fts, rowid, content) "
            f"VALUES ('delete', old.seq, {strip.format('old.content')}); END",
            # One trigger for both halves, in this order (SQLite runs triggers of one event
            # newest first: two would add the new text before removing the old).
            "CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages "
            "WHEN new.content IS NOT old.content BEGIN "
            "INSERT INTO messages_fts (messages_fts, rowid, content) "
            f"SELECT 'delete', old.seq, {strip.format('old.content')} WHERE old.content != ''; "
            "INSERT INTO messages_fts (rowid, content) "
            f"SELECT new.seq, {strip.format('new.content')} WHERE new.content != ''; END",
            "CREATE TRIGGER titles_fts_insert AFTER INSERT ON conversations "
            "WHEN new.title IS NOT NULL BEGIN "
            f"INSERT INTO titles_fts (title, conversation_id) "
            f"VALUES ({strip.format('new.title')}, new.id); END",
            "CREATE TRIGGER titles_fts_delete AFTER DELETE ON conversations BEGIN "
            "DELETE FROM titles_fts WHERE conversation_id = old.id; END",
            "CREATE TRIGGER titles_fts_update AFTER UPDATE OF title ON conversations BEGIN "
            "DELETE FROM titles_fts WHERE conversation_id = old.id; "
            "INSERT INTO titles_fts (title, conversation_id) "
            f"SELECT {strip.format('new.title')}, new.id WHERE new.title IS NOT NULL; END",
            "INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')",
            "INSERT INTO titles_fts (title, conversation_id) "
            f"SELECT {strip.format('title')}, id FROM conversations WHERE title IS NOT NULL",
        ]
    for statement in statements:
        conn.exec_driver_sql(statement)


def m008_imports(conn: Connection) -> None:
    # Which conversation of another file (owner, format, its id there) became which of ours, so
    # that importing a file again skips what it brought before. Deleting the conversation
    # deletes its row: importing again then brings it back.
    snapshot = sa.MetaData()
    sa.Table("conversations", snapshot, sa.Column("id", _ID, primary_key=True))
    sa.Table(
        "imports",
        snapshot,
        sa.Column("owner", sa.Text, primary_key=True),
        sa.Column("source", sa.String(32), primary_key=True),
        sa.Column("source_id", sa.Text, primary_key=True),
        sa.Column(
            "conversation_id",
            _ID,
            sa.ForeignKey("conversations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("imported_at", sa.Double, nullable=False),
        sa.Index("ix_imports_conversation_id", "conversation_id"),
    ).create(conn)


def m009_title_keys(conn: Connection) -> None:
    """SQLite: the titles' index is reached by key when a conversation is renamed or deleted.

    m007's triggers found a conversation's title in ``titles_fts`` by its UNINDEXED
    ``conversation_id`` column: a scan of the whole index per conversation deleted or renamed
    (20 000 titles: deleting 1 400 conversations took 4.7 s of CPU; now 0.03 s). Of the ways
    out, a key table: ``titles_fts_keys (key INTEGER PRIMARY KEY, conversation_id UNIQUE)``
    hands out each title's FTS5 rowid and finds it again by conversation id (two index
    lookups). Its key is an explicit INTEGER PRIMARY KEY, as FTS5's own rowid is (both survive
    VACUUM; the conversations' implicit rowid would not). The alternatives change what the
    search reads: an FTS5 rowid fixed per conversation would need an integer column on
    ``conversations`` (on SQLite only) and would rank renamed titles by their conversation's
    age, and an indexed id column matched by MATCH would put every id in the index and need
    every search restricted to the title column. Here ``titles_fts`` keeps its shape, and a
    title still takes a new, highest rowid whenever it is written, so the search's "newest
    titles first" (``store.search``) reads as before.

    The update trigger now fires only when the title changes: a save that sets the same title
    re-indexes nothing. Existing rows keep their rowids (each conversation's newest, should
    any have two; rows of no conversation are dropped). PostgreSQL: nothing to do, its titles
    are a generated column with a GIN index, updated by key.
    """
    if conn.dialect.name == "postgresql":
        return
    strip = "replace(replace({}, char(57344), ''), char(57345), '')"
    # The title's key, taken (max + 1) by inserting the conversation's id, then its index row.
    index = (
        "INSERT INTO titles_fts_keys (conversation_id) VALUES (new.id); "
        "INSERT INTO titles_fts (rowid, title, conversation_id) "
        f"SELECT key, {strip.format('new.title')}, new.id FROM titles_fts_keys "
        "WHERE conversation_id = new.id; "
    )
    unindex = (
        "DELETE FROM titles_fts WHERE rowid = "
        "(SELECT key FROM titles_fts_keys WHERE conversation_id = old.id); "
        "DELETE FROM titles_fts_keys WHERE conversation_id = old.id; "
    )
    statements = [
        "DROP TRIGGER titles_fts_insert",
        "DROP TRIGGER titles_fts_update",
        "DROP TRIGGER titles_fts_delete",
        "CREATE TABLE titles_fts_keys (key INTEGER PRIMARY KEY, "
        "conversation_id VARCHAR(32) NOT NULL UNIQUE)",
        "INSERT INTO titles_fts_keys (key, conversation_id) "
        "SELECT max(f.rowid), f.conversation_id FROM titles_fts AS f "
        "JOIN conversations AS c ON c.id = f.conversation_id GROUP BY f.conversation_id",
        "DELETE FROM titles_fts WHERE rowid NOT IN (SELECT key FROM titles_fts_keys)",
        "CREATE TRIGGER titles_fts_insert AFTER INSERT ON conversations "
        f"WHEN new.title IS NOT NULL BEGIN {index}END",
        f"CREATE TRIGGER titles_fts_delete AFTER DELETE ON conversations BEGIN {unindex}END",
        # One trigger for both halves, the old title out before the new one in (see m007).
        "CREATE TRIGGER titles_fts_update AFTER UPDATE OF title ON conversations "
        f"WHEN new.title IS NOT old.title BEGIN {unindex}"
        + index.replace("VALUES (new.id)", "SELECT new.id WHERE new.title IS NOT NULL")
        + "END",
    ]
    for statement in statements:
        conn.exec_driver_sql(statement)


def m010_index_finished_answers(conn: Connection) -> None:
    # A streaming answer is indexed once, when it ends, not at each of its saved batches.
    # m007 re-indexed an answer's whole text at every batch the run saver writes (every 0.5 s):
    # about 20 times for a 10-second answer, each time removing the old text from the index
    # and adding the new, so an answer's index work grew with the square of its length. The
    # full benchmark measured it on the paced relay (bench/PROFILE.md, "Search"). A question is
    # indexed as it is saved, an answer in the save that ends it (complete, length, stopped,
    # error, interrupted: the last of its saved batches), and a search never shows the partial
    # text of an answer still being written.
    if conn.dialect.name == "postgresql":
        # The generated vector is NULL while the answer streams: no tokenizing per batch, and
        # the GIN entry is written once. (PostgreSQL cannot change a generated expression in
        # place: the column is made again, and so its index.)
        vector = (
            "CASE WHEN status = 'streaming' THEN NULL ELSE to_tsvector('simple'::regconfig, "
            "regexp_replace(content, '[^[:alnum:]]+', ' ', 'g')) END"
        )
        statements = [
            "DROP INDEX ix_messages_search",
            "ALTER TABLE messages DROP COLUMN search",
            "ALTER TABLE messages ADD COLUMN search tsvector "
            f"GENERATED ALWAYS AS ({vector}) STORED",
            "CREATE INDEX ix_messages_search ON messages USING gin (search)",
        ]
    else:
        strip = "replace(replace({}, char(57344), ''), char(57345), '')"
        indexed = "{0}.content != '' AND {0}.status != 'streaming'"
        statements = [
            "DROP TRIGGER messages_fts_insert",
            "DROP TRIGGER messages_fts_delete",
            "DROP TRIGGER messages_fts_update",
            "DROP VIEW search_messages",
            "CREATE VIEW search_messages AS SELECT seq, "
            f"{strip.format('content')} AS content FROM messages "
            "WHERE content != '' AND status != 'streaming'",
            "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages "
            f"WHEN {indexed.format('new')} BEGIN "
            "INSERT INTO messages_fts (rowid, content) "
            f"VALUES (new.seq, {strip.format('new.content')}); END",
            "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages "
            f"WHEN {indexed.format('old')} BEGIN "
            "INSERT INTO messages_fts (messages_fts, rowid, content) "
            f"VALUES ('delete', old.seq, {strip.format('old.content')}); END",
            # A batch of a streaming answer (streaming before and after) does nothing at all;
            # one trigger for both halves, in this order (see m007).
            "CREATE TRIGGER messages_fts_update AFTER UPDATE OF content, status ON messages "
            "WHEN (new.content IS NOT old.content OR new.status IS NOT old.status) "
            "AND (old.status != 'streaming' OR new.status != 'streaming') BEGIN "
            "INSERT INTO messages_fts (messages_fts, rowid, content) "
            f"SELECT 'delete', old.seq, {strip.format('old.content')} "
            f"WHERE {indexed.format('old')}; "
            "INSERT INTO messages_fts (rowid, content) "
            f"SELECT new.seq, {strip.format('new.content')} WHERE {indexed.format('new')}; END",
            # What streamed under m007 was indexed; it is not now: the index made again from
            # the view (the texts themselves are in messages: nothing is lost).
            "INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')",
        ]
    for statement in statements:
        conn.exec_driver_sql(statement)


def m011_search_pending(conn: Connection) -> None:
    # SQLite: a saved message is noted as pending, and written into the FTS5 index in batches
    # by ``store.indexer`` (every half second, and before a search), not by the trigger in the
    # transaction that saved it: FTS5 costs most per committing transaction (a new segment,
    # then merges), and a start paid for two of them. The view (the index's content) leaves the
    # pending messages out, so the index and its content agree at every commit; a pending
    # message that changes or goes is simply no longer pending (nothing to take out of the
    # index). Indexing rules as m010's: a message with a text, once it no longer streams.
    # PostgreSQL: nothing (its GIN index has a pending list of its own).
    if conn.dialect.name == "postgresql":
        return
    strip = "replace(replace({}, char(57344), ''), char(57345), '')"
    indexed = "{0}.content != '' AND {0}.status != 'streaming'"
    indexed_now = (
        f"{indexed.format('old')} AND NOT EXISTS (SELECT 1 FROM search_pending WHERE seq = old.seq)"
    )
    statements = [
        "CREATE TABLE search_pending (seq INTEGER PRIMARY KEY)",
        "DROP TRIGGER messages_fts_insert",
        "DROP TRIGGER messages_fts_delete",
        "DROP TRIGGER messages_fts_update",
        "DROP VIEW search_messages",
        "CREATE VIEW search_messages AS SELECT seq, "
        f"{strip.format('content')} AS content FROM messages "
        "WHERE content != '' AND status != 'streaming' "
        "AND seq NOT IN (SELECT seq FROM search_pending)",
        "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages "
        f"WHEN {indexed.format('new')} BEGIN "
        "INSERT OR IGNORE INTO search_pending (seq) VALUES (new.seq); END",
        "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages "
        f"WHEN {indexed.format('old')} BEGIN "
        "INSERT INTO messages_fts (messages_fts, rowid, content) "
        f"SELECT 'delete', old.seq, {strip.format('old.content')} WHERE {indexed_now}; "
        "DELETE FROM search_pending WHERE seq = old.seq; END",
        # In this order: the old text leaves the index if it was in it, then the message is
        # pending again if it is to be indexed (one trigger: see m007).
        "CREATE TRIGGER messages_fts_update AFTER UPDATE OF content, status ON messages "
        "WHEN (new.content IS NOT old.content OR new.status IS NOT old.status) "
        "AND (old.status != 'streaming' OR new.status != 'streaming') BEGIN "
        "INSERT INTO messages_fts (messages_fts, rowid, content) "
        f"SELECT 'delete', old.seq, {strip.format('old.content')} WHERE {indexed_now}; "
        "DELETE FROM search_pending WHERE seq = old.seq; "
        f"INSERT INTO search_pending (seq) SELECT new.seq WHERE {indexed.format('new')}; END",
    ]
    for statement in statements:
        conn.exec_driver_sql(statement)


MIGRATIONS: Sequence[Migration] = (
    m001_conversations,
    m002_messages,
    m003_indexes,
    m004_accounts,
    m005_reasoning,
    m006_tools,
    m007_search,
    m008_imports,
    m009_title_keys,
    m010_index_finished_answers,
    m011_search_pending,
)
"""Every migration, oldest first. Append only."""


def applied_migrations(conn: Connection) -> list[str]:
    """The names recorded in ``_migrations``, in the order they were applied."""
    if not sa.inspect(conn).has_table(schema.migrations.name):
        return []
    table = schema.migrations
    rows = conn.execute(sa.select(table.c.name).order_by(table.c.applied_at, table.c.name))
    return list(rows.scalars())


def apply_migrations(
    conn: Connection,
    migrations: Sequence[Migration] | None = None,
    *,
    clock: Callable[[], float] = time.time,
) -> list[str]:
    """Apply, in order, each migration not yet recorded; return the names applied now.

    ``migrations`` defaults to ``MIGRATIONS``. Run it inside one transaction: a failure leaves
    the database as it was. A database that records a migration this code does not know was
    written by a newer ssechat; it is refused rather than used with a schema this code cannot
    describe.
    """
    if migrations is None:
        migrations = MIGRATIONS
    schema.migrations.create(conn, checkfirst=True)
    done = set(applied_migrations(conn))
    unknown = sorted(done - {migration.__name__ for migration in migrations})
    if unknown:
        raise RuntimeError(
            "the database was migrated by a newer version of ssechat "
            f"(unknown migrations: {', '.join(unknown)}); upgrade ssechat to open it"
        )
    applied: list[str] = []
    for migration in migrations:
        name = migration.__name__
        if name in done:
            continue
        migration(conn)
        conn.execute(sa.insert(schema.migrations).values(name=name, applied_at=clock()))
        applied.append(name)
    return applied
