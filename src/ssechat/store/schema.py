"""The current shape of the database, as SQLAlchemy Core tables, for the store's queries.

The tables are *created* by ``migrations`` (each migration holds its own snapshot, so that changing
this file never changes what an old migration did); a test checks that a migrated database has
exactly these columns and indexes. Only portable types are used here (no SQLite or PostgreSQL
dialect types), and this module must never run SQL.
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = [
    "EMAIL_KEY_LENGTH",
    "api_keys",
    "conversations",
    "imports",
    "mcp_servers",
    "messages",
    "metadata",
    "migrations",
    "sessions",
    "setup_tokens",
    "users",
]

ID = sa.String(32)  # uuid4().hex
HASH = sa.String(64)  # a token's or key's hash, hex (made by the caller)
EMAIL_KEY_LENGTH = 320  # the longest address RFC 3696 allows

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
    # A user's id, LOCAL_OWNER (accounts off), or NULL (made before accounts): not a foreign
    # key, since LOCAL_OWNER names no user.
    sa.Column("owner", sa.Text),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    # Not a foreign key: conversations and messages would reference each other. The store checks
    # that it names a message of this conversation, and messages only go with their conversation.
    sa.Column("current_leaf_id", ID),
    # The keys ("<server>/<tool>") of the tools its model may call; NULL: none (the default).
    sa.Column("tools", sa.JSON(none_as_null=True)),
    sa.Index("ix_conversations_updated_at_id", "updated_at", "id"),
    sa.Index("ix_conversations_owner_updated_at_id", "owner", "updated_at", "id"),
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
    # The model's thinking, kept apart from the answer and never sent upstream again.
    sa.Column("reasoning", sa.Text),
    sa.Column("reasoning_seconds", sa.Double),  # first to last reasoning token
    # [{id, name, arguments, server, tool, approval, decision, offset, result}], in call order
    # (older answers: {id, name, arguments} only).
    sa.Column("tool_calls", sa.JSON(none_as_null=True)),
    sa.Index("ix_messages_conversation_id_seq", "conversation_id", "seq"),
    sa.Index("ix_messages_parent_id", "parent_id"),
    sa.Index("ix_messages_status", "status"),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("email", sa.Text, nullable=False),  # as the user wrote it
    # The email as compared: stripped and lower-cased, so uniqueness ignores case.
    sa.Column("email_key", sa.String(EMAIL_KEY_LENGTH), nullable=False, unique=True),
    sa.Column("name", sa.Text),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("token_hash", HASH, primary_key=True),
    sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("last_seen_at", sa.Double, nullable=False),
    sa.Index("ix_sessions_user_id", "user_id"),
    sa.Index("ix_sessions_last_seen_at", "last_seen_at"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("prefix", sa.String(32), nullable=False),
    sa.Column("key_hash", HASH, nullable=False, unique=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("last_used_at", sa.Double),
    sa.Index("ix_api_keys_user_id", "user_id"),
)

setup_tokens = sa.Table(
    "setup_tokens",
    metadata,
    sa.Column("token_hash", HASH, primary_key=True),
    sa.Column("created_at", sa.Double, nullable=False),
)

# The admins' MCP server settings, server-wide (no owner). An admin-added server's row holds its
# whole mcpServers entry; a server of the settings file has a row only once an admin overrides
# something of it (config NULL).
mcp_servers = sa.Table(
    "mcp_servers",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("config", sa.JSON(none_as_null=True)),
    sa.Column("enabled", sa.Boolean),  # NULL: as its config says
    sa.Column("approvals", sa.JSON, nullable=False),  # {tool: "ask" | "always"}
    sa.Column("updated_at", sa.Double, nullable=False),
)

# Which conversation of an imported file (owner, its format, its id there) became which of ours:
# importing the same file again skips it. Goes with the conversation (deleted, it may come back).
imports = sa.Table(
    "imports",
    metadata,
    sa.Column("owner", sa.Text, primary_key=True),
    sa.Column("source", sa.String(32), primary_key=True),  # "ssechat", "chatgpt", "librechat"…
    sa.Column("source_id", sa.Text, primary_key=True),
    sa.Column(
        "conversation_id", ID, sa.ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("imported_at", sa.Double, nullable=False),
    # Deleting a conversation finds its row by the foreign key.
    sa.Index("ix_imports_conversation_id", "conversation_id"),
)
