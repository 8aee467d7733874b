"""The records the store hands out: conversations, the messages of their tree, and exchanges.

They are frozen values, built from rows by the store and turned into JSON-ready dicts for the API
by ``as_dict``. This module must never touch a database or import anything of ssechat: it is what
the rest of the application may hold on to without holding a connection.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

__all__ = [
    "LOCAL_OWNER",
    "MESSAGE_STATUSES",
    "ROLES",
    "TOOL_APPROVALS",
    "UNSET",
    "USER_ROLES",
    "USER_STATUSES",
    "ApiKey",
    "Conversation",
    "Exchange",
    "Message",
    "SessionRecord",
    "ToolServerRow",
    "Unset",
    "User",
    "email_key",
    "iso_utc",
]

ROLES: Final = ("system", "user", "assistant")
"""The roles a message may have."""

MESSAGE_STATUSES: Final = ("streaming", "complete", "length", "stopped", "error", "interrupted")
"""A user message is ``complete``; an answer is ``streaming`` until its run ends with one of the
others (``interrupted``: the server stopped, or crashed, while it was being written)."""


TOOL_APPROVALS: Final = ("ask", "always")
"""How a tool's calls are approved: ``ask`` waits for the user, ``always`` runs at once."""

USER_ROLES: Final = ("admin", "user")
USER_STATUSES: Final = ("active", "pending", "disabled")

LOCAL_OWNER: Final = "local"
"""The owner of conversations made with accounts off (``SSECHAT_AUTH=off``) while no admin
exists. The first admin adopts them, with those made before accounts existed (owner NULL)."""


def email_key(email: str) -> str:
    """The form emails are compared in (unique per account, sign-in limits): stripped and
    lower-cased."""
    return email.strip().lower()


class Unset(enum.Enum):
    """The type of ``UNSET``: "leave this field as it is", so that ``None`` can clear a field."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset.UNSET


def iso_utc(timestamp: float) -> str:
    """Unix seconds as ISO-8601 UTC with millisecond precision and a ``Z``, as browsers parse it."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    title: str | None
    model: str | None
    system_prompt: str | None
    owner: str | None
    created_at: float
    updated_at: float
    current_leaf_id: str | None
    """The message the conversation's view ends at: the newest message added, or one chosen."""
    tools: tuple[str, ...] = ()
    """The keys (``"<server>/<tool>"``) of the tools its model may call; empty: none."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "model": self.model,
            "system_prompt": self.system_prompt,
            "owner": self.owner,
            "created_at": iso_utc(self.created_at),
            "updated_at": iso_utc(self.updated_at),
            "current_leaf_id": self.current_leaf_id,
            "tools": list(self.tools),
        }


@dataclass(frozen=True, slots=True)
class Message:
    """One node of a conversation's tree; siblings (same parent) are regenerations or edits."""

    id: str
    conversation_id: str
    parent_id: str | None
    role: str
    content: str
    status: str
    model: str | None
    finish_reason: str | None
    usage: dict[str, int] | None
    created_at: float
    updated_at: float
    error: str | None = None
    """Why the run that wrote this answer failed (status ``error``), for people."""
    reasoning: str | None = None
    """The model's thinking before its answer (None: it did not reason, or said nothing of it)."""
    reasoning_seconds: float | None = None
    """From the first reasoning token to the last."""
    tool_calls: list[dict[str, Any]] | None = None
    """The tools the model asked for, in call order: ``{id, name, arguments, server, tool,
    approval, decision, offset, result}`` each (arguments as JSON text, offset an int, result
    ``{content, is_error}`` or None), as the run stored them; older answers hold only ``{id,
    name, arguments}`` (a missing key means null)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "conversation_id": self.conversation_id,
            "parent_id": self.parent_id,
            "role": self.role,
            "content": self.content,
            "status": self.status,
            "model": self.model,
            "finish_reason": self.finish_reason,
            "usage": _usage_dict(self.usage) if self.usage is not None else None,
            "error": self.error,
            "created_at": iso_utc(self.created_at),
            "updated_at": iso_utc(self.updated_at),
            "reasoning": self.reasoning,
            "reasoning_seconds": self.reasoning_seconds,
            "tool_calls": [dict(call) for call in self.tool_calls]
            if self.tool_calls is not None
            else None,
        }


def _usage_dict(usage: dict[str, int]) -> dict[str, int | None]:
    # Every key always sent: reasoning_tokens is null when the upstream did not count them.
    out: dict[str, int | None] = {**usage}
    out.setdefault("reasoning_tokens", None)
    return out


@dataclass(frozen=True, slots=True)
class Exchange:
    """What starting a turn wrote and what its answer is to be generated from, read in the
    transaction that wrote it."""

    conversation: Conversation
    """The conversation as it was before the turn (its title, model and system prompt)."""
    user: Message
    """The question: new for a sent message, the existing one for a regenerated answer."""
    answer: Message
    """The new, empty ``streaming`` answer, now the conversation's current leaf."""
    branch: list[Message]
    """The path from the root of the tree down to ``user``, both included."""


@dataclass(frozen=True, slots=True)
class User:
    """An account. Its password hash is not here: only ``Accounts.find_login`` hands it out."""

    id: str
    email: str
    name: str | None
    role: str
    status: str
    created_at: float
    updated_at: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "role": self.role,
            "status": self.status,
            "created_at": iso_utc(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A signed-in browser: the store knows it by the hash of its token, never the token."""

    token_hash: str
    user_id: str
    created_at: float
    last_seen_at: float


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A program's key: the store keeps its hash and a visible prefix, never the key."""

    id: str
    user_id: str
    name: str
    prefix: str
    created_at: float
    last_used_at: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "created_at": iso_utc(self.created_at),
            "last_used_at": iso_utc(self.last_used_at) if self.last_used_at is not None else None,
        }


@dataclass(frozen=True, slots=True)
class ToolServerRow:
    """The admins' settings of one MCP server, server-wide (not a user's).

    An admin-added server has its whole ``mcpServers`` entry in ``config``; a server of the
    settings file has ``config`` None and a row only for what an admin overrode. Entries are
    kept as given: checking them is ``ssechat.tools.config``'s part."""

    name: str
    config: dict[str, Any] | None
    enabled: bool | None
    """Turned on or off by an admin; None: as its config says."""
    approvals: dict[str, str]
    """Tool name → ``ask`` or ``always``, for the tools an admin set."""
    updated_at: float
