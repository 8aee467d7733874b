"""``Store``: what the rest of ssechat may ask of the conversation store, as a protocol.

The API depends on this protocol, never on an implementation: ``open_store`` gives one
(``SQLStore``, SQLAlchemy Core on the store's threads, for SQLite and PostgreSQL),
and a test may hand in another. Every operation is one transaction: it changes everything it
says or nothing (an import is several short ones, seen by no one until its last). Errors are
``ssechat.errors`` (``NotFoundError``, ``InvalidRequestError``, ``ConflictError``) so the API
can answer with them; a closed store raises ``RuntimeError``, and a database server that
cannot be reached ``ServiceUnavailableError``.

The runs see less than this: their ``AnswerStore`` (``save_partial_answers``, ``update_message``)
is a part of it. This module must never import an implementation, touch a database or hold an
operation that only tests need: a test builds what it needs through these operations.

Every operation a user's request reaches takes the acting user as ``owner`` and finds only that
user's conversations and messages: another user's id is ``NotFoundError``, with the same message
as an unknown one. The checks are in the store's queries, so no route can forget them. The runs'
own operations (saving an answer they created) take no owner.

The admins' MCP server settings (``list_tool_servers``…) are server-wide: they take no owner,
and the API lets only admins reach them.

``Accounts`` (``Store.accounts``) keeps users, sessions and API keys. It stores tokens and keys
only as hashes, made by the caller; password hashes too are made and checked by the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol, Self

from ssechat.store.models import (
    UNSET,
    ApiKey,
    Conversation,
    Exchange,
    Message,
    SessionRecord,
    ToolServerRow,
    Unset,
    User,
)
from ssechat.store.search_query import SearchHit
from ssechat.transfer.model import ImportedConversation

__all__ = ["Accounts", "Store"]


class Store(Protocol):
    """Conversations and the tree of their messages. Close it when done (or use ``async with``)."""

    # --- conversations ------------------------------------------------------------------------

    async def create_conversation(
        self,
        *,
        title: str | None = None,
        model: str | None = None,
        system_prompt: str | None = None,
        owner: str,
        tools: Sequence[str] | None = None,
    ) -> Conversation:
        """A new conversation of ``owner``, without messages, whose model may call ``tools``
        (their keys, ``"<server>/<tool>"``; none by default)."""
        ...

    async def list_conversations(
        self, *, owner: str, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[Conversation], str | None]:
        """One page of ``owner``'s conversations, most recently updated first, and the cursor of
        the next page (``None`` after the last one). ``InvalidRequestError`` for a limit below 1
        or a cursor this store did not make."""
        ...

    async def get_conversation(self, conversation_id: str, *, owner: str) -> Conversation:
        """The conversation; ``NotFoundError`` if it is gone or not ``owner``'s."""
        ...

    async def update_conversation(
        self,
        conversation_id: str,
        *,
        owner: str,
        title: str | Unset | None = UNSET,
        model: str | Unset | None = UNSET,
        system_prompt: str | Unset | None = UNSET,
        current_leaf_id: str | Unset | None = UNSET,
        tools: Sequence[str] | Unset | None = UNSET,
    ) -> Conversation:
        """Change the fields given (``None`` clears one, ``UNSET`` leaves it), bump
        ``updated_at``, and return the conversation as it now is. ``current_leaf_id`` must name
        a message of this conversation (``InvalidRequestError``); ``tools`` replaces the list
        whole (``None`` or empty: no tools)."""
        ...

    async def delete_conversation(self, conversation_id: str, *, owner: str) -> None:
        """Delete the conversation and all its messages; ``NotFoundError`` if it is gone or not
        ``owner``'s."""
        ...

    async def set_title_if_empty(self, conversation_id: str, title: str) -> bool:
        """Give the conversation ``title`` unless it has one; say whether it was set (``False``
        too if the conversation is gone: naming it then is moot, not an error)."""
        ...

    # --- messages -----------------------------------------------------------------------------

    async def list_messages(self, conversation_id: str, *, owner: str) -> list[Message]:
        """Every message of the conversation (the whole tree), in creation order;
        ``NotFoundError`` if it is gone or not ``owner``'s."""
        ...

    async def get_message(self, message_id: str, *, owner: str) -> Message:
        """The message; ``NotFoundError`` if it is gone or in a conversation not ``owner``'s."""
        ...

    async def start_exchange(
        self,
        conversation_id: str,
        *,
        owner: str,
        parent_id: str | Unset | None = UNSET,
        user_content: str,
        model: str,
    ) -> Exchange:
        """Start a turn: a question under ``parent_id`` (``UNSET``: the current leaf; ``None``:
        a new root) and its empty ``streaming`` answer by ``model``, made the current leaf; the
        conversation gets ``model`` if it had none.

        ``NotFoundError`` if the conversation or the parent is gone (or not ``owner``'s),
        ``InvalidRequestError`` if the parent is another conversation's message,
        ``ConflictError`` if the parent is an answer still being generated.
        """
        ...

    async def start_answer(self, message_id: str, *, owner: str, model: str) -> Exchange:
        """Answer again: a new empty ``streaming`` answer by ``model`` to the question of
        ``message_id`` (an answer's parent, or the question itself), made the current leaf.

        ``NotFoundError`` if the message is gone or not ``owner``'s; ``ConflictError`` for an
        answer without a question, a system message, or a question still being written.
        """
        ...

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
        """Change the fields given (``None`` leaves one as it is) and bump ``updated_at``.
        ``NotFoundError`` for an unknown id, ``InvalidRequestError`` for an unknown status."""
        ...

    async def save_partial_answers(
        self, contents: Mapping[str, str], reasoning: Mapping[str, str] | None = None
    ) -> None:
        """Set the content of several ``streaming`` answers (id → text) at once, and, given
        ``reasoning``, their reasoning (an answer not in it gets none); ids that are gone, and
        answers no longer streaming, are skipped. The runs' periodic save."""
        ...

    async def adopt_conversations(self, owner: str) -> int:
        """Give ``owner`` every conversation without one (made before accounts existed) or made
        with accounts off (``LOCAL_OWNER``); return how many."""
        ...

    async def mark_streaming_interrupted(self) -> int:
        """Mark every answer still ``streaming`` as ``interrupted``; return how many. For
        startup: no run survives a restart."""
        ...

    async def streaming_answers(self, *, updated_before: float) -> list[str]:
        """The ids of the answers still ``streaming`` whose last update was before
        ``updated_before`` (unix seconds), oldest first: runs whose process may be dead."""
        ...

    async def mark_interrupted(self, ids: Sequence[str]) -> int:
        """Mark those of ``ids`` still ``streaming`` as ``interrupted`` (bumping
        ``updated_at``); return how many. Unknown ids, and answers no longer streaming, are
        skipped."""
        ...

    async def save_interrupted(
        self,
        message_id: str,
        *,
        content: str,
        reasoning: str | None = None,
        error: str | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
    ) -> bool:
        """If the answer is still ``streaming``: set its content (and its reasoning, error and
        tool calls when given) and make it ``interrupted``; say whether it did. How another
        process ends the run of a dead one, with every token and call its log held."""
        ...

    # --- search -------------------------------------------------------------------------------

    async def search(
        self, owner: str, query: str, *, limit: int = 20, cursor: str | None = None
    ) -> tuple[list[SearchHit], str | None]:
        """``owner``'s conversations whose title or message text matches ``query`` (the language
        of ``store.search_query``: words, "phrases", ``prefix*``; anything else is text, never
        an error): a hit per matching message and per matching title, with a snippet. Also the
        next page's cursor, or None. ``InvalidRequestError`` for a ``limit`` out of 1..50 or a
        cursor not of this query.

        What is ranked is not every match: the owner's newest ``store.search.CANDIDATES``
        (1 000) matching messages, and apart their newest 1 000 matching titles, best first
        (newest conversation first among equals). A query matching fewer is ranked whole; one
        matching more (a common word) shows the best of its newest matches, and its pages end
        there: an older match it leaves out is found by a more precise query.
        """
        ...

    # --- export and import (store.transfer) ----------------------------------------------------

    async def export_conversations(
        self, *, owner: str, conversation_id: str | None = None
    ) -> list[tuple[Conversation, list[Message]]]:
        """``owner``'s conversations (oldest first), or the one named, each with every message
        of its tree (parents first), read in one snapshot. ``NotFoundError`` for a conversation
        that is not the owner's."""
        ...

    async def import_conversations(
        self, source: Callable[[], Iterable[ImportedConversation]], *, owner: str
    ) -> tuple[list[str], int]:
        """Write the conversations ``source()`` yields as ``owner``'s, all or none: the ids of
        those written, and how many were skipped as imported before (the same owner, source and
        source id, in the database, earlier in the file, or published meanwhile by a concurrent
        import of it; for our own format also a conversation the owner has already).

        No write lock is held for long: ``source`` is called once and its iterator consumed on a
        worker thread, never inside a transaction (a streaming parse: memory holds a batch, not
        the file); each batch is written in a short transaction of its own, invisible to every
        reader, and the whole import becomes the owner's in one short last one. Any exception
        (``source``'s own, a database error, cancellation) deletes what was written, then
        propagates. Times are kept, the current leaf mapped; ids are new, but our own format
        keeps its ids when none is taken. ``InvalidRequestError`` for a tree that breaks the
        model's promise (a repeated id, a child before its parent); ``ConflictError`` when a
        concurrent import of the same file of ours took the ids this one was keeping;
        ``NotFoundError`` when ``owner``, a user's id, names no user by the time it would be
        published (their account was deleted meanwhile): nothing is imported."""
        ...

    # --- MCP server settings (server-wide, not a user's) ----------------------------------------

    async def list_tool_servers(self) -> list[ToolServerRow]:
        """The stored settings of every MCP server an admin added or changed, by name."""
        ...

    async def add_tool_server(self, name: str, *, config: Mapping[str, Any]) -> ToolServerRow:
        """Keep a new admin-added server with its whole ``mcpServers`` entry (stored as given:
        the caller checks it). ``ConflictError`` if a row of that name exists;
        ``InvalidRequestError`` for a name longer than 32 characters or empty."""
        ...

    async def update_tool_server(
        self,
        name: str,
        *,
        config: Mapping[str, Any] | Unset | None = UNSET,
        enabled: bool | Unset | None = UNSET,
        approvals: Mapping[str, str] | Unset = UNSET,
    ) -> ToolServerRow:
        """Change the fields given (``UNSET`` leaves one; ``enabled=None``: as its config says),
        making the row if there is none (a settings-file server's first override); ``config``
        and ``approvals`` replace the old ones whole. ``InvalidRequestError`` for an approval
        other than ``ask`` or ``always``, or a name as ``add_tool_server`` refuses."""
        ...

    async def delete_tool_server(self, name: str) -> bool:
        """Forget the server's row; say whether there was one."""
        ...

    # --- accounts -----------------------------------------------------------------------------

    @property
    def accounts(self) -> Accounts:
        """The users, their sessions and API keys, in the same database."""
        ...

    # --- lifetime -----------------------------------------------------------------------------

    async def close(self) -> None:
        """Wait for the operations under way, then let go of the database. Idempotent."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class Accounts(Protocol):
    """Users, their sessions and their API keys. Each operation is one transaction.

    Emails are unique compared case-insensitively (``ConflictError``); unknown ids are
    ``NotFoundError``. A change that would leave no active admin is refused (``ConflictError``),
    in the same transaction, so two admins cannot demote each other at once.
    """

    # --- users --------------------------------------------------------------------------------

    async def count_users(self) -> int: ...

    async def create_user(
        self,
        *,
        email: str,
        name: str | None,
        password_hash: str,
        role: str,
        status: str,
    ) -> User:
        """A new account; ``ConflictError`` if the email is taken."""
        ...

    async def create_first_admin(
        self, *, email: str, name: str | None, password_hash: str, setup_token_hash: str | None
    ) -> User:
        """The first account, an active admin, who adopts the conversations without an owner
        (``Store.adopt_conversations``); every setup token is used up. ``ConflictError`` if an
        account exists already; ``NotFoundError`` if ``setup_token_hash`` is given and is not a
        stored setup token. One transaction: two setups at once make one admin."""
        ...

    async def add_setup_token(self, token_hash: str) -> None:
        """Remember a one-time setup token (valid until the first admin is made)."""
        ...

    async def get_user(self, user_id: str) -> User: ...

    async def find_login(self, email: str) -> tuple[User, str] | None:
        """The account with this email (any case) and its password hash; None if there is none."""
        ...

    async def first_admin(self) -> User | None:
        """The oldest active admin, if any."""
        ...

    async def list_users(self) -> list[User]:
        """Every account, oldest first."""
        ...

    async def update_user(
        self,
        user_id: str,
        *,
        name: str | Unset | None = UNSET,
        role: str | Unset = UNSET,
        status: str | Unset = UNSET,
        password_hash: str | Unset = UNSET,
        end_credentials: bool = False,
        keep_session: str | None = None,
    ) -> User:
        """Change the fields given. ``end_credentials``: in the same transaction delete the
        user's sessions (but ``keep_session``, a token hash) and API keys.
        ``InvalidRequestError`` for an unknown role or status."""
        ...

    async def delete_user(self, user_id: str) -> None:
        """Delete the account, its sessions, keys, conversations and their messages."""
        ...

    # --- sessions -----------------------------------------------------------------------------

    async def create_session(self, user_id: str, token_hash: str) -> SessionRecord: ...

    async def find_session(self, token_hash: str) -> tuple[User, SessionRecord] | None:
        """The session with this token hash and its user; None if there is none."""
        ...

    async def touch_session(self, token_hash: str) -> None:
        """Record that the session was used now (for the idle lifetime)."""
        ...

    async def delete_session(self, token_hash: str) -> None:
        """End one session; no error if it is gone."""
        ...

    async def delete_sessions(self, *, idle_since: float, created_before: float) -> int:
        """End the sessions last used before ``idle_since`` or made before ``created_before``;
        return how many."""
        ...

    # --- API keys -----------------------------------------------------------------------------

    async def create_api_key(
        self, user_id: str, *, name: str, prefix: str, key_hash: str
    ) -> ApiKey: ...

    async def find_api_key(self, key_hash: str) -> tuple[User, ApiKey] | None:
        """The key with this hash and its user; None if there is none."""
        ...

    async def touch_api_key(self, key_id: str) -> None:
        """Record that the key was used now."""
        ...

    async def list_api_keys(self, user_id: str) -> list[ApiKey]:
        """The user's keys, newest first."""
        ...

    async def delete_api_key(self, key_id: str, *, owner: str) -> None:
        """Revoke a key; ``NotFoundError`` if it is gone or not ``owner``'s."""
        ...
