"""The store's statements: portable SQLAlchemy Core, built once at import, or once per shape.

Built once so that SQLAlchemy compiles each a single time (its compiled cache is keyed on the
statement). Parameters are named ``b_`` + the column (a bare column name is reserved by
SQLAlchemy in INSERT and UPDATE). ``positional`` gives the driver-level form of a statement for
the hot executemany of the runs' saves.

This module must never run SQL, hold SQLite-only (or any dialect-only) SQL — that lives in
``store.sqlite`` — or map rows to records (``store.rows`` does).
"""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa

from ssechat.store import schema
from ssechat.store.rows import (
    CONVERSATION_COLUMNS,
    CONVERSATION_FIELDS,
    MESSAGE_COLUMNS,
    MESSAGE_FIELDS,
)

__all__ = [
    "BRANCH",
    "DELETE_CONVERSATION",
    "DELETE_MESSAGES",
    "FIRST_PAGE",
    "GET_CONVERSATION",
    "GET_MESSAGE",
    "INSERT_CONVERSATION",
    "INSERT_MESSAGE",
    "LIST_MESSAGES",
    "MARK_INTERRUPTED",
    "MESSAGE_OWNER",
    "NEXT_PAGE",
    "SAVE_PARTIAL",
    "SET_LEAF",
    "SET_LEAF_AND_MODEL",
    "SET_TITLE_IF_EMPTY",
    "conversation_update",
    "message_update",
    "positional",
]

_conversations = schema.conversations
_messages = schema.messages


def _bind(table: sa.Table, name: str) -> sa.BindParameter[Any]:
    """A parameter for a SET clause, typed like its column."""
    return sa.bindparam(f"b_{name}", type_=table.c[name].type)


# --- conversations ------------------------------------------------------------------------------

GET_CONVERSATION = sa.select(*CONVERSATION_COLUMNS).where(
    _conversations.c.id == sa.bindparam("b_id")
)
FIRST_PAGE = (
    sa.select(*CONVERSATION_COLUMNS)
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


@functools.cache
def conversation_update(names: tuple[str, ...]) -> sa.Update:
    """Set the columns ``names`` of the conversation ``b_id``: one statement per set of names."""
    return (
        sa.update(_conversations)
        .where(_conversations.c.id == sa.bindparam("b_id"))
        .values({name: _bind(_conversations, name) for name in names})
    )


# --- messages -----------------------------------------------------------------------------------

GET_MESSAGE = sa.select(*MESSAGE_COLUMNS).where(_messages.c.id == sa.bindparam("b_id"))
MESSAGE_OWNER = sa.select(_messages.c.conversation_id).where(_messages.c.id == sa.bindparam("b_id"))
LIST_MESSAGES = (
    sa.select(*MESSAGE_COLUMNS)
    .where(_messages.c.conversation_id == sa.bindparam("b_id"))
    .order_by(_messages.c.seq)
)
INSERT_MESSAGE = sa.insert(_messages).values(
    {name: _bind(_messages, name) for name in MESSAGE_FIELDS}
)
SAVE_PARTIAL = (
    sa.update(_messages)
    .where(_messages.c.id == sa.bindparam("b_id"), _messages.c.status == "streaming")
    .values(content=_bind(_messages, "content"), updated_at=_bind(_messages, "updated_at"))
)
MARK_INTERRUPTED = (
    sa.update(_messages)
    .where(_messages.c.status == "streaming")
    .values(status="interrupted", updated_at=_bind(_messages, "updated_at"))
)


def _branch_query() -> sa.Select[Any]:
    # The ids from a message up to its root, by a recursive CTE on the parent index. UNION, not
    # UNION ALL: a cycle (impossible through the store) would end the recursion, not loop.
    up = (
        sa.select(_messages.c.id, _messages.c.parent_id)
        .where(_messages.c.id == sa.bindparam("b_id"))
        .cte("up", recursive=True)
    )
    parent = _messages.alias("parent")
    up = up.union(sa.select(parent.c.id, parent.c.parent_id).where(parent.c.id == up.c.parent_id))
    return sa.select(*MESSAGE_COLUMNS).join(up, _messages.c.id == up.c.id)


BRANCH = _branch_query()
"""The messages of the branch ending at ``b_id``, in no particular order."""


@functools.cache
def message_update(names: tuple[str, ...]) -> sa.Update:
    """Set the columns ``names`` of the message ``b_id``: one statement per set of names."""
    return (
        sa.update(_messages)
        .where(_messages.c.id == sa.bindparam("b_id"))
        .values({name: _bind(_messages, name) for name in names})
    )


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
