"""The store's statements: portable SQLAlchemy Core, built once at import, or once per shape.

Built once so that SQLAlchemy compiles each a single time (its compiled cache is keyed on the
statement). Parameters are named ``b_`` + the column (a bare column name is reserved by
SQLAlchemy in INSERT and UPDATE). ``positional`` gives the driver-level form of a statement for
the hot executemany of the runs' saves.

Every statement a user's request reaches names the acting user (``b_owner``) in its WHERE clause,
so that another user's conversation or message is not found by the very query that looks for it:
no check done apart can be forgotten.

This module must never run SQL, hold SQLite-only (or any dialect-only) SQL — that lives in
``store.sqlite`` and ``store.postgres`` — or map rows to records (``store.rows`` does).
"""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa

from ssechat.store import schema
from ssechat.store.models import LOCAL_OWNER
from ssechat.store.rows import (
    API_KEY_COLUMNS,
    API_KEY_FIELDS,
    CONVERSATION_COLUMNS,
    CONVERSATION_FIELDS,
    MESSAGE_COLUMNS,
    MESSAGE_INSERT_FIELDS,
    SESSION_COLUMNS,
    SESSION_FIELDS,
    TOOL_SERVER_COLUMNS,
    TOOL_SERVER_FIELDS,
    USER_COLUMNS,
    USER_FIELDS,
)

__all__ = [
    "ADD_SETUP_TOKEN",
    "ADOPT_CONVERSATIONS",
    "BRANCH",
    "COUNT_USERS",
    "DELETE_API_KEY",
    "DELETE_CONVERSATION",
    "DELETE_MESSAGES",
    "DELETE_OWNED_CONVERSATIONS",
    "DELETE_OWNED_MESSAGES",
    "DELETE_SESSION",
    "DELETE_SETUP_TOKENS",
    "DELETE_STALE_SESSIONS",
    "DELETE_TOOL_SERVER",
    "DELETE_USER",
    "DELETE_USER_API_KEYS",
    "DELETE_USER_SESSIONS",
    "DELETE_USER_SESSIONS_BUT",
    "EMAIL_TAKEN",
    "FIND_API_KEY",
    "FIND_LOGIN",
    "FIND_SESSION",
    "FIRST_ADMIN",
    "FIRST_PAGE",
    "GET_CONVERSATION",
    "GET_MESSAGE",
    "GET_TOOL_SERVER",
    "GET_USER",
    "INSERT_API_KEY",
    "INSERT_CONVERSATION",
    "INSERT_MESSAGE",
    "INSERT_SESSION",
    "INSERT_TOOL_SERVER",
    "INSERT_USER",
    "LIST_API_KEYS",
    "LIST_MESSAGES",
    "LIST_TOOL_SERVERS",
    "LIST_USERS",
    "MARK_INTERRUPTED",
    "MESSAGE_OWNER",
    "NEXT_PAGE",
    "OTHER_ACTIVE_ADMINS",
    "SAVE_PARTIAL",
    "SAVE_PARTIAL_REASONING",
    "SETUP_TOKEN_EXISTS",
    "SET_LEAF",
    "SET_LEAF_AND_MODEL",
    "SET_TITLE_IF_EMPTY",
    "TOUCH_API_KEY",
    "TOUCH_SESSION",
    "USER_EXISTS",
    "conversation_update",
    "message_update",
    "positional",
    "tool_server_update",
    "user_update",
]

_conversations = schema.conversations
_messages = schema.messages
_users = schema.users
_sessions = schema.sessions
_api_keys = schema.api_keys
_setup_tokens = schema.setup_tokens
_mcp_servers = schema.mcp_servers

_OWNER = sa.bindparam("b_owner", type_=_conversations.c.owner.type)


def _bind(table: sa.Table, name: str) -> sa.BindParameter[Any]:
    """A parameter for a SET clause, typed like its column."""
    return sa.bindparam(f"b_{name}", type_=table.c[name].type)


# --- conversations ------------------------------------------------------------------------------

