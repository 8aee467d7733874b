"""The current shape of the database, as SQLAlchemy Core tables, for the store's queries.

The tables are *created* by ``migrations`` (each migration holds its own snapshot, so that changing
this file never changes what an old migration did); a test checks that a migrated database has
exactly these columns and indexes. Only portable types are used here (no SQLite or PostgreSQL
dialect types), and this module must never run SQL.
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = ["conversations", "messages", "metadata", "migrations"]

ID = sa.String(32)  # uuid4().hex

metadata = sa.MetaData()

migrations = sa.Table(
    "_migrations",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("applied_at", sa.Double, nullable=False),
)

conversations = sa.Table(
    "conversations",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("title", sa.Text),
    sa.Column("model", sa.Text),
    sa.Column("system_prompt", sa.Text),
    sa.Column("owner", sa.Text),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    # Not a foreign key: conversations and messages would reference each other. The store checks
    # that it names a message of this conversation, and messages only go with their conversation.
    sa.Column("current_leaf_id", ID),
    sa.Index("ix_conversations_updated_at_id", "updated_at", "id"),
)

messages = sa.Table(
    "messages",
    metadata,
    # Insertion order: the creation order of messages even when two share a timestamp.
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", ID, nullable=False, unique=True),
    sa.Column(
        "conversation_id",
        ID,
        sa.ForeignKey("conversations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("parent_id", ID, sa.ForeignKey("messages.id", ondelete="CASCADE")),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("model", sa.Text),
    sa.Column("finish_reason", sa.Text),
    sa.Column("usage", sa.JSON(none_as_null=True)),
    sa.Column("error", sa.Text),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Index("ix_messages_conversation_id_seq", "conversation_id", "seq"),
    sa.Index("ix_messages_parent_id", "parent_id"),
    sa.Index("ix_messages_status", "status"),
)
