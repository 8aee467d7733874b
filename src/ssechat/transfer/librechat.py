"""LibreChat's JSON conversation export, parsed into the neutral model.

LibreChat exports one conversation per file: an object ``{conversationId, title, endpoint,
options, branches, recursive, messages}`` (``messagesTree`` before LibreChat #2897). With
``recursive`` on, ``messages`` holds the roots and each message nests its replies in
``children``; with it off, ``messages`` is a flat list linked by ``parentMessageId``. Both are read
by one walk; a JSON list of such objects is read too (one conversation each).

The rules (the README's import section repeats them):

- **Tree.** A nested message's parent is the message it is nested in (as LibreChat's own importer
  does; its ``parentMessageId`` is not consulted); a top-level message's parent is its
  ``parentMessageId``, where ``00000000-0000-0000-0000-000000000000``, null or absence mean a root.
  Several roots (an edited first message) and several children (regenerations, edits) are
  siblings. LibreChat's export names no current message, so ``current_leaf_id`` is None (the
  newest leaf).
- **Refused**, each an ``ImportFormatError`` naming the JSON path: a ``parentMessageId`` naming a
  message not in the file (a missing parent is not guessed at: attaching it to the root would
  invent a branch), links that form a cycle, a repeated ``messageId``, a field of the wrong type,
  a time that is not an ISO-8601 string or epoch number between 1970 and 9999. (Lengths are
  checked for every format alike by ``transfer.limits``.)
- **Roles.** ``isCreatedByUser`` says user or assistant; without it, ``sender`` "User" (any case)
  is the user and anything else the assistant. LibreChat keeps no system, tool or hidden
  messages in a conversation: the preset's ``promptPrefix`` becomes the system prompt, and every
  message is kept, an empty one too.
- **Text.** ``text``; when it is empty, the ``text`` parts of ``content`` (agents' answers) joined,
  ``think`` parts becoming the reasoning; other parts (tool calls, images, files) are dropped.
- **Status.** ``error: true`` on an answer: ``error``, its text becoming the error message;
  ``unfinished: true``: ``interrupted``; ``finish_reason`` "incomplete" (LibreChat's stop):
  ``stopped``; "length" or "max_tokens": ``length``; else ``complete``. An answer's
  ``promptTokens`` and ``tokenCount`` become its usage when it has both. Times: ``createdAt``
  and ``updatedAt``; the conversation's are its own if present, else its messages' earliest and
  latest.

Pure: this module parses given values and never does IO; it imports nothing of ssechat but the
transfer model.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from ssechat.transfer.model import (
    ImportedConversation,
    ImportedMessage,
    ImportFormatError,
    Status,
    json_kind,
)

__all__ = [
    "NO_PARENT",
    "SOURCE",
    "is_conversation",
    "is_librechat",
    "parse_conversation",
    "parse_librechat",
    "seconds",
]

SOURCE = "librechat"
NO_PARENT = "00000000-0000-0000-0000-000000000000"
"""LibreChat's parent id of a root message."""

MAX_EPOCH = 253402300799.0
"""9999-12-31T23:59:59Z: later times would break whoever turns them into dates."""

T = TypeVar("T")

_STATUS_OF_FINISH: dict[str, Status] = {
    "incomplete": "stopped",
    "length": "length",
    "max_tokens": "length",
}


def is_librechat(value: object) -> bool:
    """Whether a parsed JSON document looks like LibreChat's export (what LibreChat's own
    importer checks: a ``conversationId`` and ``messages`` or ``messagesTree``), or a non-empty
    list of those."""
    if isinstance(value, list):
        return bool(value) and all(is_conversation(item) for item in value)
    return is_conversation(value)


def is_conversation(value: object) -> bool:
    """Whether a parsed JSON value is one LibreChat conversation (the file, or a list's item)."""
    return (
        isinstance(value, dict)
        and "conversationId" in value
        and ("messages" in value or "messagesTree" in value)
    )


def parse_librechat(value: object) -> list[ImportedConversation]:
    """The conversations of a parsed LibreChat export (one object, or a list of them)."""
    if isinstance(value, list):
        return [parse_conversation(item, f"$[{index}]") for index, item in enumerate(value)]
    return [parse_conversation(value, "$")]


def seconds(value: object, where: str) -> float | None:
    """A time as Unix seconds: an ISO-8601 string (UTC when it names no zone), an epoch number
    (in milliseconds when above 1e11, which as seconds would be past the year 5000), or MongoDB's
    ``{"$date": …}``; None for null."""
    if value is None:
        return None
    if isinstance(value, dict) and value.keys() == {"$date"}:
        return seconds(value["$date"], f"{where}.$date")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ImportFormatError(
            f"a time must be a string or a number, not {json_kind(value)}", where
        )
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            result = moment.timestamp()
        except (ValueError, OverflowError):
            raise ImportFormatError(f"{_quote(value)} is not an ISO-8601 time", where) from None
    else:
        result = float(value)
        if result > 1e11:
            result /= 1000
    if not (math.isfinite(result) and 0 <= result <= MAX_EPOCH):
        raise ImportFormatError("a time must fall between 1970 and 9999", where)
    return result


