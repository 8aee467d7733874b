"""What is sent upstream for a branch of a conversation, and a title for a new conversation.

``build_context`` turns the system prompt and the branch (root → newest) into the chat messages
of a request, dropping the oldest messages first when the text would not fit a character budget.
Only a message's ``content`` is sent: an answer's reasoning never goes upstream again (DeepSeek
answers 400 when it does, and the thinking of an old turn only spends the next one's budget).
``make_title`` names a conversation from its first question, offline, without asking a model.

Pure functions: this module must never do IO, and imports nothing of ssechat but the provider
interface's ``ChatMessage`` (it takes the store's messages through a Protocol, not by import).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from ssechat.providers.base import ChatMessage, Role

__all__ = ["DEFAULT_TITLE", "MessageLike", "build_context", "make_title"]

DEFAULT_TITLE = "New chat"

_ROLES: dict[str, Role] = {"system": "system", "user": "user", "assistant": "assistant"}


class MessageLike(Protocol):
    """Anything with a role and a text, such as ``ssechat.store.Message``."""

    @property
    def role(self) -> str: ...

    @property
    def content(self) -> str: ...


def build_context(
    system_prompt: str | None, branch: Sequence[MessageLike], *, budget_chars: int
) -> list[ChatMessage]:
    """The system prompt, then the branch in order, trimmed oldest-first to ``budget_chars``.

    The budget counts the characters of every message's content. The system prompt and the
    newest message are always kept, even if together they exceed it. Assistant messages with no
    text (a failed or still empty answer) are left out. After trimming, an answer whose question
    was cut off is dropped too, so that what remains starts with a question: chat templates of
    many open models reject a conversation whose first turn is the assistant's.
    """
    if budget_chars < 0:
        raise ValueError("budget_chars must not be negative")
    turns: list[ChatMessage] = []
    for message in branch:
        role = _ROLES.get(message.role)
        if role is None:
            raise ValueError(f"unknown message role {message.role!r}")
        if role == "assistant" and not message.content:
            continue
        turns.append(ChatMessage(role=role, content=message.content))

    head = [ChatMessage(role="system", content=system_prompt)] if system_prompt else []
    if not turns:
        return head
    used = sum(len(m.content) for m in head) + len(turns[-1].content)
    start = len(turns) - 1  # the newest turn is always kept
    while start > 0 and used + len(turns[start - 1].content) <= budget_chars:
        start -= 1
        used += len(turns[start].content)
    if start > 0:  # something was dropped: do not begin with an orphaned answer
        while start < len(turns) - 1 and turns[start].role == "assistant":
            start += 1
    return head + turns[start:]


# --- titles -------------------------------------------------------------------------------------

_FENCE = re.compile(r"^(```|~~~)")
_RULE = re.compile(r"^([-*_]\s*){3,}$")
_BLOCK_MARKER = re.compile(
    r"^(#{1,6}(\s+|$)|>\s*|[-*+](\s+|$)|\d{1,9}[.)](\s+|$)|\[[ xX]\](\s+|$))"
)
_IMAGE_OR_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_INLINE_MARKER = re.compile(r"`+|~~|(?<!\w)[*_]+|[*_]+(?!\w)")
_SPACES = re.compile(r"\s+")


def make_title(user_text: str, answer_text: str = "", *, max_chars: int = 48) -> str:
    """A short title from the first line of the first question (else of the answer).

    Markdown markers (headings, lists, quotes, emphasis, code, links) and runs of whitespace are
    removed; a line longer than ``max_chars`` is cut at a word boundary and ends with "…". With
    no text to use, the title is "New chat".
    """
    if max_chars < 2:
        raise ValueError("max_chars must be at least 2")
    line = _first_line(user_text) or _first_line(answer_text)
    if not line:
        return (
            DEFAULT_TITLE if len(DEFAULT_TITLE) <= max_chars else DEFAULT_TITLE[:max_chars].rstrip()
        )
    return _shorten(line, max_chars)


def _first_line(text: str) -> str:
    """The first line with words in it, Markdown markers and extra whitespace removed."""
    for raw in text.splitlines():
        line = raw.strip()
        if _FENCE.match(line) or _RULE.match(line):
            continue
        while (marker := _BLOCK_MARKER.match(line)) is not None:
            line = line[marker.end() :]
        line = _IMAGE_OR_LINK.sub(r"\1", line)
        line = _INLINE_MARKER.sub("", line)
        line = _SPACES.sub(" ", line).strip()
        if line:
            return line
    return ""


def _shorten(line: str, max_chars: int) -> str:
    if len(line) <= max_chars:
        return line
    cut = line[: max_chars - 1]  # room for the ellipsis
    if line[max_chars - 1] != " ":  # the cut falls inside a word: back up to its start
        space = cut.rfind(" ")
        if space >= max_chars // 2:  # unless that would waste most of the room
            cut = cut[:space]
    return (cut.rstrip(" ,.;:-–—") or cut) + "…"
