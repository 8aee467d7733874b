"""``SQLTransfer``: moving conversations in and out, a part of ``SQLStore`` (mixed into it).

``export_conversations`` reads an owner's conversations with every message of their trees in one
read transaction (one snapshot: a conversation and its messages agree).

``import_conversations`` writes a file's conversations all or none, yet never holds the write
lock for long (on SQLite the database's one write lock: every other user's write waits behind
it). It is given a callable returning a fresh iterator of them (a streaming parse of the uploaded
file, see ``api.transfer_service``), read on a worker thread, never inside a transaction:

    staging   a batch (``_BATCH`` conversations or ``_BATCH_CHARS`` of text) at a time, each
              batch one short write transaction, under a STAGING owner no user can be
              (``import:<start>:<uuid>``; every read filters by owner, so staged rows are seen
              by no one: not listed, searched or exported)
    publish   one short write under the invariants lock: staged copies of what the owner got
              meanwhile (a concurrent import of the same file) are dropped, then the staged
              conversations and ``imports`` rows become the owner's: the one moment the
              import becomes visible, whole; or, when the owner's account was deleted
              meanwhile, a ``NotFoundError`` (the staged rows are deleted as on an error)
    on error  (the file breaks further on, a database error, cancellation) the staged rows are
              deleted, in batches, shielded from cancellation, and the error propagates

A process killed mid-import leaves staged rows: the store's start deletes those older than
``STAGING_MAX_AGE`` (never younger ones: another process may be importing right now).

Each conversation gets new ids (parents inserted before children), its times kept (now when
unknown), its current leaf mapped; the ``imports`` table remembers (owner, source, source id) →
our conversation, so importing a file again skips what it brought before. Our own format
(``source`` "ssechat") keeps its ids when none of them is taken in this database: an export
imported into a fresh database exports again as the same document; ids taken already (the file
imported by another user, or back into its own database) are replaced by new ones, and a
conversation the importing user has already is skipped. Two imports of one such file at once
may both find an id free and collide: the loser is a ``ConflictError`` (409), cleaned up.

Like the rest of the store, each transaction is one synchronous body run whole on the store's
threads, and every query filters by the owner. This module must never parse a file (that is
``ssechat.transfer``'s), read the file inside a write transaction, make a staged row visible
before the publish, speak HTTP or log a message's text.
"""

from __future__ import annotations

import functools
import logging
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Final, TypeVar

import anyio
import anyio.to_thread
import sqlalchemy as sa

from ssechat.errors import ConflictError, InvalidRequestError, NotFoundError
from ssechat.store import schema
from ssechat.store.models import LOCAL_OWNER, Conversation, Message
from ssechat.store.rows import (
    CONVERSATION_COLUMNS,
    MESSAGE_COLUMNS,
    conversation_from_row,
    message_from_row,
)
from ssechat.store.threads import StoreThreads, reads
from ssechat.transfer.model import ImportedConversation

__all__ = ["STAGING_MAX_AGE", "STAGING_PREFIX", "SQLTransfer"]

logger = logging.getLogger(__name__)

