"""The neutral model every importer produces and the store imports: conversations as trees of
messages, with what we keep of each (text, role, status, model, times, usage, reasoning, tool
calls), named by the ids of the file they came from.

Pure values: this module never does IO and imports nothing of ssechat but ``errors``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from ssechat.errors import InvalidRequestError

__all__ = [
    "ImportFormatError",
    "ImportedConversation",
    "ImportedMessage",
    "Role",
    "Status",
    "epoch_seconds",
    "json_kind",
]

Role = Literal["system", "user", "assistant"]
Status = Literal["complete", "length", "stopped", "error", "interrupted"]


class ImportFormatError(InvalidRequestError):
    """A file that cannot be imported: ``where`` is the place in it (a JSON path such as
    ``$[0].mapping["abc"].parent``, or a zip member), named in the message; never a 500."""

    def __init__(self, message: str, where: str = "$") -> None:
        super().__init__(f"{message} (at {where})")
        self.where = where


def json_kind(value: object) -> str:
    """What a JSON value is, in the words of an importer's error message (never the value
    itself: it may be huge, or a secret)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def epoch_seconds(value: object, where: str) -> float | None:
    """A time given as unix seconds (an integer or a finite number), or None for null; anything
    else is an ``ImportFormatError`` at ``where``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ImportFormatError(
            f"expected a number (unix seconds) or null, found {json_kind(value)}", where
        )
    return float(value)


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
