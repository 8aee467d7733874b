"""Our own export document, version 1: build it from the store's records, and parse it back.

The document (``schema/ssechat-export-v1.schema.json`` describes it, JSON Schema 2020-12)::

    {"format": "ssechat-export", "version": 1, "exported_at": <unix seconds>,
     "conversations": [{id, title, model, system_prompt, tools, created_at, updated_at,
                        current_leaf_id, messages: [{id, parent_id, role, content, status, model,
                        finish_reason, usage, error, reasoning, reasoning_seconds, tool_calls,
                        created_at, updated_at}, ...]}, ...]}

It is lossless: every message of every branch, with every field the store keeps (the owner is
not in it: whoever imports a file owns what it holds). Times are unix seconds as JSON numbers,
not the API's ISO strings: the store keeps floats, and a float written by Python's ``repr`` (as
``json`` does) reads back bit for bit, while ISO with milliseconds would lose the rest, so an
export imported and exported again gives the same document. Messages come parents first (the
store's insertion order), which ``parse_ours`` requires: a ``parent_id`` naming no earlier
message (a missing parent, or a cycle) is an error.

Pure: the records are read through small protocols (the store's ``Conversation`` and
``Message`` fit them), so this module imports nothing of ssechat but ``errors`` (through
``transfer.model``), and never does IO.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Protocol, cast, get_args

from ssechat.transfer.model import (
    ImportedConversation,
    ImportedMessage,
    ImportFormatError,
    Role,
    Status,
    epoch_seconds,
    json_kind,
)

__all__ = [
    "FORMAT",
    "SOURCE",
    "VERSION",
    "ConversationRecord",
    "MessageRecord",
    "build_document",
    "check_header",
    "is_ours",
    "parse_conversation",
    "parse_ours",
]

FORMAT: Final = "ssechat-export"
VERSION: Final = 1
SOURCE: Final = "ssechat"
"""The ``source`` of what ``parse_ours`` reads (the store keeps such ids when they are free)."""

_ROLES: Final = frozenset(get_args(Role))
_STATUSES: Final = frozenset(get_args(Status))


class ConversationRecord(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def title(self) -> str | None: ...
    @property
    def model(self) -> str | None: ...
    @property
    def system_prompt(self) -> str | None: ...
    @property
    def created_at(self) -> float: ...
    @property
    def updated_at(self) -> float: ...
    @property
    def current_leaf_id(self) -> str | None: ...
    @property
    def tools(self) -> tuple[str, ...]: ...


class MessageRecord(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def parent_id(self) -> str | None: ...
    @property
    def role(self) -> str: ...
    @property
    def content(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def model(self) -> str | None: ...
    @property
    def finish_reason(self) -> str | None: ...
    @property
    def usage(self) -> dict[str, int] | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def reasoning(self) -> str | None: ...
    @property
    def reasoning_seconds(self) -> float | None: ...
    @property
    def tool_calls(self) -> list[dict[str, Any]] | None: ...
    @property
    def created_at(self) -> float: ...
    @property
    def updated_at(self) -> float: ...


def build_document(
    conversations: Iterable[tuple[ConversationRecord, Sequence[MessageRecord]]],
    *,
    exported_at: float,
) -> dict[str, Any]:
    """The v1 document holding ``conversations``, each with its messages (parents first)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": exported_at,
        "conversations": [_conversation(c, messages) for c, messages in conversations],
    }


def _conversation(
    conversation: ConversationRecord, messages: Sequence[MessageRecord]
) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "title": conversation.title,
        "model": conversation.model,
        "system_prompt": conversation.system_prompt,
        "tools": list(conversation.tools),
        "created_at": conversation.created_at,
        "updated_at": conversation.updated_at,
        "current_leaf_id": conversation.current_leaf_id,
        "messages": [_message(message) for message in messages],
    }


def _message(message: MessageRecord) -> dict[str, Any]:
    return {
        "id": message.id,
        "parent_id": message.parent_id,
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "model": message.model,
        "finish_reason": message.finish_reason,
        "usage": dict(message.usage) if message.usage is not None else None,
        "error": message.error,
        "reasoning": message.reasoning,
        "reasoning_seconds": message.reasoning_seconds,
        # As stored (calls nest their arguments and results); the document is serialized at once.
        "tool_calls": message.tool_calls,
        "created_at": message.created_at,
        "updated_at": message.updated_at,
    }


def is_ours(data: Any) -> bool:
    """Whether ``data`` (parsed JSON) says it is our export document, of any version."""
    return isinstance(data, dict) and data.get("format") == FORMAT


def parse_ours(data: Any) -> list[ImportedConversation]:
    """The conversations of our export document (parsed JSON), checked field by field.

    Raises ``ImportFormatError`` naming the JSON path of the first thing wrong: not our format, a
    newer version, a wrong type, an unknown role or status, a repeated id, a parent that is not
    an earlier message of the conversation (a cycle, or a missing parent), a current leaf that
    is not one of its messages. A message still ``streaming`` when it was exported comes back
    ``interrupted``, as the server marks such an answer after a restart."""
    check_header(data)
    items = _list(data.get("conversations"), "$.conversations")
    return [parse_conversation(item, f"$.conversations[{i}]") for i, item in enumerate(items)]