STAGING_PREFIX: Final = "import:"
"""How a staging owner begins: a user id is uuid hex, ``LOCAL_OWNER`` "local": never this."""
STAGING_MAX_AGE: Final = 3600.0
"""Seconds after its start past which a staged import is a dead process's (no import lasts an
hour: 100 MB is written in seconds): the store's start deletes it."""
COLLIDED: Final = "another import of this file is running; try again once it has finished"

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
# What the owner imported before, or this import staged in an earlier batch.
_IMPORTED = sa.select(_imports.c.source_id).where(
    _imports.c.owner.in_(sa.bindparam("b_owners", expanding=True)),
    _imports.c.source == sa.bindparam("b_source"),
    _imports.c.source_id.in_(sa.bindparam("b_ids", expanding=True)),
)
_TAKEN_CONVERSATIONS = sa.select(_conversations.c.id, _conversations.c.owner).where(
    _conversations.c.id.in_(sa.bindparam("b_ids", expanding=True))
)
_TAKEN_MESSAGES = sa.select(_messages.c.id).where(
    _messages.c.id.in_(sa.bindparam("b_ids", expanding=True))
)
_staged = _imports.alias("staged")
_theirs = _imports.alias("theirs")
# Staged conversations the owner has meanwhile (published by a concurrent import of the file).
_DUPLICATES = (
    sa.select(_staged.c.conversation_id)
    .join(
        _theirs,
        sa.and_(
            _theirs.c.owner == sa.bindparam("b_owner"),
            _theirs.c.source == _staged.c.source,
            _theirs.c.source_id == _staged.c.source_id,
        ),
    )
    .where(_staged.c.owner == sa.bindparam("b_staging"))
)
_STAGED = sa.select(_conversations.c.id).where(_conversations.c.owner == sa.bindparam("b_staging"))
# Newest first: a child before its parent, so that deleting some of them cascades to nothing.
_MESSAGES_OF = (
    sa.select(_messages.c.seq)
    .where(_messages.c.conversation_id.in_(sa.bindparam("b_ids", expanding=True)))
    .order_by(_messages.c.seq.desc())
)
_DELETE_MESSAGES = sa.delete(_messages).where(
    _messages.c.seq.in_(sa.bindparam("b_seqs", expanding=True))
)
_STAGING_OWNERS = (
    sa.select(_conversations.c.owner)
    .where(_conversations.c.owner.like(f"{STAGING_PREFIX}%"))
    .distinct()
)
# The owner names no user while others exist: the owner's account was deleted. Owners are
# users' ids whenever the database has users (accounts on: the signed-in user; accounts off:
# the first admin, see ``auth.service``), and ``LOCAL_OWNER`` (accounts off, no admin yet) or
# any string (the store's own callers and tests) when it has none.
_users = schema.users
_OWNER_GONE = sa.select(
    sa.and_(
        sa.exists(sa.select(_users.c.id)),
        ~sa.exists(sa.select(_users.c.id).where(_users.c.id == sa.bindparam("b_owner"))),
    )
)
_PUBLISH = (
    sa.update(_conversations)
    .where(_conversations.c.owner == sa.bindparam("b_staging"))
    .values(owner=sa.bindparam("b_owner"))
)
_PUBLISH_IMPORTS = (
    sa.update(_imports)
    .where(_imports.c.owner == sa.bindparam("b_staging"))
    .values(owner=sa.bindparam("b_owner"))
)
_CHUNK = 500  # ids per IN (...) list: far below every driver's limit on parameters
_BATCH = 100  # conversations per staging transaction, at most
# Text per staging transaction, about: the cost of a batch is in its text (writing it, and on
# SQLite indexing it by triggers), measured at 0.2-0.4 s of CPU per million characters there,
# so a batch holds the write lock well under 0.1 s. Smaller batches cost nothing in all: the
# writes of a 42 MB import took the same CPU in batches of 2 MB and of 0.25 MB.
_BATCH_CHARS = 200_000
# Deleting costs about what inserting did (SQLite's index is updated by triggers), so a
# cleanup transaction deletes at most this many conversations, or this many of their messages.
# Since m009 a title leaves SQLite's index by key (m007 scanned every title per conversation,
# hence 10 then): with 20 000 other titles, a transaction of 100 conversations of 4 messages
# of 2 000 characters took 40 ms of CPU, of 100 short ones 10-15 ms, and 500 messages of
# 2 000 characters (the other bound) 35-60 ms.
_DROP_CONVERSATIONS = 100
_DROP_MESSAGES = 500
# Duplicates are deleted whole, their messages unbounded: few at a time (rare: a concurrent
# import of the same file).
_DROP_DUPLICATES = 10