# --- one conversation -----------------------------------------------------------------------


def parse_conversation(value: object, where: str) -> ImportedConversation:
    """One conversation (parsed JSON), ``where`` its JSON path (``$``, or ``$[3]`` in a list)."""
    if not isinstance(value, dict):
        raise ImportFormatError(
            f"a LibreChat conversation must be an object, not {json_kind(value)}", where
        )
    conversation_id = _text_id(value, "conversationId", where)
    title = _optional(value, "title", str, where)
    options = _optional(value, "options", dict, where) or {}
    key = "messages" if "messages" in value else "messagesTree"
    roots = value.get(key)
    if not isinstance(roots, list):
        raise ImportFormatError(f"{key} must be a list, not {json_kind(roots)}", f"{where}.{key}")
    messages, latest = _messages(roots, f"{where}.{key}")
    created_at = seconds(value.get("createdAt"), f"{where}.createdAt")
    updated_at = seconds(value.get("updatedAt"), f"{where}.updatedAt")
    return ImportedConversation(
        source=SOURCE,
        source_id=conversation_id,
        title=title,
        created_at=(
            created_at
            if created_at is not None
            else min((m.created_at for m in messages if m.created_at is not None), default=None)
        ),
        updated_at=updated_at if updated_at is not None else latest,
        messages=messages,
        current_leaf_id=None,
        model=_optional(options, "model", str, f"{where}.options"),
        system_prompt=_optional(options, "promptPrefix", str, f"{where}.options") or None,
    )


@dataclass(frozen=True, slots=True)
class _Node:
    """A message read off the file, before it is ordered: the index it was met at (the order
    siblings keep) and its place in the file (``where``)."""

    index: int
    message: ImportedMessage
    where: str

    @property
    def parent_where(self) -> str:
        return f"{self.where}.parentMessageId"


def _messages(roots: list[Any], where: str) -> tuple[list[ImportedMessage], float | None]:
    """The messages, parents first, and the latest time any of them names."""
    latest: float | None = None
    nodes: list[_Node] = []
    by_id: dict[str, _Node] = {}
    # An explicit stack rather than recursion: nesting depth is the file's to choose.
    stack: list[tuple[object, str, str | None]] = [
        (item, f"{where}[{i}]", None) for i, item in reversed(list(enumerate(roots)))
    ]
    while stack:
        raw, path, nested_in = stack.pop()
        if not isinstance(raw, dict):
            raise ImportFormatError(f"a message must be an object, not {json_kind(raw)}", path)
        message_id = _text_id(raw, "messageId", path)
        if message_id in by_id:
            raise ImportFormatError(
                f"message id {_quote(message_id)} appears twice "
                f"(first at {by_id[message_id].where})",
                f"{path}.messageId",
            )
        if nested_in is None:
            parent = _optional(raw, "parentMessageId", str, path)
            parent = None if parent in (None, "", NO_PARENT) else parent
        else:
            parent = nested_in
        message = _message(raw, message_id, parent, path)
        for time in (message.created_at, message.updated_at):
            if time is not None and (latest is None or time > latest):
                latest = time
        node = _Node(len(nodes), message, path)
        nodes.append(node)
        by_id[message_id] = node
        children = _optional(raw, "children", list, path) or []
        stack.extend(
            (child, f"{path}.children[{i}]", message_id)
            for i, child in reversed(list(enumerate(children)))
        )
    return _ordered(nodes, by_id), latest


def _ordered(nodes: list[_Node], by_id: dict[str, _Node]) -> list[ImportedMessage]:
    """Parents before children, otherwise in the order the file gives (Kahn's algorithm, the
    ready message met first going first); a missing parent or a cycle is refused."""
    children: dict[str, list[int]] = {}
    ready: list[int] = []
    for node in nodes:
        if node.message.parent_id is None:
            ready.append(node.index)
        elif node.message.parent_id not in by_id:
            raise ImportFormatError(
                f"parent message {_quote(node.message.parent_id)} is not in the file",
                node.parent_where,
            )
        else:
            children.setdefault(node.message.parent_id, []).append(node.index)
    heapq.heapify(ready)
    result: list[ImportedMessage] = []
    while ready:
        node = nodes[heapq.heappop(ready)]
        result.append(node.message)
        for index in children.get(node.message.id, ()):
            heapq.heappush(ready, index)
    if len(result) < len(nodes):
        emitted = {m.id for m in result}
        node = next(n for n in nodes if n.message.id not in emitted)
        seen: set[str] = set()
        # Walk up from a message that was never reached until a message repeats: it is on
        # the cycle (every unreached message leads to one, since no parent is missing).
        while node.message.id not in seen:
            seen.add(node.message.id)
            node = by_id[node.message.parent_id or ""]
        raise ImportFormatError(
            f"message {_quote(node.message.id)} is its own ancestor (parentMessageId links form a "
            "cycle)",
            node.parent_where,
        )
    return result


