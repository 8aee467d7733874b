"""``SQLTransfer``: moving conversations in and out, a part of ``SQLStore`` (mixed into it).

``export_conversations`` reads an owner's conversations with every message of their trees in one
read transaction (one snapshot: a conversation and its messages agree). ``import_conversations``
writes a file's conversations in ONE write transaction: all of them or, on any error, none. Each
gets new ids (parents inserted before children), its times kept (now when unknown), its current
leaf mapped; the ``imports`` table remembers (owner, source, source id) → our conversation, so
importing a file again skips what it brought before. Our own format (``source`` "ssechat") keeps
its ids when none of them is taken in this database: an export imported into a fresh database
exports again as the same document; ids taken already (the file imported by another user, or
back into its own database) are replaced by new ones, and a conversation the importing user has
already is skipped.

Like the rest of the store, each public method is one synchronous body run whole on the store's
threads, and every query filters by the owner. This module must never parse a file (that is
``ssechat.transfer``'s), speak HTTP or log a message's text.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from ssechat.errors import InvalidRequestError, NotFoundError
from ssechat.store import schema
from ssechat.store.models import Conversation, Message
from ssechat.store.rows import (
    CONVERSATION_COLUMNS,
    MESSAGE_COLUMNS,
    conversation_from_row,
    message_from_row,
)
from ssechat.store.threads import StoreThreads, reads
from ssechat.transfer.model import ImportedConversation

__all__ = ["SQLTransfer"]

_OURS = "ssechat"  # ssechat.transfer.ours.SOURCE
_OUR_ID = re.compile(r"[0-9a-f]{32}")  # uuid4().hex, as the store makes them

_conversations = schema.conversations
_messages = schema.messages
_imports = schema.imports

_OWNED = (
    sa.select(*CONVERSATION_COLUMNS)
    .where(_conversations.c.owner == sa.bindparam("b_owner"))
    .order_by(_conversations.c.created_at, _conversations.c.id)
)
_ONE = sa.select(*CONVERSATION_COLUMNS).where(
    _conversations.c.owner == sa.bindparam("b_owner"),
    _conversations.c.id == sa.bindparam("b_id"),
)
# Every message of the owner's conversations (or of one), in insertion order: parents first.
_OWNED_MESSAGES = (
    sa.select(*MESSAGE_COLUMNS)
    .join(_conversations, _conversations.c.id == _messages.c.conversation_id)
    .where(_conversations.c.owner == sa.bindparam("b_owner"))
    .order_by(_messages.c.seq)
)
_IMPORTED = sa.select(_imports.c.source_id).where(
    _imports.c.owner == sa.bindparam("b_owner"),
    _imports.c.source == sa.bindparam("b_source"),
    _imports.c.source_id.in_(sa.bindparam("b_ids", expanding=True)),
)
_TAKEN_CONVERSATIONS = sa.select(_conversations.c.id, _conversations.c.owner).where(
    _conversations.c.id.in_(sa.bindparam("b_ids", expanding=True))
)
_TAKEN_MESSAGES = sa.select(_messages.c.id).where(
    _messages.c.id.in_(sa.bindparam("b_ids", expanding=True))
)
_CHUNK = 500  # ids per IN (...) list: far below every driver's limit on parameters


class SQLTransfer:
    """The export and import operations of ``Store`` (documented there), for a class that has
    the store's ``threads`` and ``_clock``: ``SQLStore`` inherits them."""

    threads: StoreThreads
    _clock: Callable[[], float]

    @reads
    def export_conversations(
        self, conn: sa.Connection, *, owner: str, conversation_id: str | None = None
    ) -> list[tuple[Conversation, list[Message]]]:
        if conversation_id is not None:
            row = conn.execute(_ONE, {"b_owner": owner, "b_id": conversation_id}).first()
            if row is None:
                raise NotFoundError(f"conversation {conversation_id!r} not found")
            found = [conversation_from_row(row)]
            statement = _OWNED_MESSAGES.where(_messages.c.conversation_id == conversation_id)
        else:
            found = [conversation_from_row(r) for r in conn.execute(_OWNED, {"b_owner": owner})]
            statement = _OWNED_MESSAGES
        by_conversation: dict[str, list[Message]] = {c.id: [] for c in found}
        for row in conn.execute(statement, {"b_owner": owner}):
            message = message_from_row(row)
            by_conversation[message.conversation_id].append(message)
        return [(c, by_conversation[c.id]) for c in found]

    async def import_conversations(
        self, conversations: Sequence[ImportedConversation], *, owner: str
    ) -> tuple[list[str], int]:
        chosen = list(conversations)  # taken now: the caller's list may change meanwhile
        return await self.threads.write(lambda conn: self._import(conn, chosen, owner))

    def _import(
        self, conn: sa.Connection, conversations: list[ImportedConversation], owner: str
    ) -> tuple[list[str], int]:
        # Under the invariants lock: two imports of one file at once (two processes) run one
        # after the other, and the second skips what the first brought.
        self.threads.lock_invariants(conn)
        before = _imported_before(conn, owner, conversations)
        now = self._clock()
        imported: list[str] = []
        skipped = 0
        seen: set[tuple[str, str]] = set()
        for conversation in conversations:
            key = (conversation.source, conversation.source_id)
            if key in before or key in seen:
                skipped += 1
                continue
            seen.add(key)
            ids = _keep_ids(conn, conversation, owner)
            if ids is None:  # ours, and this user has it already
                skipped += 1
                continue
            imported.append(_insert(conn, conversation, owner, *ids, now))
        return imported, skipped