GET_CONVERSATION = sa.select(*CONVERSATION_COLUMNS).where(
    _conversations.c.id == sa.bindparam("b_id"), _conversations.c.owner == _OWNER
)
# In a write that changes the conversation or its messages: its row is locked first, so such
# writes from several processes take their locks in one order (no deadlock), and a conversation
# deleted meanwhile is not found (PostgreSQL; SQLite's one writer needs no lock and renders none).
LOCK_CONVERSATION = GET_CONVERSATION.with_for_update()
# On the index (owner, updated_at, id): one user's conversations, newest first.
FIRST_PAGE = (
    sa.select(*CONVERSATION_COLUMNS)
    .where(_conversations.c.owner == _OWNER)
    .order_by(_conversations.c.updated_at.desc(), _conversations.c.id.desc())
    .limit(sa.bindparam("b_limit"))
)
NEXT_PAGE = FIRST_PAGE.where(
    sa.or_(
        _conversations.c.updated_at < sa.bindparam("b_updated_at"),
        sa.and_(
            _conversations.c.updated_at == sa.bindparam("b_updated_at"),
            _conversations.c.id < sa.bindparam("b_last_id"),
        ),
    )
)
INSERT_CONVERSATION = sa.insert(_conversations).values(
    {name: _bind(_conversations, name) for name in CONVERSATION_FIELDS}
)
SET_LEAF = (
    sa.update(_conversations)
    .where(_conversations.c.id == sa.bindparam("b_id"))
    .values(
        current_leaf_id=_bind(_conversations, "current_leaf_id"),
        updated_at=_bind(_conversations, "updated_at"),
    )
)
SET_LEAF_AND_MODEL = SET_LEAF.values(model=_bind(_conversations, "model"))
SET_TITLE_IF_EMPTY = (
    sa.update(_conversations)
    .where(
        _conversations.c.id == sa.bindparam("b_id"),
        sa.or_(_conversations.c.title.is_(None), _conversations.c.title == ""),
    )
    .values(title=_bind(_conversations, "title"), updated_at=_bind(_conversations, "updated_at"))
)
DELETE_CONVERSATION = sa.delete(_conversations).where(_conversations.c.id == sa.bindparam("b_id"))
# Explicit rather than left to ON DELETE CASCADE, which SQLite only honours when the foreign_keys
# pragma is on.
DELETE_MESSAGES = sa.delete(_messages).where(_messages.c.conversation_id == sa.bindparam("b_id"))
ADOPT_CONVERSATIONS = (
    sa.update(_conversations)
    .where(sa.or_(_conversations.c.owner.is_(None), _conversations.c.owner == LOCAL_OWNER))
    .values(owner=_OWNER)
)


@functools.cache
def conversation_update(names: tuple[str, ...]) -> sa.Update:
    """Set the columns ``names`` of the conversation ``b_id``: one statement per set of names."""
    return (
        sa.update(_conversations)
        .where(_conversations.c.id == sa.bindparam("b_id"))
        .values({name: _bind(_conversations, name) for name in names})
    )


# --- messages -----------------------------------------------------------------------------------

# A message is its owner's through its conversation: found by id, then the conversation by its
# primary key, in one query.
_OWNED_MESSAGES = _messages.join(_conversations, _messages.c.conversation_id == _conversations.c.id)
GET_MESSAGE = (
    sa.select(*MESSAGE_COLUMNS)
    .select_from(_OWNED_MESSAGES)
    .where(_messages.c.id == sa.bindparam("b_id"), _conversations.c.owner == _OWNER)
)
MESSAGE_OWNER = sa.select(_messages.c.conversation_id).where(_messages.c.id == sa.bindparam("b_id"))
LIST_MESSAGES = (
    sa.select(*MESSAGE_COLUMNS)
    .where(_messages.c.conversation_id == sa.bindparam("b_id"))
    .order_by(_messages.c.seq)
)
INSERT_MESSAGE = sa.insert(_messages).values(
    {name: _bind(_messages, name) for name in MESSAGE_INSERT_FIELDS}
)
SAVE_PARTIAL = (
    sa.update(_messages)
    .where(_messages.c.id == sa.bindparam("b_id"), _messages.c.status == "streaming")
    .values(content=_bind(_messages, "content"), updated_at=_bind(_messages, "updated_at"))
)
# The same with the reasoning too, for a batch in which a run reasons: a plain batch keeps the
# statement above (no column more to bind per row).
SAVE_PARTIAL_REASONING = SAVE_PARTIAL.values(reasoning=_bind(_messages, "reasoning"))
MARK_INTERRUPTED = (
    sa.update(_messages)
    .where(_messages.c.status == "streaming")
    .values(status="interrupted", updated_at=_bind(_messages, "updated_at"))
)
# On the status index: the answers left streaming since before a time (runs to check for a
# dead owner), and the ending of those still streaming, one at a time or a few at once. The
# status test is in the UPDATE itself, so an answer its run ended meanwhile is left alone.
STREAMING_BEFORE = (
    sa.select(_messages.c.id)
    .where(_messages.c.status == "streaming", _messages.c.updated_at < sa.bindparam("b_before"))
    .order_by(_messages.c.seq)
)
MARK_THESE_INTERRUPTED = MARK_INTERRUPTED.where(
    _messages.c.id.in_(sa.bindparam("b_ids", expanding=True))
)


