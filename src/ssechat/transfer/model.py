"""The neutral model every importer produces and the store imports: conversations as trees of
messages, with what we keep of each (text, role, status, model, times, usage, reasoning, tool
calls), named by the ids of the file they came from.

Pure values: this module never does IO and imports nothing of ssechat but ``errors``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ssechat.errors import InvalidRequestError

__all__ = ["ImportFormatError", "ImportedConversation", "ImportedMessage", "Role", "Status"]

Role = Literal["system", "user", "assistant"]
Status = Literal["complete", "length", "stopped", "error", "interrupted"]


class ImportFormatError(InvalidRequestError):
    """A file that cannot be imported: ``where`` is the place in it (a JSON path such as
    ``$[0].mapping["abc"].parent``, or a zip member), named in the message; never a 500."""

    def __init__(self, message: str, where: str = "$") -> None:
        super().__init__(f"{message} (at {where})")
        self.where = where


@dataclass(frozen=True, slots=True)
class ImportedMessage:
    """One message of an imported tree. ``id`` and ``parent_id`` are the file's own ids (unique
    within the conversation); a parent comes before its children in ``messages``."""

    id: str
    parent_id: str | None
    role: Role
    content: str
    status: Status = "complete"
    model: str | None = None
    created_at: float | None = None
    """Unix seconds; None: unknown (the importer then orders by position)."""
    finish_reason: str | None = None
    usage: dict[str, int] | None = None
    error: str | None = None
    reasoning: str | None = None
    reasoning_seconds: float | None = None
    tool_calls: list[dict[str, Any]] | None = None
    updated_at: float | None = None
    """Unix seconds of its last change; None: its ``created_at``."""


@dataclass(frozen=True, slots=True)
class ImportedConversation:
    """One conversation of a file. ``source`` names the format (``ssechat``, ``chatgpt``,
    ``librechat``…) and ``source_id`` the conversation in it: together with the importing user
    they say whether it was imported before."""

    source: str
    source_id: str
    title: str | None
    created_at: float | None
    updated_at: float | None
    messages: list[ImportedMessage] = field(default_factory=list)
    current_leaf_id: str | None = None
    """The file's id of the message the conversation's view ends at (ChatGPT's
    ``current_node``); None: the newest leaf."""
    model: str | None = None
    system_prompt: str | None = None
    tools: list[str] = field(default_factory=list)