_T = TypeVar("_T")


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
        self, source: Callable[[], Iterable[ImportedConversation]], *, owner: str
    ) -> tuple[list[str], int]:
        # The clock is read on the store's writer thread, as every write of the store reads it.
        now = await self.threads.write(lambda conn: self._clock())
        staging = f"{STAGING_PREFIX}{int(now)}:{uuid.uuid4().hex}"
        imported: list[str] = []
        skipped = 0
        try:
            # The file is read here, on a worker thread, a batch at a time: memory holds a
            # batch, and no transaction is open while it is parsed.
            conversations = iter(await anyio.to_thread.run_sync(source))
            while batch := await anyio.to_thread.run_sync(_next_batch, conversations):
                ids, skips = await self._write(
                    functools.partial(self._stage, batch=batch, staging=staging, now=now),
                    owner=owner,
                )
                imported += ids
                skipped += skips
            # What a concurrent import of the file published meanwhile: dropped in short
            # transactions first, so that the publish has little (usually nothing) left to drop.
            dropped: list[str] = []
            while more := await self._write(
                functools.partial(_drop_duplicates, staging=staging, limit=_DROP_DUPLICATES),
                owner=owner,
            ):
                dropped += more
            dropped += await self._write(
                functools.partial(self._publish, staging=staging), owner=owner
            )
        except BaseException as error:
            await self._unstage(staging)
            if isinstance(error, sa.exc.IntegrityError):
                # Only kept ids can collide (every other id is new, every staged key this
                # import's own): a concurrent import of the same file of ours took them.
                raise ConflictError(COLLIDED) from error
            raise
        gone = set(dropped)
        return [id for id in imported if id not in gone], skipped + len(gone)

    async def _write(self, body: Callable[..., _T], *, owner: str) -> _T:
        # Shielded: a cancelled import waits for its short transaction to end, so that the
        # cleanup that follows sees (and deletes) everything it wrote.
        with anyio.CancelScope(shield=True):
            done = await self.threads.write(lambda conn: body(conn, owner=owner))
        return done

    def _stage(
        self,
        conn: sa.Connection,
        *,
        owner: str,
        batch: list[ImportedConversation],
        staging: str,
        now: float,
    ) -> tuple[list[str], int]:
        """Write a batch under the staging owner: the ids written, and how many were skipped."""
        before = _imported_before(conn, (owner, staging), batch)
        imported: list[str] = []
        skipped = 0
        seen: set[tuple[str, str]] = set()
        for conversation in batch:
            key = (conversation.source, conversation.source_id)
            if key in before or key in seen:
                skipped += 1
                continue
            seen.add(key)
            ids = _keep_ids(conn, conversation, (owner, staging))
            if ids is None:  # ours, and this user has it already
                skipped += 1
                continue
            imported.append(_insert(conn, conversation, staging, *ids, now))
        return imported, skipped

    def _publish(self, conn: sa.Connection, *, owner: str, staging: str) -> list[str]:
        """Make the staged import the owner's, whole; the staged ids dropped as duplicates."""
        # Under the invariants lock: two publishes (of two processes) run one after the other,
        # and the second drops what the first gave the owner; nothing else gives an owner
        # ``imports`` rows, so the updates below cannot collide with a key.
        self.threads.lock_invariants(conn)
        if owner != LOCAL_OWNER and conn.execute(_OWNER_GONE, {"b_owner": owner}).scalar():
            # The user was deleted while their file was staged (``delete_user`` takes the same
            # lock: it ran before this, wholly). Their rows must not come back under an id no
            # one can sign in as: the caller's cleanup deletes the staged rows, in short
            # transactions, as for any failed import.
            raise NotFoundError("your account was deleted during the import")
        dropped = _drop_duplicates(conn, owner=owner, staging=staging, limit=None)
        params = {"b_owner": owner, "b_staging": staging}
        conn.execute(_PUBLISH, params)
        conn.execute(_PUBLISH_IMPORTS, params)
        return dropped

    async def _unstage(self, staging: str) -> None:
        """Delete what an import staged, in short transactions, whatever cancels the caller.
        A failure is logged, never raised: the error that led here is the one to report, and
        what is left is swept at the next start."""
        with anyio.CancelScope(shield=True):
            try:
                while await self.threads.write(functools.partial(_drop_staged, staging=staging)):
                    pass
            except Exception:
                logger.warning("deleting the rows of a failed import failed", exc_info=True)

    async def _sweep_staged_imports(self) -> None:
        """Delete the imports a dead process left staged: those older than ``STAGING_MAX_AGE``.
        Run as the store opens; cheap when there are none (one query of the owners)."""
        now, owners = await self.threads.write(
            lambda conn: (self._clock(), list(conn.execute(_STAGING_OWNERS).scalars()))
        )
        cutoff = now - STAGING_MAX_AGE
        for staging in owners:
            started = _staged_at(staging)
            if started is not None and started < cutoff:
                await self._unstage(staging)