@functools.cache
def save_interrupted(names: tuple[str, ...]) -> sa.Update:
    """End the answer ``b_id`` as interrupted if it is still streaming, setting ``names`` too."""
    return (
        sa.update(_messages)
        .where(_messages.c.id == sa.bindparam("b_id"), _messages.c.status == "streaming")
        .values(
            {
                **{name: _bind(_messages, name) for name in names},
                "status": "interrupted",
                "updated_at": _bind(_messages, "updated_at"),
            }
        )
    )


def _branch_query() -> sa.Select[Any]:
    # The ids from a message up to its root, by a recursive CTE on the parent index. UNION, not
    # UNION ALL: a cycle (impossible through the store) would end the recursion, not loop. The
    # start must be in a conversation of b_owner: parents never leave their conversation (and
    # the store cuts a branch that would), so another user's message gives no rows at all.
    up = (
        sa.select(_messages.c.id, _messages.c.parent_id)
        .select_from(_OWNED_MESSAGES)
        .where(_messages.c.id == sa.bindparam("b_id"), _conversations.c.owner == _OWNER)
        .cte("up", recursive=True)
    )
    parent = _messages.alias("parent")
    up = up.union(sa.select(parent.c.id, parent.c.parent_id).where(parent.c.id == up.c.parent_id))
    return sa.select(*MESSAGE_COLUMNS).join(up, _messages.c.id == up.c.id)


BRANCH = _branch_query()
"""The messages of the branch ending at ``b_id`` (if in a conversation of ``b_owner``), in no
particular order."""


@functools.cache
def message_update(names: tuple[str, ...]) -> sa.Update:
    """Set the columns ``names`` of the message ``b_id``: one statement per set of names."""
    return (
        sa.update(_messages)
        .where(_messages.c.id == sa.bindparam("b_id"))
        .values({name: _bind(_messages, name) for name in names})
    )


# --- accounts -----------------------------------------------------------------------------------

COUNT_USERS = sa.select(sa.func.count()).select_from(_users)
GET_USER = sa.select(*USER_COLUMNS).where(_users.c.id == sa.bindparam("b_id"))
# Read-locked (PostgreSQL's FOR SHARE): the user cannot be deleted until the session or key
# made for them is in.
USER_EXISTS = (
    sa.select(_users.c.id).where(_users.c.id == sa.bindparam("b_id")).with_for_update(read=True)
)
EMAIL_TAKEN = sa.select(_users.c.id).where(_users.c.email_key == sa.bindparam("b_email_key"))
FIND_LOGIN = sa.select(*USER_COLUMNS, _users.c.password_hash).where(
    _users.c.email_key == sa.bindparam("b_email_key")
)
_ACTIVE_ADMIN = sa.and_(_users.c.role == "admin", _users.c.status == "active")
FIRST_ADMIN = (
    sa.select(*USER_COLUMNS)
    .where(_ACTIVE_ADMIN)
    .order_by(_users.c.created_at, _users.c.id)
    .limit(1)
)
OTHER_ACTIVE_ADMINS = (
    sa.select(sa.func.count())
    .select_from(_users)
    .where(_ACTIVE_ADMIN, _users.c.id != sa.bindparam("b_id"))
)
LIST_USERS = sa.select(*USER_COLUMNS).order_by(_users.c.created_at, _users.c.id)
INSERT_USER = sa.insert(_users).values(
    {name: _bind(_users, name) for name in (*USER_FIELDS, "email_key", "password_hash")}
)
DELETE_USER = sa.delete(_users).where(_users.c.id == sa.bindparam("b_id"))
# A deleted user's conversations and their messages (explicitly, as for one conversation).
DELETE_OWNED_MESSAGES = sa.delete(_messages).where(
    _messages.c.conversation_id.in_(
        sa.select(_conversations.c.id).where(_conversations.c.owner == _OWNER)
    )
)
DELETE_OWNED_CONVERSATIONS = sa.delete(_conversations).where(_conversations.c.owner == _OWNER)
# Before deleting them: their rows locked first, in the order a turn's start takes its locks
# (conversation, then messages), so the two never wait for each other (see LOCK_CONVERSATION).
LOCK_OWNED_CONVERSATIONS = (
    sa.select(_conversations.c.id).where(_conversations.c.owner == _OWNER).with_for_update()
)


@functools.cache
def user_update(names: tuple[str, ...]) -> sa.Update:
    """Set the columns ``names`` of the user ``b_id``: one statement per set of names."""
    return (
        sa.update(_users)
        .where(_users.c.id == sa.bindparam("b_id"))
        .values({name: _bind(_users, name) for name in names})
    )


