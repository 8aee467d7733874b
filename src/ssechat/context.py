"""What is sent upstream for a branch of a conversation, and a title for a new conversation.

``build_context`` turns the system prompt and the branch (root → newest) into the chat messages
of a request, dropping the oldest messages first when the text would not fit a character budget.
Only a message's ``content`` (and an answer's tool steps) is sent: an answer's reasoning never
goes upstream again (DeepSeek answers 400 when it does, and the thinking of an old turn only
spends the next one's budget). Tool calls go back in the order the upstream expects: each step's
assistant message with its calls, then their ``tool`` results.
``make_title`` names a conversation from its first question, offline, without asking a model.

Pure functions: this module must never do IO, and imports nothing of ssechat but the provider
interface's ``ChatMessage`` (it takes the store's messages through a Protocol, not by import).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ssechat.providers.base import ChatMessage, Role, ToolCall

__all__ = ["DEFAULT_TITLE", "MessageLike", "build_context", "make_title"]

DEFAULT_TITLE = "New chat"

_ROLES: dict[str, Role] = {"system": "system", "user": "user", "assistant": "assistant"}


class MessageLike(Protocol):
    """Anything with a role, a text and the tool calls of an answer (None: it made none), such
    as ``ssechat.store.Message``. A call is a stored ``tool_calls`` entry: ``{id, name,
    arguments, offset, result: {content, is_error} | None, …}``; older entries lack keys."""

    @property
    def role(self) -> str: ...

    @property
    def content(self) -> str: ...

    @property
    def tool_calls(self) -> Sequence[Mapping[str, Any]] | None: ...


def build_context(
    system_prompt: str | None, branch: Sequence[MessageLike], *, budget_chars: int
) -> list[ChatMessage]:
    """The system prompt, then the branch in order, trimmed oldest-first to ``budget_chars``.

    The budget counts the characters of every message's content, and of its tool calls'
    arguments and results. The system prompt and the newest message are always kept, even if
    together they exceed it. Assistant messages with no text and no answered tool call (a failed
    or still empty answer) are left out.

    An answer that used tools is sent as the upstream had it: per step (its calls that share an
    ``offset``), an assistant message with the text written before the calls and the calls, then
    one ``tool`` message per call with its result; then the rest of the text. A call with no
    result (denied before the result was stored, cut off…) is left out, as an upstream rejects an
    assistant call that nothing answers; its step's text joins the next one's. Trimming drops
    whole steps, never an assistant call without its results.

    After trimming, an answer (or a step of one) whose question was cut off is dropped too, so
    that what remains starts with a question: chat templates of many open models reject a
    conversation whose first turn is the assistant's.
    """
    if budget_chars < 0:
        raise ValueError("budget_chars must not be negative")
    # Units are what trimming keeps or drops whole: a message, or a step with its tool results.
    units: list[list[ChatMessage]] = []
    for message in branch:
        role = _ROLES.get(message.role)
        if role is None:
            raise ValueError(f"unknown message role {message.role!r}")
        calls = message.tool_calls if role == "assistant" else None
        if calls:
            units.extend(_answer_steps(message.content, calls))
        elif role != "assistant" or message.content:
            units.append([ChatMessage(role=role, content=message.content)])

    head = [ChatMessage(role="system", content=system_prompt)] if system_prompt else []
    if not units:
        return head
    used = sum(len(m.content) for m in head) + _size(units[-1])
    start = len(units) - 1  # the newest unit is always kept
    while start > 0 and used + _size(units[start - 1]) <= budget_chars:
        start -= 1
        used += _size(units[start])
    if start > 0:  # something was dropped: do not begin with an orphaned answer or step
        while start < len(units) - 1 and units[start][0].role == "assistant":
            start += 1
    return head + [m for unit in units[start:] for m in unit]


def _answer_steps(content: str, calls: Sequence[Mapping[str, Any]]) -> list[list[ChatMessage]]:
    """An answer with tool calls as units: one per step (the assistant message with the text
    before its calls, and the calls' ``tool`` messages), then the text after the last step."""
    units: list[list[ChatMessage]] = []
    done = 0  # where the text not yet sent begins, in code points
    step: list[ToolCall] = []
    results: list[ChatMessage] = []
    step_at = step_offset = 0

    def close_step() -> None:
        nonlocal done
        if step:
            units.append([ChatMessage("assistant", content[done:step_at], tuple(step)), *results])
            done = step_at
            step.clear()
            results.clear()

    for call in calls:
        answered = _answered(call)
        if answered is None:
            continue
        tool_call, result = answered
        offset = call.get("offset")
        if not isinstance(offset, int) or isinstance(offset, bool):
            offset = len(content)  # unknown: after all of the text is the safe place
        if step and offset != step_offset:  # calls of one step share the offset as stored
            close_step()
        step_offset = offset
        # Within the text not yet sent: a bad offset must not lose or repeat any of it.
        step_at = min(max(offset, done), len(content))
        step.append(tool_call)
        results.append(ChatMessage("tool", result, tool_call_id=tool_call.id))
    close_step()
    if content[done:]:
        units.append([ChatMessage("assistant", content[done:])])
    return units


def _answered(call: Mapping[str, Any]) -> tuple[ToolCall, str] | None:
    """The call and its result's text, or None when it has no result (or no usable id)."""
    result = call.get("result")
    call_id = call.get("id")
    if not isinstance(result, Mapping) or not isinstance(call_id, str) or not call_id:
        return None
    text = result.get("content")
    name, arguments = call.get("name"), call.get("arguments")
    return (
        ToolCall(
            id=call_id,
            name=name if isinstance(name, str) else "",
            arguments=arguments if isinstance(arguments, str) else "",
        ),
        text if isinstance(text, str) else "",
    )


def _size(unit: list[ChatMessage]) -> int:
    return sum(len(m.content) + sum(len(c.arguments) for c in m.tool_calls) for m in unit)


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