def _imported_before(
    conn: sa.Connection, owner: str, conversations: Sequence[ImportedConversation]
) -> set[tuple[str, str]]:
    wanted: dict[str, list[str]] = {}
    for conversation in conversations:
        wanted.setdefault(conversation.source, []).append(conversation.source_id)
    found: set[tuple[str, str]] = set()
    for source, ids in wanted.items():
        for start in range(0, len(ids), _CHUNK):
            params = {"b_owner": owner, "b_source": source, "b_ids": ids[start : start + _CHUNK]}
            found.update((source, id) for id in conn.execute(_IMPORTED, params).scalars())
    return found


def _keep_ids(
    conn: sa.Connection, conversation: ImportedConversation, owner: str
) -> tuple[str, dict[str, str]] | None:
    """Our id of the conversation and the file's message ids → ours: the same ids for our own
    format when none is taken (None: the conversation is this owner's already), else new ones."""
    fresh = uuid.uuid4().hex, {message.id: uuid.uuid4().hex for message in conversation.messages}
    if conversation.source != _OURS:
        return fresh
    wanted = [conversation.source_id, *(message.id for message in conversation.messages)]
    if not all(_OUR_ID.fullmatch(id) for id in wanted):
        return fresh
    holder = conn.execute(_TAKEN_CONVERSATIONS, {"b_ids": [conversation.source_id]}).first()
    if holder is not None:
        return None if holder.owner == owner else fresh
    message_ids = wanted[1:]
    for start in range(0, len(message_ids), _CHUNK):
        chunk = message_ids[start : start + _CHUNK]
        if conn.execute(_TAKEN_MESSAGES, {"b_ids": chunk}).first() is not None:
            return fresh
    return conversation.source_id, {id: id for id in message_ids}


def _insert(
    conn: sa.Connection,
    conversation: ImportedConversation,
    owner: str,
    conversation_id: str,
    ids: dict[str, str],
    now: float,
) -> str:
    created = conversation.created_at if conversation.created_at is not None else now
    rows: list[dict[str, Any]] = []
    inserted: set[str] = set()
    for message in conversation.messages:
        # The model's promise (unique ids, parents first), kept by every parser, checked again
        # here so that a parser's slip is a 400, never a half-written tree or a 500.
        if message.id in inserted or (
            message.parent_id is not None and message.parent_id not in inserted
        ):
            raise InvalidRequestError(
                f"conversation {conversation.source_id!r}: message {message.id!r} is repeated "
                "or comes before its parent"
            )
        inserted.add(message.id)
        made = message.created_at if message.created_at is not None else created
        rows.append(
            {
                "id": ids[message.id],
                "conversation_id": conversation_id,
                "parent_id": ids[message.parent_id] if message.parent_id is not None else None,
                "role": message.role,
                "content": message.content,
                "status": message.status,
                "model": message.model,
                "finish_reason": message.finish_reason,
                "usage": dict(message.usage) if message.usage is not None else None,
                "error": message.error,
                "created_at": made,
                "updated_at": message.updated_at if message.updated_at is not None else made,
                "reasoning": message.reasoning,
                "reasoning_seconds": message.reasoning_seconds,
                "tool_calls": message.tool_calls,
            }
        )
    leaf = _leaf(conversation)
    if leaf is not None and leaf not in inserted:
        raise InvalidRequestError(
            f"conversation {conversation.source_id!r}: its current leaf is not one of its messages"
        )
    updated = conversation.updated_at
    if updated is None:
        updated = max([created, *(row["updated_at"] for row in rows)])
    conn.execute(
        sa.insert(_conversations),
        {
            "id": conversation_id,
            "title": conversation.title,
            "model": conversation.model,
            "system_prompt": conversation.system_prompt,
            "owner": owner,
            "created_at": created,
            "updated_at": updated,
            "current_leaf_id": ids[leaf] if leaf is not None else None,
            "tools": list(conversation.tools) or None,  # NULL: none, as the store writes it
        },
    )
    if rows:
        # One executemany, in the file's order: a parent is always inserted before its children.
        conn.execute(sa.insert(_messages), rows)
    conn.execute(
        sa.insert(_imports),
        {
            "owner": owner,
            "source": conversation.source,
            "source_id": conversation.source_id,
            "conversation_id": conversation_id,
            "imported_at": now,
        },
    )
    return conversation_id


def _leaf(conversation: ImportedConversation) -> str | None:
    # The file's current leaf; without one, the newest leaf (the last one in the file's order
    # among those written latest).
    if conversation.current_leaf_id is not None:
        return conversation.current_leaf_id
    parents = {message.parent_id for message in conversation.messages}
    leaves = [message for message in conversation.messages if message.id not in parents]
    if not leaves:
        return None
    newest = max(enumerate(leaves), key=lambda item: (item[1].created_at or float("-inf"), item[0]))
    return newest[1].id
