"""``Store``: conversations and their message trees, kept in a database with SQLAlchemy Core.

Reads run concurrently on pooled connections; every write goes through one writer (an
``asyncio.Lock`` around a single-connection engine), one transaction per method, so a method
that fails (a parent from another conversation, an unknown id) leaves the database unchanged.
Opening applies the pending migrations.

Every public method runs to its end even when its caller is cancelled (a client leaves, a run is
stopped): the caller stops waiting at once, but the transaction is never cut in the middle of a
driver call, which would leave a connection to be torn down in the background or the write lock
in doubt. ``close`` waits for those operations before closing the connections.

The queries here are portable Core (SQLite today, PostgreSQL later): this module must never hold
SQLite-only SQL (that lives in ``store.sqlite``), and never call a model or speak HTTP. Errors are
``ssechat.errors`` (``NotFoundError``, ``InvalidRequestError``) so the API can answer with them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ssechat.errors import InvalidRequestError, NotFoundError
from ssechat.store import schema
from ssechat.store.cursor import decode_cursor, encode_cursor
from ssechat.store.migrations import apply_migrations
from ssechat.store.models import MESSAGE_STATUSES, ROLES, UNSET, Conversation, Message, Unset
from ssechat.store.sqlite import create_engines, resolve_url

__all__ = ["Store"]

logger = logging.getLogger(__name__)

_conversations = schema.conversations
_messages = schema.messages
_MESSAGE_COLUMNS = [c for c in _messages.c if c.name != "seq"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


def _new_id() -> str:
    return uuid.uuid4().hex


def _completes(
    method: Callable[Concatenate[Store, _P], Coroutine[Any, Any, _T]],
) -> Callable[Concatenate[Store, _P], Coroutine[Any, Any, _T]]:
    """Make a store method run to its end even if its caller is cancelled (see the module)."""

    @functools.wraps(method)
    async def run(self: Store, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        return await self._complete(method(self, *args, **kwargs))

    return run


def _report_orphan(task: asyncio.Task[Any]) -> None:
    """Log the failure of an operation whose caller was cancelled: nobody else will see it."""
    if not task.cancelled() and (error := task.exception()) is not None:
        logger.warning("a store operation failed after its caller left", exc_info=error)


class Store:
    """The conversation store. Make one with ``await Store.open(...)``; close it when done."""

    def __init__(
        self, reader: AsyncEngine, writer: AsyncEngine, *, clock: Callable[[], float]
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._clock = clock
        self._write_lock = asyncio.Lock()
        self._inflight: set[asyncio.Task[Any]] = set()
        self._closed = False
        self._closing: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        url_or_path: str | os.PathLike[str] | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> Store:
        """Open (creating it if needed) the database at a URL or file path and migrate it.

        ``None`` means ``default_database_url()``. ``clock`` gives the timestamps (unix seconds).
        Raises ``ValueError`` for a URL that is not a supported database, ``RuntimeError`` for a
        database migrated by a newer ssechat.
        """
        reader, writer = create_engines(resolve_url(url_or_path))
        store = cls(reader, writer, clock=clock)
        try:
            await store._complete(store._migrate())
        except BaseException:
            await store.close()
            raise
        return store

    async def _migrate(self) -> None:
        async with self._write() as conn:
            await conn.run_sync(apply_migrations, clock=self._clock)

    async def close(self) -> None:
        """Wait for the operations under way, then close every connection. Idempotent."""
        self._closed = True
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._shut_down())
        await asyncio.shield(self._closing)

    async def _shut_down(self) -> None:
        if self._inflight:
            await asyncio.wait(self._inflight)
        await self._writer.dispose()
        await self._reader.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _complete(self, operation: Coroutine[Any, Any, _T]) -> _T:
        """Run ``operation`` in a task of its own and wait for it; if this caller is cancelled,
        the task still runs to its end (its failure is logged)."""
        if self._closed:
            operation.close()
            raise RuntimeError("the store is closed")
        task = asyncio.get_running_loop().create_task(operation)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                task.add_done_callback(_report_orphan)
            raise

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction, alone: committed on success, rolled back on any error."""
        async with self._write_lock, self._writer.begin() as conn:
            yield conn

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only connection; its statements share one snapshot until it is returned."""
        async with self._reader.connect() as conn:
            yield conn

    # --- conversations ------------------------------------------------------------------------

    @_completes
    async def create_conversation(
        self,
        *,
        title: str | None = None,
        model: str | None = None,
        system_prompt: str | None = None,
        owner: str | None = None,
    ) -> Conversation:
        now = self._clock()
        conversation = Conversation(
            id=_new_id(),
            title=title,
            model=model,
            system_prompt=system_prompt,
            owner=owner,
            created_at=now,
            updated_at=now,
            current_leaf_id=None,
        )
        async with self._write() as conn:
            await conn.execute(sa.insert(_conversations).values(dataclasses.asdict(conversation)))
        return conversation

    @_completes
    async def list_conversations(
        self, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[Conversation], str | None]:
        """One page, most recently updated first; pass the returned cursor for the next page.

        The cursor is ``None`` after the last page. Paging is by key (updated_at, id), so a
        conversation added or bumped meanwhile never makes another one appear twice.
        """
        if limit < 1:
            raise InvalidRequestError("limit must be at least 1")
        query = sa.select(_conversations).order_by(
            _conversations.c.updated_at.desc(), _conversations.c.id.desc()
        )
        if cursor is not None:
            updated_at, last_id = decode_cursor(cursor)
            query = query.where(
                sa.or_(
                    _conversations.c.updated_at < updated_at,
                    sa.and_(
                        _conversations.c.updated_at == updated_at,
                        _conversations.c.id < last_id,
                    ),
                )
            )
        async with self._read() as conn:
            rows = (await conn.execute(query.limit(limit + 1))).mappings().all()
        page = [_conversation(row) for row in rows[:limit]]
        more = len(rows) > limit
        return page, encode_cursor(page[-1].updated_at, page[-1].id) if more else None

    @_completes
    async def get_conversation(self, conversation_id: str) -> Conversation:
        async with self._read() as conn:
            return await _get_conversation(conn, conversation_id)

    @_completes
    async def update_conversation(
        self,
        conversation_id: str,
        *,
        title: str | Unset | None = UNSET,
        model: str | Unset | None = UNSET,
        system_prompt: str | Unset | None = UNSET,
        current_leaf_id: str | Unset | None = UNSET,
    ) -> Conversation:
        """Change the fields given (``None`` clears one) and bump ``updated_at``.

        ``current_leaf_id`` must name a message of this conversation (``InvalidRequestError``).
        """
        changes: dict[str, Any] = {
            name: value
            for name, value in (
                ("title", title),
                ("model", model),
                ("system_prompt", system_prompt),
                ("current_leaf_id", current_leaf_id),
            )
            if value is not UNSET
        }
        async with self._write() as conn:
            await _get_conversation(conn, conversation_id)
            if isinstance(current_leaf_id, str):
                await _check_in_conversation(
                    conn, current_leaf_id, conversation_id, "current_leaf_id"
                )
            changes["updated_at"] = self._clock()
            await conn.execute(
                sa.update(_conversations)
                .where(_conversations.c.id == conversation_id)
                .values(**changes)
            )
            return await _get_conversation(conn, conversation_id)

    @_completes
    async def delete_conversation(self, conversation_id: str) -> None:
        """Delete the conversation and all its messages."""
        async with self._write() as conn:
            await _get_conversation(conn, conversation_id)
            # Explicit rather than left to ON DELETE CASCADE, which SQLite only honours when the
            # foreign_keys pragma is on.
            await conn.execute(
                sa.delete(_messages).where(_messages.c.conversation_id == conversation_id)
            )
            await conn.execute(
                sa.delete(_conversations).where(_conversations.c.id == conversation_id)
            )

    @_completes
    async def set_title_if_empty(self, conversation_id: str, title: str) -> bool:
        """Give the conversation ``title`` unless it has one; say whether it was set.

        ``False`` too if the conversation is gone: a run may finish after its conversation was
        deleted, and naming it then is moot rather than an error.
        """
        async with self._write() as conn:
            result = await conn.execute(
                sa.update(_conversations)
                .where(
                    _conversations.c.id == conversation_id,
                    sa.or_(_conversations.c.title.is_(None), _conversations.c.title == ""),
                )
                .values(title=title, updated_at=self._clock())
            )
        return bool(result.rowcount)

    # --- messages -----------------------------------------------------------------------------

    @_completes
    async def list_messages(self, conversation_id: str) -> list[Message]:
        """Every message of the conversation (the whole tree), in creation order."""
        async with self._read() as conn:
            await _get_conversation(conn, conversation_id)
            rows = await conn.execute(
                sa.select(*_MESSAGE_COLUMNS)
                .where(_messages.c.conversation_id == conversation_id)
                .order_by(_messages.c.seq)
            )
            return [_message(row) for row in rows.mappings()]

    @_completes
    async def get_message(self, message_id: str) -> Message:
        async with self._read() as conn:
            return await _get_message(conn, message_id)

    @_completes
    async def path_to(self, message_id: str) -> list[Message]:
        """The branch from the root of the tree down to ``message_id``, both included."""
        async with self._read() as conn:
            message = await _get_message(conn, message_id)
            rows = await conn.execute(
                sa.select(*_MESSAGE_COLUMNS).where(
                    _messages.c.conversation_id == message.conversation_id
                )
            )
            by_id = {row["id"]: _message(row) for row in rows.mappings()}
        path = [message]
        seen = {message.id}
        while (parent_id := path[-1].parent_id) is not None and parent_id not in seen:
            parent = by_id.get(parent_id)
            if parent is None:
                break
            path.append(parent)
            seen.add(parent_id)
        path.reverse()
        return path

    @_completes
    async def add_message(
        self,
        conversation_id: str,
        *,
        parent_id: str | None,
        role: str,
        content: str,
        status: str = "complete",
        model: str | None = None,
    ) -> Message:
        """Add a message under ``parent_id`` (``None``: a new root) and make it the current leaf.

        A regenerated answer or an edited question is just a new message with the same parent
        as an existing one: a sibling.
        """
        _check_role(role)
        _check_status(status)
        async with self._write() as conn:
            (message,) = await self._insert_messages(
                conn, conversation_id, parent_id, [(role, content, status, model)]
            )
        return message

    @_completes
    async def add_exchange(
        self, conversation_id: str, *, parent_id: str | None, user_content: str, model: str
    ) -> tuple[Message, Message]:
        """Add a question and, under it, its empty ``streaming`` answer, in one transaction.

        The answer becomes the current leaf.
        """
        async with self._write() as conn:
            user, answer = await self._insert_messages(
                conn,
                conversation_id,
                parent_id,
                [("user", user_content, "complete", None), ("assistant", "", "streaming", model)],
            )
        return user, answer

    @_completes
    async def add_assistant(self, conversation_id: str, *, parent_id: str, model: str) -> Message:
        """Add an empty ``streaming`` answer under ``parent_id`` (regenerate): one transaction."""
        async with self._write() as conn:
            (answer,) = await self._insert_messages(
                conn, conversation_id, parent_id, [("assistant", "", "streaming", model)]
            )
        return answer

    async def _insert_messages(
        self,
        conn: AsyncConnection,
        conversation_id: str,
        parent_id: str | None,
        chain: list[tuple[str, str, str, str | None]],
    ) -> list[Message]:
        """Insert ``chain`` (role, content, status, model) as a line of descendants of
        ``parent_id``, the last one becoming the current leaf."""
        await _get_conversation(conn, conversation_id)
        if parent_id is not None:
            await _check_in_conversation(conn, parent_id, conversation_id, "parent_id")
        now = self._clock()
        added: list[Message] = []
        for role, content, status, model in chain:
            message = Message(
                id=_new_id(),
                conversation_id=conversation_id,
                parent_id=added[-1].id if added else parent_id,
                role=role,
                content=content,
                status=status,
                model=model,
                finish_reason=None,
                usage=None,
                created_at=now,
                updated_at=now,
                error=None,
            )
            await conn.execute(sa.insert(_messages).values(_row_of(message)))
            added.append(message)
        await conn.execute(
            sa.update(_conversations)
            .where(_conversations.c.id == conversation_id)
            .values(current_leaf_id=added[-1].id, updated_at=now)
        )
        return added

    @_completes
    async def update_message(
        self,
        id: str,
        *,
        content: str | None = None,
        status: str | None = None,
        finish_reason: str | None = None,
        usage: dict[str, int] | None = None,
        error: str | None = None,
    ) -> None:
        """Change the fields given (``None`` leaves one as it is) and bump ``updated_at``.

        Runs call this to save an answer, in batches: never once per token.
        """
        if status is not None:
            _check_status(status)
        changes: dict[str, Any] = {
            name: value
            for name, value in (
                ("content", content),
                ("status", status),
                ("finish_reason", finish_reason),
                ("usage", dict(usage) if usage is not None else None),
                ("error", error),
            )
            if value is not None
        }
        changes["updated_at"] = self._clock()
        async with self._write() as conn:
            result = await conn.execute(
                sa.update(_messages).where(_messages.c.id == id).values(**changes)
            )
            if not result.rowcount:
                raise NotFoundError(f"message {id!r} not found")

    @_completes
    async def mark_streaming_interrupted(self) -> int:
        """Mark every answer still ``streaming`` as ``interrupted``; return how many.

        For startup: no run survives a restart, so such an answer was cut off by a crash.
        """
        async with self._write() as conn:
            result = await conn.execute(
                sa.update(_messages)
                .where(_messages.c.status == "streaming")
                .values(status="interrupted", updated_at=self._clock())
            )
        return int(result.rowcount)


# --- helpers (each takes the connection of the caller's transaction) ---------------------------


async def _get_conversation(conn: AsyncConnection, conversation_id: str) -> Conversation:
    result = await conn.execute(
        sa.select(_conversations).where(_conversations.c.id == conversation_id)
    )
    row = result.mappings().first()
    if row is None:
        raise NotFoundError(f"conversation {conversation_id!r} not found")
    return _conversation(row)


async def _get_message(conn: AsyncConnection, message_id: str) -> Message:
    result = await conn.execute(sa.select(*_MESSAGE_COLUMNS).where(_messages.c.id == message_id))
    row = result.mappings().first()
    if row is None:
        raise NotFoundError(f"message {message_id!r} not found")
    return _message(row)


async def _check_in_conversation(
    conn: AsyncConnection, message_id: str, conversation_id: str, what: str
) -> None:
    owner = await conn.scalar(
        sa.select(_messages.c.conversation_id).where(_messages.c.id == message_id)
    )
    if owner != conversation_id:
        raise InvalidRequestError(f"{what} {message_id!r} is not a message of this conversation")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidRequestError(f"role must be one of {', '.join(ROLES)}, not {role!r}")


def _check_status(status: str) -> None:
    if status not in MESSAGE_STATUSES:
        raise InvalidRequestError(
            f"status must be one of {', '.join(MESSAGE_STATUSES)}, not {status!r}"
        )


def _conversation(row: sa.RowMapping) -> Conversation:
    return Conversation(
        id=row["id"],
        title=row["title"],
        model=row["model"],
        system_prompt=row["system_prompt"],
        owner=row["owner"],
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
        current_leaf_id=row["current_leaf_id"],
    )


def _message(row: sa.RowMapping) -> Message:
    usage = row["usage"]
    return Message(
        id=row["id"],
        conversation_id=row["conversation_id"],
        parent_id=row["parent_id"],
        role=row["role"],
        content=row["content"],
        status=row["status"],
        model=row["model"],
        finish_reason=row["finish_reason"],
        usage={str(k): int(v) for k, v in usage.items()} if usage is not None else None,
        error=row["error"],
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
    )


def _row_of(message: Message) -> dict[str, Any]:
    return {column.name: getattr(message, column.name) for column in _MESSAGE_COLUMNS}