def check_header(data: Any) -> None:
    """Refuse a document (parsed JSON, or its top-level keys but ``conversations``) that is not
    ours, or of a version this ssechat cannot read."""
    if not is_ours(data):
        raise ImportFormatError(f"not an ssechat export (its format is not {FORMAT!r})", "$.format")
    version = data.get("version")
    if not _is_int(version):
        raise ImportFormatError("version must be an integer", "$.version")
    if version > VERSION:
        raise ImportFormatError(
            f"this export is version {version}, written by a newer ssechat; this one reads "
            f"version {VERSION}",
            "$.version",
        )
    if version < 1:
        raise ImportFormatError(f"unknown version {version}", "$.version")


def parse_conversation(item: Any, where: str) -> ImportedConversation:
    """One item of ``conversations`` (parsed JSON), ``where`` its JSON path."""
    obj = _object(item, where)
    conversation_id = _id(obj.get("id"), f"{where}.id")
    tools = _list(obj.get("tools", []), f"{where}.tools")
    for i, tool in enumerate(tools):
        _string(tool, f"{where}.tools[{i}]")
    messages: list[ImportedMessage] = []
    seen: set[str] = set()
    for i, raw in enumerate(_list(obj.get("messages"), f"{where}.messages")):
        message = _parse_message(raw, f"{where}.messages[{i}]", seen)
        seen.add(message.id)
        messages.append(message)
    leaf = _optional_string(obj.get("current_leaf_id"), f"{where}.current_leaf_id")
    if leaf is not None and leaf not in seen:
        raise ImportFormatError(
            "current_leaf_id names no message of this conversation", f"{where}.current_leaf_id"
        )
    return ImportedConversation(
        source=SOURCE,
        source_id=conversation_id,
        title=_optional_string(obj.get("title"), f"{where}.title"),
        created_at=epoch_seconds(obj.get("created_at"), f"{where}.created_at"),
        updated_at=epoch_seconds(obj.get("updated_at"), f"{where}.updated_at"),
        messages=messages,
        current_leaf_id=leaf,
        model=_optional_string(obj.get("model"), f"{where}.model"),
        system_prompt=_optional_string(obj.get("system_prompt"), f"{where}.system_prompt"),
        tools=cast(list[str], tools),
    )


def _parse_message(item: Any, where: str, earlier: set[str]) -> ImportedMessage:
    obj = _object(item, where)
    message_id = _id(obj.get("id"), f"{where}.id")
    if message_id in earlier:
        raise ImportFormatError(f"message id {message_id!r} is repeated", f"{where}.id")
    parent_id = _optional_string(obj.get("parent_id"), f"{where}.parent_id")
    if parent_id is not None and parent_id not in earlier:
        # Parents come first in our exports: a later or unknown parent is a cycle or a hole.
        raise ImportFormatError(
            "parent_id names no earlier message of this conversation", f"{where}.parent_id"
        )
    role = _string(obj.get("role"), f"{where}.role")
    if role not in _ROLES:
        raise ImportFormatError(f"unknown role {role!r}", f"{where}.role")
    status = _string(obj.get("status", "complete"), f"{where}.status")
    if status == "streaming":
        status = "interrupted"
    if status not in _STATUSES:
        raise ImportFormatError(f"unknown status {status!r}", f"{where}.status")
    return ImportedMessage(
        id=message_id,
        parent_id=parent_id,
        role=cast(Role, role),
        content=_string(obj.get("content"), f"{where}.content"),
        status=cast(Status, status),
        model=_optional_string(obj.get("model"), f"{where}.model"),
        created_at=epoch_seconds(obj.get("created_at"), f"{where}.created_at"),
        updated_at=epoch_seconds(obj.get("updated_at"), f"{where}.updated_at"),
        finish_reason=_optional_string(obj.get("finish_reason"), f"{where}.finish_reason"),
        usage=_usage(obj.get("usage"), f"{where}.usage"),
        error=_optional_string(obj.get("error"), f"{where}.error"),
        reasoning=_optional_string(obj.get("reasoning"), f"{where}.reasoning"),
        reasoning_seconds=epoch_seconds(obj.get("reasoning_seconds"), f"{where}.reasoning_seconds"),
        tool_calls=_tool_calls(obj.get("tool_calls"), f"{where}.tool_calls"),
    )


def _usage(value: Any, where: str) -> dict[str, int] | None:
    if value is None:
        return None
    obj = _object(value, where)
    usage: dict[str, int] = {}
    for key, count in obj.items():
        if count is None:  # the API's form sends reasoning_tokens: null when not counted
            continue
        if not _is_int(count):
            raise ImportFormatError("a token count must be an integer", f"{where}.{key}")
        usage[key] = count
    return usage


def _tool_calls(value: Any, where: str) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    calls = _list(value, where)
    for i, call in enumerate(calls):
        _object(call, f"{where}[{i}]")
    return cast(list[dict[str, Any]], calls)


# --- the checks, each naming where ------------------------------------------------------------


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ImportFormatError(f"expected an object, found {json_kind(value)}", where)
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ImportFormatError(f"expected a list, found {json_kind(value)}", where)
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ImportFormatError(f"expected a string, found {json_kind(value)}", where)
    return value


def _optional_string(value: Any, where: str) -> str | None:
    return None if value is None else _string(value, where)


def _id(value: Any, where: str) -> str:
    text = _string(value, where)
    if not text:
        raise ImportFormatError("an id must not be empty", where)
    return text


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
