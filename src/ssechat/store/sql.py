"""``Store``: conversations and their message trees, kept in a database with SQLAlchemy Core.

Each public method is one synchronous function, run whole on a thread of the store's in one
transaction, so the event loop pays a single thread hop per operation. Every write runs on the one
writer thread, which owns the single write connection: writes are serialized by that thread, in
the order they were called. Reads run on a few reader threads, each with a pooled connection of
its own; the statements of one read share one snapshot. A method that fails (a parent from another
conversation, an unknown id) leaves the database unchanged. Opening applies the pending
migrations.

Every public method runs to its end even when its caller is cancelled (a client leaves, a run is
stopped): the caller stops waiting at once, and the thread finishes the transaction, never cut in
the middle of a driver call; a failure nobody is left to see is logged. ``close`` waits for the
operations under way, then closes the connections and stops the threads.

The queries here are portable Core (SQLite today, PostgreSQL later), built once at import where
they can be, so that SQLAlchemy compiles each a single time. This module must never hold
SQLite-only SQL (that lives in ``store.sqlite``), never touch the database from the event loop's
thread, and never call a model or speak HTTP. Errors are ``ssechat.errors`` (``NotFoundError``,
``InvalidRequestError``, ``ConflictError``) so the API can answer with them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

import sqlalchemy as sa

from ssechat.errors import ConflictError, InvalidRequestError, NotFoundError
from ssechat.store import schema
from ssechat.store.cursor import decode_cursor, encode_cursor
from ssechat.store.migrations import apply_migrations
from ssechat.store.models import (
    MESSAGE_STATUSES,
    ROLES,
    UNSET,
    Conversation,
    Exchange,
    Message,
    Unset,
)
from ssechat.store.sqlite import create_engines, resolve_url

__all__ = ["READER_THREADS", "Store"]

logger = logging.getLogger(__name__)

READER_THREADS = 3
"""How many reads may run at once (each thread keeps one connection)."""

_P = ParamSpec("_P")
_T = TypeVar("_T")

# --- statements, built once ---------------------------------------------------------------------

_conversations = schema.conversations
_messages = schema.messages

_CONVERSATION_FIELDS = tuple(field.name for field in dataclasses.fields(Conversation))
_MESSAGE_FIELDS = tuple(field.name for field in dataclasses.fields(Message))
# Selected in the order of the records' fields, so a row maps onto one by position.
_CONVERSATION_COLUMNS = [_conversations.c[name] for name in _CONVERSATION_FIELDS]
_MESSAGE_COLUMNS = [_messages.c[name] for name in _MESSAGE_FIELDS]


def _bind(table: sa.Table, name: str) -> sa.BindParameter[Any]:
    """A parameter for a SET clause, typed like its column (``b_`` + name: a bare column name
    is reserved by SQLAlchemy in INSERT and UPDATE)."""
    return sa.bindparam(f"b_{name}", type_=table.c[name].type)


_GET_CONVERSATION = sa.select(*_CONVERSATION_COLUMNS).where(
    _conversations.c.id == sa.bindparam("b_id")
)
_FIRST_PAGE = (
    sa.select(*_CONVERSATION_COLUMNS)
    .order_by(_conversations.c.updated_at.desc(), _conversations.c.id.desc())
    .limit(sa.bindparam("b_limit"))
)
_NEXT_PAGE = _FIRST_PAGE.where(
    sa.or_(
        _conversations.c.updated_at < sa.bindparam("b_updated_at"),
        sa.and_(
            _conversations.c.updated_at == sa.bindparam("b_updated_at"),
            _conversations.c.id < sa.bindparam("b_last_id"),
        ),
    )
)
_INSERT_CONVERSATION = sa.insert(_conversations).values(
    {name: _bind(_conversations, name) for name in _CONVERSATION_FIELDS}
)
_SET_LEAF = (
    sa.update(_conversations)
    .where(_conversations.c.id == sa.bindparam("b_id"))
    .values(
        current_leaf_id=_bind(_conversations, "current_leaf_id"),
        updated_at=_bind(_conversations, "updated_at"),
    )
)
_SET_LEAF_AND_MODEL = _SET_LEAF.values(model=_bind(_conversations, "model"))
_SET_TITLE_IF_EMPTY = (
    sa.update(_conversations)
    .where(
        _conversations.c.id == sa.bindparam("b_id"),
        sa.or_(_conversations.c.title.is_(None), _conversations.c.title == ""),
    )
    .values(title=_bind(_conversations, "title"), updated_at=_bind(_conversations, "updated_at"))
)
_DELETE_CONVERSATION = sa.delete(_conversations).where(_conversations.c.id == sa.bindparam("b_id"))
# Explicit rather than left to ON DELETE CASCADE, which SQLite only honours when the foreign_keys
# pragma is on.
_DELETE_MESSAGES = sa.delete(_messages).where(_messages.c.conversation_id == sa.bindparam("b_id"))

_GET_MESSAGE = sa.select(*_MESSAGE_COLUMNS).where(_messages.c.id == sa.bindparam("b_id"))
_MESSAGE_OWNER = sa.select(_messages.c.conversation_id).where(
    _messages.c.id == sa.bindparam("b_id")
)
_LIST_MESSAGES = (
    sa.select(*_MESSAGE_COLUMNS)
    .where(_messages.c.conversation_id == sa.bindparam("b_id"))
    .order_by(_messages.c.seq)
)
_INSERT_MESSAGE = sa.insert(_messages).values(
    {name: _bind(_messages, name) for name in _MESSAGE_FIELDS}
)
_SAVE_PARTIAL = (
    sa.update(_messages)
    .where(_messages.c.id == sa.bindparam("b_id"), _messages.c.status == "streaming")
    .values(content=_bind(_messages, "content"), updated_at=_bind(_messages, "updated_at"))
)
_MARK_INTERRUPTED = (
    sa.update(_messages)
    .where(_messages.c.status == "streaming")
    .values(status="interrupted", updated_at=_bind(_messages, "updated_at"))
)


@functools.cache
def _positional(
    statement: sa.Update, dialect: sa.Dialect
) -> tuple[str, tuple[str, ...], dict[str, Any]]:
    """``statement`` compiled for ``dialect`` with positional parameters: its SQL, the names
    of its parameters in order, and the values of those fixed in the statement. Only for
    statements whose parameters need no type processing (text, numbers)."""
    compiled = statement.compile(dialect=dialect)
    if compiled.positiontup is None:
        raise RuntimeError(f"{dialect.name} does not take positional parameters")
    return compiled.string, tuple(compiled.positiontup), dict(compiled.params)


def _branch_query() -> sa.Select[Any]:
    # The ids from a message up to its root, by a recursive CTE on the parent index. UNION, not
    # UNION ALL: a cycle (impossible through this store) would end the recursion, not loop.
    up = (
        sa.select(_messages.c.id, _messages.c.parent_id)
        .where(_messages.c.id == sa.bindparam("b_id"))
        .cte("up", recursive=True)
    )
    parent = _messages.alias("parent")
    up = up.union(sa.select(parent.c.id, parent.c.parent_id).where(parent.c.id == up.c.parent_id))
    return sa.select(*_MESSAGE_COLUMNS).join(up, _messages.c.id == up.c.id)


_BRANCH = _branch_query()
"""The messages of the branch ending at ``b_id``, in no particular order."""


@functools.cache
def _update_conversation(names: tuple[str, ...]) -> sa.Update:
    return (
        sa.update(_conversations)
        .where(_conversations.c.id == sa.bindparam("b_id"))
        .values({name: _bind(_conversations, name) for name in names})
    )


@functools.cache
def _update_message(names: tuple[str, ...]) -> sa.Update:
    return (
        sa.update(_messages)
        .where(_messages.c.id == sa.bindparam("b_id"))
        .values({name: _bind(_messages, name) for name in names})
    )


# --- running a method on the store's threads ---------------------------------------------------


def _new_id() -> str:
    return uuid.uuid4().hex


def _reads(
    method: Callable[Concatenate[Store, sa.Connection, _P], _T],
) -> Callable[Concatenate[Store, _P], Coroutine[Any, Any, _T]]:
    """Make the public method: ``method``'s body runs whole on a reader thread, in one
    transaction of that thread's connection (see the module)."""

    @functools.wraps(method)
    async def run(self: Store, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        return await self._read(lambda conn: method(self, conn, *args, **kwargs))

    return run


def _writes(
    method: Callable[Concatenate[Store, sa.Connection, _P], _T],
) -> Callable[Concatenate[Store, _P], Coroutine[Any, Any, _T]]:
    """Make the public method: ``method``'s body runs whole on the writer thread, in one write
    transaction, committed on success and rolled back on any error (see the module)."""

    @functools.wraps(method)
    async def run(self: Store, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        return await self._write(lambda conn: method(self, conn, *args, **kwargs))

    return run


def _job(
    loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[_T], call: Callable[[], _T]
) -> None:
    """On a store thread: run ``call`` to its end, then hand its outcome to the loop."""
    try:
        outcome: tuple[bool, Any] = (True, call())
    except BaseException as error:  # handed over to the caller, whatever it is
        outcome = (False, error)
    try:
        loop.call_soon_threadsafe(_deliver, waiter, *outcome)
    except RuntimeError:  # the loop is closed: nobody can be waiting any more
        if not outcome[0]:
            logger.warning("a store operation failed after its loop closed", exc_info=outcome[1])


def _deliver(waiter: asyncio.Future[Any], ok: bool, value: Any) -> None:
    """On the loop: give the caller the outcome, or log a failure if the caller left."""
    if waiter.cancelled():
        if not ok:
            logger.warning("a store operation failed after its caller left", exc_info=value)
    elif ok:
        waiter.set_result(value)
    else:
        waiter.set_exception(value)


class Store:
    """The conversation store. Make one with ``await Store.open(...)``; close it when done."""

    def __init__(self, reader: sa.Engine, writer: sa.Engine, *, clock: Callable[[], float]) -> None:
        self._reader = reader
        self._writer = writer
        self._clock = clock
        self._writes = ThreadPoolExecutor(1, thread_name_prefix="ssechat-store-writer")
        self._reads = ThreadPoolExecutor(READER_THREADS, thread_name_prefix="ssechat-store-reader")
        self._write_conn: sa.Connection | None = None  # only ever touched by the writer thread
        self._local = threading.local()  # .conn: a reader thread's connection
        self._read_conns: list[sa.Connection] = []
        self._read_conns_lock = threading.Lock()
        self._closed = False
        self._closing: asyncio.Future[None] | None = None

    @classmethod
    async def open(
        cls,
        url_or_path: str | os.PathLike[str] | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> Store:
        """Open (creating it if needed) the database at a URL or file path and migrate it.

        ``None`` means ``default_database_url()``. ``clock`` gives the timestamps (unix seconds);
        it is called on the store's threads. Raises ``ValueError`` for a URL that is not a
        supported database, ``RuntimeError`` for a database migrated by a newer ssechat.
        """
        reader, writer = create_engines(resolve_url(url_or_path), readers=READER_THREADS)
        store = cls(reader, writer, clock=clock)
        try:
            await store._write(lambda conn: apply_migrations(conn, clock=store._clock))
        except BaseException:
            await store.close()
            raise
        return store

    async def close(self) -> None:
        """Wait for the operations under way, then close every connection. Idempotent."""
        self._closed = True
        if self._closing is None:
            loop = asyncio.get_running_loop()
            self._closing = loop.create_future()
            # Queued behind every write already asked for; it waits for the reads itself.
            self._writes.submit(_job, loop, self._closing, self._shut_down)
            self._writes.shutdown(wait=False)
        await asyncio.shield(self._closing)

    def _shut_down(self) -> None:
        """On the writer thread, once the writes before it are done."""
        try:
            if self._write_conn is not None:
                self._write_conn.close()
                self._write_conn = None
            self._reads.shutdown(wait=True)
            with self._read_conns_lock:
                for conn in self._read_conns:
                    conn.close()
                self._read_conns.clear()
        finally:
            self._writer.dispose()
            self._reader.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the store is closed")

    async def _write(self, body: Callable[[sa.Connection], _T]) -> _T:
        """Run ``body`` on the writer thread in one write transaction, which takes the write
        lock as it begins: committed if ``body`` returns, rolled back if it raises. Runs to its
        end even if this caller is cancelled."""
        self._check_open()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[_T] = loop.create_future()
        self._writes.submit(_job, loop, waiter, functools.partial(self._in_write, body))
        return await waiter

    async def _read(self, body: Callable[[sa.Connection], _T]) -> _T:
        """Run ``body`` on a reader thread in one read transaction (one snapshot)."""
        self._check_open()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[_T] = loop.create_future()
        self._reads.submit(_job, loop, waiter, functools.partial(self._in_read, body))
        return await waiter

    def _in_write(self, body: Callable[[sa.Connection], _T]) -> _T:
        conn = self._write_conn
        if conn is None:
            conn = self._write_conn = self._writer.connect()
        with conn.begin():
            return body(conn)

    def _in_read(self, body: Callable[[sa.Connection], _T]) -> _T:
        conn: sa.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._reader.connect()
            self._local.conn = conn
            with self._read_conns_lock:
                self._read_conns.append(conn)
        with conn.begin():
            return body(conn)

    # --- conversations ------------------------------------------------------------------------

    @_writes
    def create_conversation(
        self,
        conn: sa.Connection,
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
        conn.execute(
            _INSERT_CONVERSATION,
            {f"b_{name}": getattr(conversation, name) for name in _CONVERSATION_FIELDS},
        )
        return conversation

    @_reads
    def list_conversations(
        self, conn: sa.Connection, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[Conversation], str | None]:
        """One page, most recently updated first; pass the returned cursor for the next page.

        The cursor is ``None`` after the last page. Paging is by key (updated_at, id), so a
        conversation added or bumped meanwhile never makes another one appear twice.
        """
        if limit < 1:
            raise InvalidRequestError("limit must be at least 1")
        if cursor is None:
            rows = conn.execute(_FIRST_PAGE, {"b_limit": limit + 1}).all()
        else:
            updated_at, last_id = decode_cursor(cursor)
            rows = conn.execute(
                _NEXT_PAGE,
                {"b_limit": limit + 1, "b_updated_at": updated_at, "b_last_id": last_id},
            ).all()
        page = [_conversation(row) for row in rows[:limit]]
        more = len(rows) > limit
        return page, encode_cursor(page[-1].updated_at, page[-1].id) if more else None

    @_reads
    def get_conversation(self, conn: sa.Connection, conversation_id: str) -> Conversation:
        return _get_conversation(conn, conversation_id)

    @_writes
    def update_conversation(
        self,
        conn: sa.Connection,
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
        before = _get_conversation(conn, conversation_id)
        if isinstance(current_leaf_id, str):
            _check_in_conversation(conn, current_leaf_id, conversation_id, "current_leaf_id")
        changes["updated_at"] = self._clock()
        params = {f"b_{name}": value for name, value in changes.items()}
        params["b_id"] = conversation_id
        conn.execute(_update_conversation(tuple(changes)), params)
        return dataclasses.replace(before, **changes)

    @_writes
    def delete_conversation(self, conn: sa.Connection, conversation_id: str) -> None:
        """Delete the conversation and all its messages."""
        _get_conversation(conn, conversation_id)
        conn.execute(_DELETE_MESSAGES, {"b_id": conversation_id})
        conn.execute(_DELETE_CONVERSATION, {"b_id": conversation_id})

    @_writes
    def set_title_if_empty(self, conn: sa.Connection, conversation_id: str, title: str) -> bool:
        """Give the conversation ``title`` unless it has one; say whether it was set.

        ``False`` too if the conversation is gone: a run may finish after its conversation was
        deleted, and naming it then is moot rather than an error.
        """
        result = conn.execute(
            _SET_TITLE_IF_EMPTY,
            {"b_id": conversation_id, "b_title": title, "b_updated_at": self._clock()},
        )
        return bool(result.rowcount)

    # --- messages -----------------------------------------------------------------------------

    @_reads
    def list_messages(self, conn: sa.Connection, conversation_id: str) -> list[Message]:
        """Every message of the conversation (the whole tree), in creation order."""
        _get_conversation(conn, conversation_id)
        rows = conn.execute(_LIST_MESSAGES, {"b_id": conversation_id}).all()
        return [_message(row) for row in rows]

    @_reads
    def get_message(self, conn: sa.Connection, message_id: str) -> Message:
        return _get_message(conn, message_id)

    @_reads
    def path_to(self, conn: sa.Connection, message_id: str) -> list[Message]:
        """The branch from the root of the tree down to ``message_id``, both included."""
        path = _branch(conn, message_id)
        if not path:
            raise NotFoundError(f"message {message_id!r} not found")
        return path

    @_writes
    def add_message(
        self,
        conn: sa.Connection,
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
        _get_conversation(conn, conversation_id)
        if parent_id is not None:
            _check_in_conversation(conn, parent_id, conversation_id, "parent_id")
        (message,) = self._insert(
            conn, conversation_id, parent_id, [(role, content, status, model)]
        )
        return message

    @_writes
    def add_exchange(
        self,
        conn: sa.Connection,
        conversation_id: str,
        *,
        parent_id: str | None,
        user_content: str,
        model: str,
    ) -> tuple[Message, Message]:
        """Add a question and, under it, its empty ``streaming`` answer, in one transaction.

        The answer becomes the current leaf.
        """
        _get_conversation(conn, conversation_id)
        if parent_id is not None:
            _check_in_conversation(conn, parent_id, conversation_id, "parent_id")
        user, answer = self._insert(
            conn,
            conversation_id,
            parent_id,
            [("user", user_content, "complete", None), ("assistant", "", "streaming", model)],
        )
        return user, answer

    @_writes
    def add_assistant(
        self, conn: sa.Connection, conversation_id: str, *, parent_id: str, model: str
    ) -> Message:
        """Add an empty ``streaming`` answer under ``parent_id`` (regenerate): one transaction."""
        _get_conversation(conn, conversation_id)
        _check_in_conversation(conn, parent_id, conversation_id, "parent_id")
        (answer,) = self._insert(
            conn, conversation_id, parent_id, [("assistant", "", "streaming", model)]
        )
        return answer

    @_writes
    def start_exchange(
        self,
        conn: sa.Connection,
        conversation_id: str,
        *,
        parent_id: str | Unset | None = UNSET,
        user_content: str,
        model: str,
    ) -> Exchange:
        """Start a turn in one transaction: add a question under ``parent_id`` and its empty
        ``streaming`` answer by ``model``, make the answer the current leaf, and give the
        conversation ``model`` if it had none.

        ``parent_id`` defaults to the conversation's current leaf; ``None`` starts a new root.
        ``NotFoundError`` if the conversation or the parent is gone, ``InvalidRequestError`` if
        the parent is another conversation's message, ``ConflictError`` if the parent is an
        answer still being generated. The ``Exchange`` holds the conversation as it was before,
        and the branch from the root down to the question.
        """
        conversation = _get_conversation(conn, conversation_id)
        if isinstance(parent_id, Unset):
            parent_id = conversation.current_leaf_id
        path: list[Message] = []
        if parent_id is not None:
            path = _branch(conn, parent_id)
            if not path:
                raise NotFoundError(f"message {parent_id!r} not found")
            if path[-1].conversation_id != conversation_id:
                raise _not_in_conversation("parent_id", parent_id)
            _check_not_streaming(path[-1])
        user, answer = self._insert(
            conn,
            conversation_id,
            parent_id,
            [("user", user_content, "complete", None), ("assistant", "", "streaming", model)],
            model=model if conversation.model is None else None,
        )
        path.append(user)
        return Exchange(conversation=conversation, user=user, answer=answer, branch=path)

    @_writes
    def start_answer(self, conn: sa.Connection, message_id: str, *, model: str) -> Exchange:
        """Answer again, in one transaction: a new empty ``streaming`` answer by ``model`` to
        the question of ``message_id`` (an answer's parent, or the question itself), made the
        current leaf.

        ``NotFoundError`` if the message is gone; ``ConflictError`` for an answer without a
        question, a system message, or a question still being written. The ``Exchange`` holds the
        conversation as it was before, the question as ``user``, and the branch from the root
        down to the question.
        """
        path = _branch(conn, message_id)
        if not path:
            raise NotFoundError(f"message {message_id!r} not found")
        message = path[-1]
        if message.role == "assistant":
            if message.parent_id is None:
                raise ConflictError("this answer has no question to answer again")
            path.pop()
            if not path:
                raise NotFoundError(f"message {message.parent_id!r} not found")
        elif message.role != "user":
            raise ConflictError("only a question or an answer can be regenerated")
        question = path[-1]
        _check_not_streaming(question)
        conversation = _get_conversation(conn, question.conversation_id)
        (answer,) = self._insert(
            conn, conversation.id, question.id, [("assistant", "", "streaming", model)]
        )
        return Exchange(conversation=conversation, user=question, answer=answer, branch=path)

    def _insert(
        self,
        conn: sa.Connection,
        conversation_id: str,
        parent_id: str | None,
        chain: list[tuple[str, str, str, str | None]],
        *,
        model: str | None = None,
    ) -> list[Message]:
        """Insert ``chain`` (role, content, status, model) as a line of descendants of
        ``parent_id`` (checked by the caller), the last one becoming the current leaf; set the
        conversation's ``model`` too if one is given."""
        now = self._clock()
        added: list[Message] = []
        for role, content, status, message_model in chain:
            added.append(
                Message(
                    id=_new_id(),
                    conversation_id=conversation_id,
                    parent_id=added[-1].id if added else parent_id,
                    role=role,
                    content=content,
                    status=status,
                    model=message_model,
                    finish_reason=None,
                    usage=None,
                    created_at=now,
                    updated_at=now,
                    error=None,
                )
            )
        conn.execute(
            _INSERT_MESSAGE,
            [
                {f"b_{name}": getattr(message, name) for name in _MESSAGE_FIELDS}
                for message in added
            ],
        )
        leaf = {"b_id": conversation_id, "b_current_leaf_id": added[-1].id, "b_updated_at": now}
        if model is None:
            conn.execute(_SET_LEAF, leaf)
        else:
            conn.execute(_SET_LEAF_AND_MODEL, {**leaf, "b_model": model})
        return added

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
        changes: dict[str, Any] = {
            name: value
            for name, value in (
                ("content", content),
                ("status", status),
                ("finish_reason", finish_reason),
                ("usage", dict(usage) if usage is not None else None),  # the caller's may change
                ("error", error),
            )
            if value is not None
        }
        await self._write(lambda conn: self._update_message(conn, id, changes))

    def _update_message(self, conn: sa.Connection, id: str, changes: dict[str, Any]) -> None:
        if "status" in changes:
            _check_status(changes["status"])
        changes["updated_at"] = self._clock()
        params = {f"b_{name}": value for name, value in changes.items()}
        params["b_id"] = id
        if not conn.execute(_update_message(tuple(changes)), params).rowcount:
            raise NotFoundError(f"message {id!r} not found")

    async def save_partial_answers(self, contents: Mapping[str, str]) -> None:
        """Set the content of several ``streaming`` answers (id → text) in one transaction.

        The runs' periodic save. Ids that are gone, or answers no longer streaming (their run
        saved its final state first), are skipped.
        """
        items = list(contents.items())  # taken now: the caller's mapping may change meanwhile
        if not items:
            self._check_open()
            return
        await self._write(lambda conn: self._save_partial_answers(conn, items))

    def _save_partial_answers(self, conn: sa.Connection, items: Sequence[tuple[str, str]]) -> None:
        # Every live run, every tick: the Core statement compiled once for this dialect and
        # run as one executemany of plain values, with none of SQLAlchemy's work per row.
        sql, order, fixed = _positional(_SAVE_PARTIAL, conn.dialect)
        now = self._clock()
        rows = []
        for id, text in items:
            values = {"b_id": id, "b_content": text, "b_updated_at": now}
            rows.append(tuple(values[name] if name in values else fixed[name] for name in order))
        conn.exec_driver_sql(sql, rows)

    @_writes
    def mark_streaming_interrupted(self, conn: sa.Connection) -> int:
        """Mark every answer still ``streaming`` as ``interrupted``; return how many.

        For startup: no run survives a restart, so such an answer was cut off by a crash.
        """
        result = conn.execute(_MARK_INTERRUPTED, {"b_updated_at": self._clock()})
        return int(result.rowcount)


# --- helpers (each takes the connection of the caller's transaction) ---------------------------


def _get_conversation(conn: sa.Connection, conversation_id: str) -> Conversation:
    row = conn.execute(_GET_CONVERSATION, {"b_id": conversation_id}).first()
    if row is None:
        raise NotFoundError(f"conversation {conversation_id!r} not found")
    return _conversation(row)


def _get_message(conn: sa.Connection, message_id: str) -> Message:
    row = conn.execute(_GET_MESSAGE, {"b_id": message_id}).first()
    if row is None:
        raise NotFoundError(f"message {message_id!r} not found")
    return _message(row)


def _branch(conn: sa.Connection, message_id: str) -> list[Message]:
    """The path from the root down to ``message_id``, both included; empty if it is unknown."""
    by_id = {
        message.id: message
        for message in map(_message, conn.execute(_BRANCH, {"b_id": message_id}).all())
    }
    start = by_id.get(message_id)
    if start is None:
        return []
    path = [start]
    seen = {start.id}
    while (parent_id := path[-1].parent_id) is not None and parent_id not in seen:
        parent = by_id.get(parent_id)
        if parent is None or parent.conversation_id != start.conversation_id:
            break
        path.append(parent)
        seen.add(parent_id)
    path.reverse()
    return path


def _check_in_conversation(
    conn: sa.Connection, message_id: str, conversation_id: str, what: str
) -> None:
    owner = conn.execute(_MESSAGE_OWNER, {"b_id": message_id}).scalar()
    if owner != conversation_id:
        raise _not_in_conversation(what, message_id)


def _not_in_conversation(what: str, message_id: str) -> InvalidRequestError:
    return InvalidRequestError(f"{what} {message_id!r} is not a message of this conversation")


def _check_not_streaming(message: Message) -> None:
    if message.status == "streaming":
        raise ConflictError("that answer is still being generated; stop it first")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidRequestError(f"role must be one of {', '.join(ROLES)}, not {role!r}")


def _check_status(status: str) -> None:
    if status not in MESSAGE_STATUSES:
        raise InvalidRequestError(
            f"status must be one of {', '.join(MESSAGE_STATUSES)}, not {status!r}"
        )


def _conversation(row: Sequence[Any]) -> Conversation:
    # Columns in the order of the fields: see _CONVERSATION_COLUMNS.
    return Conversation(
        row[0], row[1], row[2], row[3], row[4], float(row[5]), float(row[6]), row[7]
    )


def _message(row: Sequence[Any]) -> Message:
    # Columns in the order of the fields: see _MESSAGE_COLUMNS.
    usage = row[8]
    return Message(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        {str(k): int(v) for k, v in usage.items()} if usage is not None else None,
        float(row[9]),
        float(row[10]),
        row[11],
    )