ADD_SETUP_TOKEN = sa.insert(_setup_tokens).values(
    token_hash=_bind(_setup_tokens, "token_hash"), created_at=_bind(_setup_tokens, "created_at")
)
SETUP_TOKEN_EXISTS = sa.select(_setup_tokens.c.token_hash).where(
    _setup_tokens.c.token_hash == sa.bindparam("b_token_hash")
)
DELETE_SETUP_TOKENS = sa.delete(_setup_tokens)

# Sessions and keys are checked on every request: one query each, the user joined by its key.
INSERT_SESSION = sa.insert(_sessions).values(
    {name: _bind(_sessions, name) for name in SESSION_FIELDS}
)
FIND_SESSION = (
    sa.select(*USER_COLUMNS, *SESSION_COLUMNS)
    .select_from(_sessions.join(_users, _sessions.c.user_id == _users.c.id))
    .where(_sessions.c.token_hash == sa.bindparam("b_token_hash"))
)
TOUCH_SESSION = (
    sa.update(_sessions)
    .where(_sessions.c.token_hash == sa.bindparam("b_token_hash"))
    .values(last_seen_at=_bind(_sessions, "last_seen_at"))
)
DELETE_SESSION = sa.delete(_sessions).where(_sessions.c.token_hash == sa.bindparam("b_token_hash"))
DELETE_STALE_SESSIONS = sa.delete(_sessions).where(
    sa.or_(
        _sessions.c.last_seen_at < sa.bindparam("b_idle_since"),
        _sessions.c.created_at < sa.bindparam("b_created_before"),
    )
)
DELETE_USER_SESSIONS = sa.delete(_sessions).where(_sessions.c.user_id == sa.bindparam("b_id"))
DELETE_USER_SESSIONS_BUT = DELETE_USER_SESSIONS.where(
    _sessions.c.token_hash != sa.bindparam("b_keep")
)

INSERT_API_KEY = sa.insert(_api_keys).values(
    {name: _bind(_api_keys, name) for name in (*API_KEY_FIELDS, "key_hash")}
)
FIND_API_KEY = (
    sa.select(*USER_COLUMNS, *API_KEY_COLUMNS)
    .select_from(_api_keys.join(_users, _api_keys.c.user_id == _users.c.id))
    .where(_api_keys.c.key_hash == sa.bindparam("b_key_hash"))
)
TOUCH_API_KEY = (
    sa.update(_api_keys)
    .where(_api_keys.c.id == sa.bindparam("b_id"))
    .values(last_used_at=_bind(_api_keys, "last_used_at"))
)
LIST_API_KEYS = (
    sa.select(*API_KEY_COLUMNS)
    .where(_api_keys.c.user_id == sa.bindparam("b_user_id"))
    .order_by(_api_keys.c.created_at.desc(), _api_keys.c.id.desc())
)
DELETE_API_KEY = sa.delete(_api_keys).where(
    _api_keys.c.id == sa.bindparam("b_id"), _api_keys.c.user_id == sa.bindparam("b_owner")
)
DELETE_USER_API_KEYS = sa.delete(_api_keys).where(_api_keys.c.user_id == sa.bindparam("b_id"))


# --- MCP server settings (server-wide: no owner) -----------------------------------------------

LIST_TOOL_SERVERS = sa.select(*TOOL_SERVER_COLUMNS)  # sorted by the store, by code point
GET_TOOL_SERVER = sa.select(*TOOL_SERVER_COLUMNS).where(
    _mcp_servers.c.name == sa.bindparam("b_name")
)
INSERT_TOOL_SERVER = sa.insert(_mcp_servers).values(
    {name: _bind(_mcp_servers, name) for name in TOOL_SERVER_FIELDS}
)
DELETE_TOOL_SERVER = sa.delete(_mcp_servers).where(_mcp_servers.c.name == sa.bindparam("b_name"))


@functools.cache
def tool_server_update(names: tuple[str, ...]) -> sa.Update:
    """Set the columns ``names`` of the MCP server ``b_name``: one statement per set of names."""
    return (
        sa.update(_mcp_servers)
        .where(_mcp_servers.c.name == sa.bindparam("b_name"))
        .values({name: _bind(_mcp_servers, name) for name in names})
    )


# --- driver-level forms -------------------------------------------------------------------------


@functools.cache
def positional(
    statement: sa.Update, dialect: sa.Dialect
) -> tuple[str, tuple[str, ...], dict[str, Any]]:
    """``statement`` compiled for ``dialect`` with positional parameters: its SQL, the names
    of its parameters in order, and the values of those fixed in the statement. Only for
    statements whose parameters need no type processing (text, numbers)."""
    compiled = statement.compile(dialect=dialect)
    if compiled.positiontup is None:
        raise RuntimeError(f"{dialect.name} does not take positional parameters")
    return compiled.string, tuple(compiled.positiontup), dict(compiled.params)