def _next_batch(conversations: Iterator[ImportedConversation]) -> list[ImportedConversation]:
    """The file's next conversations: ``_BATCH`` of them, or fewer that hold ``_BATCH_CHARS``
    of text (the cost of a transaction is in its text: inserting it, indexing it)."""
    batch: list[ImportedConversation] = []
    chars = 0
    for conversation in conversations:
        batch.append(conversation)
        chars += sum(len(m.content) + len(m.reasoning or "") for m in conversation.messages)
        if len(batch) >= _BATCH or chars >= _BATCH_CHARS:
            break
    return batch


def _staged_at(staging: str) -> float | None:
    """When a staging owner's import started; None for an owner not made by ``SQLTransfer``."""
    started = staging.removeprefix(STAGING_PREFIX).partition(":")[0]
    return float(started) if started.isdigit() else None


def _drop_staged(conn: sa.Connection, *, staging: str) -> int:
    """Delete a transaction's worth of what ``staging`` holds: some staged conversations, or
    when they hold many messages, the newest of those; how many rows (0: nothing was left)."""
    ids = list(conn.execute(_STAGED.limit(_DROP_CONVERSATIONS), {"b_staging": staging}).scalars())
    if not ids:
        return 0
    seqs = list(conn.execute(_MESSAGES_OF.limit(_DROP_MESSAGES), {"b_ids": ids}).scalars())
    if len(seqs) == _DROP_MESSAGES:  # perhaps more: their messages first, a slice at a time
        conn.execute(_DELETE_MESSAGES, {"b_seqs": seqs})
        return len(seqs)
    _delete(conn, ids)
    return len(ids)


def _drop_duplicates(
    conn: sa.Connection, *, owner: str, staging: str, limit: int | None
) -> list[str]:
    """Delete (up to ``limit``) staged conversations whose source and source id ``owner`` has
    meanwhile; their ids."""
    statement = _DUPLICATES if limit is None else _DUPLICATES.limit(limit)
    ids = list(conn.execute(statement, {"b_owner": owner, "b_staging": staging}).scalars())
    _delete(conn, ids)
    return ids


def _delete(conn: sa.Connection, ids: Sequence[str]) -> None:
    # Messages and imports first, explicitly, rather than left to ON DELETE CASCADE (which
    # SQLite honours only with its foreign_keys pragma); the search index follows (SQLite's
    # triggers, PostgreSQL's generated columns).
    for start in range(0, len(ids), _CHUNK):
        params = {"b_ids": ids[start : start + _CHUNK]}
        for table, column in (
            (_messages, _messages.c.conversation_id),
            (_imports, _imports.c.conversation_id),
            (_conversations, _conversations.c.id),
        ):
            conn.execute(
                sa.delete(table).where(column.in_(sa.bindparam("b_ids", expanding=True))), params
            )


def _imported_before(
    conn: sa.Connection, owners: Sequence[str], conversations: Sequence[ImportedConversation]
) -> set[tuple[str, str]]:
    wanted: dict[str, list[str]] = {}
    for conversation in conversations:
        wanted.setdefault(conversation.source, []).append(conversation.source_id)
    found: set[tuple[str, str]] = set()
    for source, ids in wanted.items():
        for start in range(0, len(ids), _CHUNK):
            params = {
                "b_owners": list(owners),
                "b_source": source,
                "b_ids": ids[start : start + _CHUNK],
            }
            found.update((source, id) for id in conn.execute(_IMPORTED, params).scalars())
    return found


def _keep_ids(
    conn: sa.Connection, conversation: ImportedConversation, owners: Sequence[str]
) -> tuple[str, dict[str, str]] | None:
    """Our id of the conversation and the file's message ids → ours: the same ids for our own
    format when none is taken (None: the conversation is the owner's already, or staged by this
    import), else new ones."""
    fresh = uuid.uuid4().hex, {message.id: uuid.uuid4().hex for message in conversation.messages}
    if conversation.source != _OURS:
        return fresh
    wanted = [conversation.source_id, *(message.id for message in conversation.messages)]
    if not all(_OUR_ID.fullmatch(id) for id in wanted):
        return fresh
    holder = conn.execute(_TAKEN_CONVERSATIONS, {"b_ids": [conversation.source_id]}).first()
    if holder is not None:
        return None if holder.owner in owners else fresh
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