def _message(
    raw: dict[str, Any], message_id: str, parent: str | None, where: str
) -> ImportedMessage:
    by_user = _optional(raw, "isCreatedByUser", bool, where)
    if by_user is None:
        sender = _optional(raw, "sender", str, where)
        by_user = sender is not None and sender.lower() == "user"
    content, reasoning = _content(raw, where)
    created_at = seconds(raw.get("createdAt"), f"{where}.createdAt")
    updated_at = seconds(raw.get("updatedAt"), f"{where}.updatedAt")
    failed = _optional(raw, "error", bool, where)
    unfinished = _optional(raw, "unfinished", bool, where)
    finish = _optional(raw, "finish_reason", str, where)
    tokens = _count(raw, "tokenCount", where)
    prompt_tokens = _count(raw, "promptTokens", where)
    model = _optional(raw, "model", str, where)
    if by_user:
        return ImportedMessage(
            id=message_id,
            parent_id=parent,
            role="user",
            content=content,
            created_at=created_at,
            updated_at=updated_at,
        )
    status: Status = "complete"
    error = None
    if failed:
        status, error, content = "error", content or "LibreChat recorded an error", ""
    elif unfinished:
        status = "interrupted"
    elif finish is not None:
        status = _STATUS_OF_FINISH.get(finish, "complete")
    usage = None
    # Only a whole figure: the UI shows "n in · m out", and an unknown half shown as 0 misleads.
    if tokens is not None and prompt_tokens is not None:
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": tokens,
            "total_tokens": prompt_tokens + tokens,
        }
    return ImportedMessage(
        id=message_id,
        parent_id=parent,
        role="assistant",
        content=content,
        status=status,
        model=model,
        created_at=created_at,
        updated_at=updated_at,
        finish_reason=finish,
        usage=usage,
        error=error,
        reasoning=reasoning,
    )


def _content(raw: dict[str, Any], where: str) -> tuple[str, str | None]:
    """The message's text and its reasoning: ``text``, or the parts of ``content``."""
    text = _optional(raw, "text", str, where) or ""
    parts = _optional(raw, "content", list, where)
    if text or not parts:
        return text, None
    texts: list[str] = []
    thoughts: list[str] = []
    for index, part in enumerate(parts):
        path = f"{where}.content[{index}]"
        if not isinstance(part, dict):
            raise ImportFormatError(
                f"a content part must be an object, not {json_kind(part)}", path
            )
        kind = part.get("type")
        if kind == "text":
            value = part.get("text")
            if isinstance(value, dict):  # the Assistants API's {value, annotations}
                value = value.get("value")
            if not isinstance(value, str):
                raise ImportFormatError(
                    f"a text part's text must be a string, not {json_kind(value)}", f"{path}.text"
                )
            texts.append(value)
        elif kind == "think":
            value = part.get("think")
            if not isinstance(value, str):
                raise ImportFormatError(
                    f"a think part must hold a string, not {json_kind(value)}", f"{path}.think"
                )
            thoughts.append(value)
    return "".join(texts), "".join(thoughts) or None


# --- fields ---------------------------------------------------------------------------------


def _optional(raw: Mapping[str, Any], key: str, kind: type[T], where: str) -> T | None:
    """``raw[key]`` when it is a ``kind``, None when absent or null; else refused."""
    value = raw.get(key)
    if value is None:
        return None
    # bool is an int to Python but not to JSON: a count of true is refused.
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ImportFormatError(
            f"{key} must be {_NAMES.get(kind, kind.__name__)}, not {json_kind(value)}",
            f"{where}.{key}",
        )
    return value


def _text_id(raw: Mapping[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise ImportFormatError(
            f"{key} must be a non-empty string, not {json_kind(value)}", f"{where}.{key}"
        )
    return value


def _count(raw: Mapping[str, Any], key: str, where: str) -> int | None:
    value = _optional(raw, key, int, where)
    if value is not None and value < 0:
        raise ImportFormatError(f"{key} must not be negative", f"{where}.{key}")
    return value


_NAMES: dict[type, str] = {
    str: "a string",
    bool: "true or false",
    int: "an integer",
    list: "a list",
    dict: "an object",
}


def _quote(value: str) -> str:
    """A file's value in a message, shortened: an id or time is short unless the file is hostile."""
    return repr(value if len(value) <= 80 else value[:77] + "...")
