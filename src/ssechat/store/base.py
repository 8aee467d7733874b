"""``Store``: what the rest of ssechat may ask of the conversation store, as a protocol.

The API depends on this protocol, never on an implementation: ``open_store`` gives one
(``SQLStore``, SQLAlchemy Core on the store's threads, for SQLite today and PostgreSQL later),
and a test may hand in another. Every operation is one transaction: it changes everything it
says or nothing. Errors are ``ssechat.errors`` (``NotFoundError``, ``InvalidRequestError``,
``ConflictError``) so the API can answer with them; a closed store raises ``RuntimeError``.

The runs see less than this: their ``AnswerStore`` (``save_partial_answers``, ``update_message``)
is a part of it. This module must never import an implementation, touch a database or hold an
operation that only tests need: a test builds what it needs through these operations.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Protocol, Self

from ssechat.store.models import UNSET, Conversation, Exchange, Message, Unset

__all__ = ["Store"]


class Store(Protocol):
    """Conversations and the tree of their messages. Close it when done (or use ``async with``)."""

    # --- conversations ------------------------------------------------------------------------

    async def create_conversation(
        self,
        *,
        title: str | None = None,
        model: str | None = None,
        system_prompt: str | None = None,
        owner: str | None = None,
    ) -> Conversation:
        """A new conversation, without messages."""
        ...

    async def list_conversations(
        self, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[Conversation], str | None]:
        """One page, most recently updated first, and the cursor of the next page (``None``
        after the last one). ``InvalidRequestError`` for a limit below 1 or a cursor this store
        did not make."""
        ...

    async def get_conversation(self, conversation_id: str) -> Conversation:
        """The conversation; ``NotFoundError`` if it is gone."""
        ...

    async def update_conversation(
        self,
        conversation_id: str,
        *,
        title: str | Unset | None = UNSET,
        model: str | Unset | None = UNSET,
        system_prompt: str | Unset | None = UNSET,
        current_leaf_id: str | Unset | None = UNSET,
    ) -> Conversation:
        """Change the fields given (``None`` clears one, ``UNSET`` leaves it), bump
        ``updated_at``, and return the conversation as it now is. ``current_leaf_id`` must name
        a message of this conversation (``InvalidRequestError``)."""
        ...

    async def delete_conversation(self, conversation_id: str) -> None:
        """Delete the conversation and all its messages; ``NotFoundError`` if it is gone."""
        ...

    async def set_title_if_empty(self, conversation_id: str, title: str) -> bool:
        """Give the conversation ``title`` unless it has one; say whether it was set (``False``
        too if the conversation is gone: naming it then is moot, not an error)."""
        ...

    # --- messages -----------------------------------------------------------------------------

    async def list_messages(self, conversation_id: str) -> list[Message]:
        """Every message of the conversation (the whole tree), in creation order."""
        ...

    async def get_message(self, message_id: str) -> Message:
        """The message; ``NotFoundError`` if it is gone."""
        ...

    async def start_exchange(
        self,
        conversation_id: str,
        *,
        parent_id: str | Unset | None = UNSET,
        user_content: str,
        model: str,
    ) -> Exchange:
        """Start a turn: a question under ``parent_id`` (``UNSET``: the current leaf; ``None``:
        a new root) and its empty ``streaming`` answer by ``model``, made the current leaf; the
        conversation gets ``model`` if it had none.

        ``NotFoundError`` if the conversation or the parent is gone, ``InvalidRequestError`` if
        the parent is another conversation's message, ``ConflictError`` if the parent is an
        answer still being generated.
        """
        ...

    async def start_answer(self, message_id: str, *, model: str) -> Exchange:
        """Answer again: a new empty ``streaming`` answer by ``model`` to the question of
        ``message_id`` (an answer's parent, or the question itself), made the current leaf.

        ``NotFoundError`` if the message is gone; ``ConflictError`` for an answer without a
        question, a system message, or a question still being written.
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
    ) -> None:
        """Change the fields given (``None`` leaves one as it is) and bump ``updated_at``.
        ``NotFoundError`` for an unknown id, ``InvalidRequestError`` for an unknown status."""
        ...

    async def save_partial_answers(self, contents: Mapping[str, str]) -> None:
        """Set the content of several ``streaming`` answers (id → text) at once; ids that are
        gone, and answers no longer streaming, are skipped. The runs' periodic save."""
        ...

    async def mark_streaming_interrupted(self) -> int:
        """Mark every answer still ``streaming`` as ``interrupted``; return how many. For
        startup: no run survives a restart."""
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
