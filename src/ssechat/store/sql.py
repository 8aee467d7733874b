"""``SQLStore``: the ``Store`` on a database, with SQLAlchemy Core on the store's threads.

Each public method is one synchronous body, run whole by ``StoreThreads`` in one transaction:
writes on the one writer thread, in the order they were called; reads on a reader thread, their
statements sharing one snapshot. A method that fails (a parent from another conversation, an
unknown id) leaves the database unchanged, and every method runs to its end even when its caller
is cancelled (see ``store.threads``). Opening applies the pending migrations.

Every operation a user's request reaches takes ``owner`` and passes it to its queries, which find
only that owner's conversations and messages: another user's id fails exactly as an unknown one,
with the same message. The accounts (``SQLStore.accounts``) are ``store.accounts``'s, on the same
threads.

The queries are the portable Core of ``store.statements``, the same on SQLite and PostgreSQL
(``store.dialects`` picks the engines and hooks by URL), and rows become records in
``store.rows``. Several processes may share a PostgreSQL database: a write that changes a
conversation or its messages locks the conversation's row first (``LOCK_CONVERSATION``), and
the accounts' rules take the dialect's invariants lock. The admins' MCP server settings are
``store.tool_settings``'s methods, inherited. This module must never hold
dialect-only SQL (that lives in ``store.sqlite`` and ``store.postgres``), never touch the
database from the event loop's thread, never call a model or speak HTTP, and never grow a
method only tests call.
Errors are ``ssechat.errors`` (``NotFoundError``, ``InvalidRequestError``, ``ConflictError``) so
the API can answer with them.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import sqlalchemy as sa

from ssechat.errors import ConflictError, InvalidRequestError, NotFoundError
from ssechat.store.accounts import SQLAccounts
from ssechat.store.base import Store
from ssechat.store.cursor import decode_cursor, encode_cursor
from ssechat.store.dialects import SavePartial, pick
from ssechat.store.indexer import start_search_indexer
from ssechat.store.migrations import apply_migrations
from ssechat.store.models import MESSAGE_STATUSES, UNSET, Conversation, Exchange, Message, Unset
from ssechat.store.rows import (
    CONVERSATION_FIELDS,
    MESSAGE_INSERT_FIELDS,
    conversation_from_row,
    message_from_row,
)
from ssechat.store.search import SQLSearch
from ssechat.store.statements import (
    ADOPT_CONVERSATIONS,
    BRANCH,
    DELETE_CONVERSATION,
    DELETE_MESSAGES,
    FIRST_PAGE,
    GET_CONVERSATION,
    GET_MESSAGE,
    INSERT_CONVERSATION,
    INSERT_MESSAGE,
    LIST_MESSAGES,
    LOCK_CONVERSATION,
    MARK_INTERRUPTED,
    MARK_THESE_INTERRUPTED,
    MESSAGE_OWNER,
    NEXT_PAGE,
    SAVE_PARTIAL,
    SAVE_PARTIAL_REASONING,
    SET_LEAF,
    SET_LEAF_AND_MODEL,
    SET_TITLE_IF_EMPTY,
    STREAMING_BEFORE,
    conversation_update,
    message_update,
    positional,
    save_interrupted,
)
from ssechat.store.threads import READER_THREADS, StoreThreads, reads, writes
from ssechat.store.tool_settings import SQLToolSettings
from ssechat.store.transfer import SQLTransfer

__all__ = ["SQLStore", "open_store"]


async def open_store(
    url_or_path: str | os.PathLike[str] | None = None,
    *,
    clock: Callable[[], float] = time.time,
) -> Store:
    """The store for a database URL or file path, opened and migrated: see ``SQLStore.open``."""
    return await SQLStore.open(url_or_path, clock=clock)


def _new_id() -> str:
    return uuid.uuid4().hex


class SQLStore(SQLToolSettings, SQLSearch, SQLTransfer):
    """The conversation store on a SQL database: the operations of ``Store`` (documented
    there). Make one with ``await SQLStore.open(...)`` (or ``open_store``); close it when done."""

    def __init__(
        self,
        threads: StoreThreads,
        *,
        clock: Callable[[], float],
        save_partial: SavePartial | None = None,
    ) -> None:
        self.threads = threads
        """What the operations run on; a test may run a body of its own there too."""
        self._clock = clock
        self._save_partial = save_partial  # the dialect's own batched save, if it has one
        self._accounts = SQLAccounts(threads, clock=clock)

    @property
    def accounts(self) -> SQLAccounts:
        return self._accounts

    @classmethod
    async def open(
        cls,
        url_or_path: str | os.PathLike[str] | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> Self:
        """Open (creating it if needed) the database at a URL or file path and migrate it.

        ``None`` means ``default_database_url()``. ``clock`` gives the timestamps (unix seconds);
        it is called on the store's threads. Raises ``ValueError`` for a URL that is not a
        supported database, ``RuntimeError`` for a database migrated by a newer ssechat,
        ``ServiceUnavailableError`` for a database server that cannot be reached.
        """
        dialect = pick(url_or_path)
        reader, writer = dialect.create_engines(
            dialect.url, readers=READER_THREADS, writers=dialect.writers
        )
        threads = StoreThreads(
            reader,
            writer,
            readers=READER_THREADS,
            writers=dialect.writers,
            lock_invariants=dialect.lock_invariants,
            unreachable=dialect.unreachable,
        )
        store = cls(threads, clock=clock, save_partial=dialect.save_partial)
        try:
            await store.threads.write(store._migrate)
            await store._sweep_staged_imports()  # what a killed import left (store.transfer)
            store._search_indexer = await start_search_indexer(threads, dialect.index_search)
        except BaseException:
            await store.close()
            raise
        return store

    def _migrate(self, conn: sa.Connection) -> list[str]:
        # Under the invariants' lock: processes that start together on one new PostgreSQL
        # database migrate it one after the other (the second finds nothing left to do).
        self.threads.lock_invariants(conn)
        return apply_migrations(conn, clock=self._clock)

    async def close(self) -> None:
        """Wait for the operations under way, then close every connection. Idempotent."""
        indexer, self._search_indexer = self._search_indexer, None
        if indexer is not None:
            await indexer.close()
        await self.threads.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- conversations ------------------------------------------------------------------------

    @writes
    def create_conversation(
        self,
        conn: sa.Connection,
        *,
        title: str | None = None,
        model: str | None = None,
        system_prompt: str | None = None,
        owner: str,
        tools: Sequence[str] | None = None,
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
            tools=tuple(tools or ()),
        )
        params = {f"b_{name}": getattr(conversation, name) for name in CONVERSATION_FIELDS}
        params["b_tools"] = _tools_value(conversation.tools)
        conn.execute(INSERT_CONVERSATION, params)
        return conversation

    @reads
    def list_conversations(
        self, conn: sa.Connection, *, owner: str, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[Conversation], str | None]:
        # Paging by key (updated_at, id): a conversation added or bumped meanwhile never makes
        # another one appear twice.
        if limit < 1:
            raise InvalidRequestError("limit must be at least 1")
        if cursor is None:
            rows = conn.execute(FIRST_PAGE, {"b_owner": owner, "b_limit": limit + 1}).all()
        else:
            updated_at, last_id = decode_cursor(cursor)
            rows = conn.execute(
                NEXT_PAGE,
                {
                    "b_owner": owner,
                    "b_limit": limit + 1,
                    "b_updated_at": updated_at,
                    "b_last_id": last_id,
                },
            ).all()
        page = [conversation_from_row(row) for row in rows[:limit]]
        more = len(rows) > limit
        return page, encode_cursor(page[-1].updated_at, page[-1].id) if more else None

    @reads
    def get_conversation(
        self, conn: sa.Connection, conversation_id: str, *, owner: str
    ) -> Conversation:
        return _get_conversation(conn, conversation_id, owner)

    @writes
    def update_conversation(
        self,
        conn: sa.Connection,
        conversation_id: str,
        *,
        owner: str,
        title: str | Unset | None = UNSET,
        model: str | Unset | None = UNSET,
        system_prompt: str | Unset | None = UNSET,
        current_leaf_id: str | Unset | None = UNSET,
        tools: Sequence[str] | Unset | None = UNSET,
    ) -> Conversation:
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
        if not isinstance(tools, Unset):
            changes["tools"] = tuple(tools or ())
        before = _get_conversation(conn, conversation_id, owner, lock=True)
        if isinstance(current_leaf_id, str):
            _check_in_conversation(conn, current_leaf_id, conversation_id, "current_leaf_id")
        changes["updated_at"] = self._clock()
        params = {f"b_{name}": value for name, value in changes.items()}
        if "tools" in changes:
            params["b_tools"] = _tools_value(changes["tools"])
        params["b_id"] = conversation_id
        conn.execute(conversation_update(tuple(changes)), params)
        return dataclasses.replace(before, **changes)

    @writes
    def delete_conversation(self, conn: sa.Connection, conversation_id: str, *, owner: str) -> None:
        _get_conversation(conn, conversation_id, owner, lock=True)
        conn.execute(DELETE_MESSAGES, {"b_id": conversation_id})
        conn.execute(DELETE_CONVERSATION, {"b_id": conversation_id})

    @writes
    def set_title_if_empty(self, conn: sa.Connection, conversation_id: str, title: str) -> bool:
        # A run may finish after its conversation was deleted: nothing to name, not an error.
        result = conn.execute(
            SET_TITLE_IF_EMPTY,
            {"b_id": conversation_id, "b_title": title, "b_updated_at": self._clock()},
        )
        return bool(result.rowcount)

    # --- messages -----------------------------------------------------------------------------

    @reads
    def list_messages(
        self, conn: sa.Connection, conversation_id: str, *, owner: str
    ) -> list[Message]:
        _get_conversation(conn, conversation_id, owner)
        rows = conn.execute(LIST_MESSAGES, {"b_id": conversation_id}).all()
        return [message_from_row(row) for row in rows]

    @reads
    def get_message(self, conn: sa.Connection, message_id: str, *, owner: str) -> Message:
        return _get_message(conn, message_id, owner)

    @writes
    def start_exchange(
        self,
        conn: sa.Connection,
        conversation_id: str,
        *,
        owner: str,
        parent_id: str | Unset | None = UNSET,
        user_content: str,
        model: str,
    ) -> Exchange:
        # The one write transaction of a stream's start: the checks, the two inserts, the leaf
        # and the branch (one recursive query) together. A parent in another user's conversation
        # is not found by the branch query: the same NotFoundError as an unknown one.
        conversation = _get_conversation(conn, conversation_id, owner, lock=True)
        if isinstance(parent_id, Unset):
            parent_id = conversation.current_leaf_id
        path: list[Message] = []
        if parent_id is not None:
            path = _branch(conn, parent_id, owner)
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

    @writes
    def start_answer(
        self, conn: sa.Connection, message_id: str, *, owner: str, model: str
    ) -> Exchange:
        path = _branch(conn, message_id, owner)
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
        conversation = _get_conversation(conn, question.conversation_id, owner, lock=True)
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
            INSERT_MESSAGE,
            [
                {f"b_{name}": getattr(message, name) for name in MESSAGE_INSERT_FIELDS}
                for message in added
            ],
        )
        leaf = {"b_id": conversation_id, "b_current_leaf_id": added[-1].id, "b_updated_at": now}
        if model is None:
            conn.execute(SET_LEAF, leaf)
        else:
            conn.execute(SET_LEAF_AND_MODEL, {**leaf, "b_model": model})
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
        reasoning: str | None = None,
        reasoning_seconds: float | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
    ) -> None:
        # Runs call this to save an answer at its end, never once per token.
        changes: dict[str, Any] = {
            name: value
            for name, value in (
                ("content", content),
                ("status", status),
                ("finish_reason", finish_reason),
                ("usage", dict(usage) if usage is not None else None),  # the caller's may change
                ("error", error),
                ("reasoning", reasoning),
                ("reasoning_seconds", reasoning_seconds),
                # Copied whole (calls nest their results): the caller's may change meanwhile.
                ("tool_calls", copy.deepcopy(tool_calls) if tool_calls is not None else None),
            )
            if value is not None
        }
        await self.threads.write(lambda conn: self._update_message(conn, id, changes))

    def _update_message(self, conn: sa.Connection, id: str, changes: dict[str, Any]) -> None:
        if "status" in changes:
            _check_status(changes["status"])
        changes["updated_at"] = self._clock()
        params = {f"b_{name}": value for name, value in changes.items()}
        params["b_id"] = id
        if not conn.execute(message_update(tuple(changes)), params).rowcount:
            raise NotFoundError(f"message {id!r} not found")

    async def save_partial_answers(
        self, contents: Mapping[str, str], reasoning: Mapping[str, str] | None = None
    ) -> None:
        # An answer no longer streaming was saved whole by its run first: the WHERE skips it.
        items = list(contents.items())  # taken now: the caller's mapping may change meanwhile
        if not items:
            self.threads.check_open()
            return
        thoughts = dict(reasoning) if reasoning else None
        await self.threads.write(lambda conn: self._save_partial_answers(conn, items, thoughts))

    def _save_partial_answers(
        self,
        conn: sa.Connection,
        items: Sequence[tuple[str, str]],
        reasoning: Mapping[str, str] | None,
    ) -> None:
        # Every live run, every tick: the dialect's own form if it has one (PostgreSQL: one
        # statement over arrays), else the Core statement compiled once for this dialect and
        # run as one executemany of plain values, with none of SQLAlchemy's work per row. With
        # reasoning in the batch, one column more (NULL for the answers that have none).
        now = self._clock()
        if self._save_partial is not None:
            self._save_partial(conn, items, reasoning, now)
            return
        statement = SAVE_PARTIAL if reasoning is None else SAVE_PARTIAL_REASONING
        sql, order, fixed = positional(statement, conn.dialect)
        rows = []
        for id, text in items:
            values: dict[str, Any] = {"b_id": id, "b_content": text, "b_updated_at": now}
            if reasoning is not None:
                values["b_reasoning"] = reasoning.get(id)
            rows.append(tuple(values[name] if name in values else fixed[name] for name in order))
        conn.exec_driver_sql(sql, rows)

    @writes
    def adopt_conversations(self, conn: sa.Connection, owner: str) -> int:
        return int(conn.execute(ADOPT_CONVERSATIONS, {"b_owner": owner}).rowcount)

    @writes
    def mark_streaming_interrupted(self, conn: sa.Connection) -> int:
        result = conn.execute(MARK_INTERRUPTED, {"b_updated_at": self._clock()})
        return int(result.rowcount)

    @reads
    def streaming_answers(self, conn: sa.Connection, *, updated_before: float) -> list[str]:
        return list(conn.execute(STREAMING_BEFORE, {"b_before": updated_before}).scalars())

    async def mark_interrupted(self, ids: Sequence[str]) -> int:
        chosen = list(ids)  # taken now: the caller's sequence may change meanwhile
        if not chosen:
            self.threads.check_open()
            return 0
        return await self.threads.write(lambda conn: self._mark_interrupted(conn, chosen))

    def _mark_interrupted(self, conn: sa.Connection, ids: list[str]) -> int:
        params = {"b_ids": ids, "b_updated_at": self._clock()}
        return int(conn.execute(MARK_THESE_INTERRUPTED, params).rowcount)

    @writes
    def save_interrupted(
        self,
        conn: sa.Connection,
        message_id: str,
        *,
        content: str,
        reasoning: str | None = None,
        error: str | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
    ) -> bool:
        given = (("content", content), ("reasoning", reasoning), ("error", error))
        changes: dict[str, Any] = {name: value for name, value in given if value is not None}
        if tool_calls is not None:
            changes["tool_calls"] = [dict(call) for call in tool_calls]
        params: dict[str, Any] = {f"b_{name}": value for name, value in changes.items()}
        params.update(b_id=message_id, b_updated_at=self._clock())
        return bool(conn.execute(save_interrupted(tuple(changes)), params).rowcount)


# --- helpers (each takes the connection of the caller's transaction) ---------------------------


def _tools_value(tools: tuple[str, ...]) -> list[str] | None:
    # What the tools column holds: NULL for none, as for every conversation made before tools.
    return list(tools) if tools else None


def _get_conversation(
    conn: sa.Connection, conversation_id: str, owner: str, *, lock: bool = False
) -> Conversation:
    # lock: in a write that changes the conversation or its messages (see LOCK_CONVERSATION).
    statement = LOCK_CONVERSATION if lock else GET_CONVERSATION
    row = conn.execute(statement, {"b_id": conversation_id, "b_owner": owner}).first()
    if row is None:
        raise NotFoundError(f"conversation {conversation_id!r} not found")
    return conversation_from_row(row)


def _get_message(conn: sa.Connection, message_id: str, owner: str) -> Message:
    row = conn.execute(GET_MESSAGE, {"b_id": message_id, "b_owner": owner}).first()
    if row is None:
        raise NotFoundError(f"message {message_id!r} not found")
    return message_from_row(row)


def _branch(conn: sa.Connection, message_id: str, owner: str) -> list[Message]:
    """The path from the root down to ``message_id``, both included; empty if it is unknown or
    not in a conversation of ``owner``."""
    rows = conn.execute(BRANCH, {"b_id": message_id, "b_owner": owner}).all()
    by_id = {message.id: message for message in map(message_from_row, rows)}
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
    owner = conn.execute(MESSAGE_OWNER, {"b_id": message_id}).scalar()
    if owner != conversation_id:
        raise _not_in_conversation(what, message_id)


def _not_in_conversation(what: str, message_id: str) -> InvalidRequestError:
    return InvalidRequestError(f"{what} {message_id!r} is not a message of this conversation")


def _check_not_streaming(message: Message) -> None:
    if message.status == "streaming":
        raise ConflictError("that answer is still being generated; stop it first")


def _check_status(status: str) -> None:
    if status not in MESSAGE_STATUSES:
        raise InvalidRequestError(
            f"status must be one of {', '.join(MESSAGE_STATUSES)}, not {status!r}"
        )
