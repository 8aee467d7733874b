"""ChatGPT's data export: the conversations of ``conversations.json`` (a JSON list of
conversations, alone or in the export's zip) into the neutral model.

Each conversation's ``mapping`` is a tree of nodes ``{id, message, parent, children}``; a
message has ``author.role``, ``content.content_type`` with ``parts``, ``create_time``,
``metadata`` (``model_slug``, ``finish_details``, ``is_visually_hidden_from_conversation``) and
``recipient``. ``current_node`` names the node the conversation's view ends at.

The rule for what is kept (also in the README):

- kept: ``user`` and ``assistant`` messages whose content is text (``text``, or the string
  parts of ``multimodal_text``), addressed to everyone (``recipient: "all"``), and visible
  system messages with text;
- skipped: the empty root, hidden or empty system messages, messages of ``tool`` (browsing
  results, ``tether_quote`` and the like), an assistant's tool calls (``recipient`` other than
  ``all``, such as ``code`` addressed to ``browser``), and every other content type (custom
  instructions, images alone, execution output). A skipped node's children hang from its
  nearest kept ancestor, so branches stay siblings and the answer that followed a browsing
  step follows its question; a ``current_node`` that is skipped becomes its nearest kept
  ancestor.
- status: ``finish_details.type`` ``interrupted`` (or a message still ``in_progress``) →
  ``interrupted``, ``max_tokens`` → ``length``, else ``complete``.

Every error is an ``ImportFormatError`` naming where: a wrong type, a parent missing from the
mapping, a cycle, a ``current_node`` not in the mapping. (The zip and the JSON bytes are
``transfer.stream``'s: it hands this module one conversation at a time.) Pure: parsed JSON in,
values out; never IO.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from ssechat.transfer.model import (
    ImportedConversation,
    ImportedMessage,
    ImportFormatError,
    Role,
    Status,
    epoch_seconds,
)

__all__ = [
    "MEMBER",
    "SOURCE",
    "is_chatgpt",
    "is_conversation",
    "parse_chatgpt",
    "parse_conversation",
]

SOURCE: Final = "chatgpt"
MEMBER: Final = "conversations.json"

_TEXT_TYPES: Final = frozenset({"text", "multimodal_text"})


def is_chatgpt(data: Any) -> bool:
    """Whether ``data`` (parsed JSON) looks like ``conversations.json``: a list whose first
    item is an object with a ``mapping``. An empty list counts: it imports nothing."""
    if not isinstance(data, list):
        return False
    return not data or is_conversation(data[0])


def is_conversation(item: Any) -> bool:
    """Whether one item of the list is a ChatGPT conversation (an object with a ``mapping``):
    what the first item of a file says of the whole list."""
    return isinstance(item, dict) and "mapping" in item


def parse_chatgpt(data: Any) -> list[ImportedConversation]:
    """The conversations of ``conversations.json`` (parsed JSON)."""
    if not isinstance(data, list):
        raise ImportFormatError("expected a list of conversations", "$")
    return [parse_conversation(item, f"$[{i}]") for i, item in enumerate(data)]


def parse_conversation(item: Any, where: str) -> ImportedConversation:
    """One conversation of the list (parsed JSON), ``where`` its JSON path (``$[12]``)."""
    if not isinstance(item, dict):
        raise ImportFormatError("expected a conversation object", where)
    mapping = item.get("mapping")
    if not isinstance(mapping, dict):
        raise ImportFormatError("expected an object of nodes", f"{where}.mapping")
    source_id = item.get("conversation_id", item.get("id"))
    if not isinstance(source_id, str) or not source_id:
        raise ImportFormatError("expected the conversation's id", f"{where}.id")
    nodes: dict[str, Mapping[str, Any]] = {}
    for key, node in mapping.items():
        if not isinstance(node, dict):
            raise ImportFormatError("expected a node object", _node(where, key))
        parent = node.get("parent")
        if parent is not None and not isinstance(parent, str):
            raise ImportFormatError("expected a string or null", _node(where, key) + ".parent")
        if parent is not None and parent not in mapping:
            raise ImportFormatError(
                f"parent {parent!r} is not a node of the mapping", _node(where, key) + ".parent"
            )
        nodes[key] = node
    kept: dict[str, ImportedMessage | None] = {}
    for key, node in nodes.items():
        message = node.get("message")
        kept[key] = (
            None if message is None else _message(key, message, _node(where, key) + ".message")
        )
    # Each node's nearest kept ancestor (itself if kept), with cycles found on the way.
    anchor: dict[str, str | None] = {}
    for key in nodes:
        _anchor(key, nodes, kept, anchor, where)
    messages = _ordered(nodes, kept, anchor)
    current = item.get("current_node")
    if current is not None and (not isinstance(current, str) or current not in nodes):
        raise ImportFormatError(
            "current_node is not a node of the mapping", f"{where}.current_node"
        )
    model = item.get("default_model_slug")
    return ImportedConversation(
        source=SOURCE,
        source_id=source_id,
        title=_optional_string(item.get("title"), f"{where}.title"),
        created_at=epoch_seconds(item.get("create_time"), f"{where}.create_time"),
        updated_at=epoch_seconds(item.get("update_time"), f"{where}.update_time"),
        messages=messages,
        current_leaf_id=anchor[current] if current is not None else None,
        model=model if isinstance(model, str) else None,
    )


def _anchor(
    key: str,
    nodes: Mapping[str, Mapping[str, Any]],
    kept: Mapping[str, ImportedMessage | None],
    anchor: dict[str, str | None],
    where: str,
) -> str | None:
    # Walks up to a node already resolved, then fills the path in: each node once, no recursion
    # (a long conversation would overflow the stack).
    path: list[str] = []
    on_path: set[str] = set()
    at: str | None = key
    while at is not None and at not in anchor:
        if at in on_path:
            raise ImportFormatError("the mapping's parents form a cycle", _node(where, at))
        on_path.add(at)
        path.append(at)
        at = nodes[at].get("parent")
    found = anchor[at] if at is not None else None
    for node in reversed(path):
        if kept[node] is not None:
            found = node
        anchor[node] = found
    return anchor[key]


def _ordered(
    nodes: Mapping[str, Mapping[str, Any]],
    kept: Mapping[str, ImportedMessage | None],
    anchor: Mapping[str, str | None],
) -> list[ImportedMessage]:
    # Parents before children: each kept message re-parented to its parent's anchor, then the
    # tree walked from its roots, siblings in the mapping's order.
    children: dict[str | None, list[ImportedMessage]] = {}
    for key, node in nodes.items():
        message = kept[key]
        if message is None:
            continue
        parent = node.get("parent")
        parent_id = anchor[parent] if parent is not None else None
        placed = ImportedMessage(**{**_fields(message), "parent_id": parent_id})
        children.setdefault(parent_id, []).append(placed)
    ordered: list[ImportedMessage] = []
    stack = list(reversed(children.get(None, [])))
    while stack:
        message = stack.pop()
        ordered.append(message)
        stack.extend(reversed(children.get(message.id, [])))
    return ordered


def _fields(message: ImportedMessage) -> dict[str, Any]:
    return {name: getattr(message, name) for name in ImportedMessage.__slots__}


def _message(key: str, message: Any, where: str) -> ImportedMessage | None:
    # Named by its node's key (parents name nodes), which ChatGPT makes the message's id too.
    if not isinstance(message, dict):
        raise ImportFormatError("expected a message object or null", where)
    author = message.get("author")
    if not isinstance(author, dict) or not isinstance(author.get("role"), str):
        raise ImportFormatError("expected an author with a role", f"{where}.author")
    role = author["role"]
    content = message.get("content")
    if not isinstance(content, dict):
        raise ImportFormatError("expected a content object", f"{where}.content")
    metadata = message.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ImportFormatError("expected an object", f"{where}.metadata")
    content_type = content.get("content_type")
    if not isinstance(content_type, str):
        raise ImportFormatError("expected a string", f"{where}.content.content_type")
    if role not in ("user", "assistant", "system") or content_type not in _TEXT_TYPES:
        return None  # tool messages, browsing steps, custom instructions: see the rule above
    if message.get("recipient", "all") != "all":
        return None  # a call addressed to a tool
    text = _text(content, f"{where}.content")
    if role == "system" and (
        not text.strip() or metadata.get("is_visually_hidden_from_conversation")
    ):
        return None
    if role == "user" and metadata.get("is_visually_hidden_from_conversation"):
        return None
    created_at = epoch_seconds(message.get("create_time"), f"{where}.create_time")
    updated_at = epoch_seconds(message.get("update_time"), f"{where}.update_time")
    status, finish_reason = _status(message, metadata)
    model = metadata.get("model_slug")
    the_role: Role = role
    return ImportedMessage(
        id=key,
        parent_id=None,  # set from the node's parent once the tree is known
        role=the_role,
        content=text,
        status=status,
        model=model if isinstance(model, str) and role == "assistant" else None,
        created_at=created_at,
        updated_at=updated_at if updated_at is not None else created_at,
        finish_reason=finish_reason,
    )


def _text(content: Mapping[str, Any], where: str) -> str:
    parts = content.get("parts", [])
    if not isinstance(parts, list):
        raise ImportFormatError("expected a list of parts", f"{where}.parts")
    # Strings only: a multimodal message's images and files are objects, not kept.
    return "\n".join(part for part in parts if isinstance(part, str))


def _status(message: Mapping[str, Any], metadata: Mapping[str, Any]) -> tuple[Status, str | None]:
    details = metadata.get("finish_details")
    kind = details.get("type") if isinstance(details, dict) else None
    if kind == "interrupted" or message.get("status") == "in_progress":
        return "interrupted", None
    if kind == "max_tokens":
        return "length", "length"
    return "complete", "stop" if kind == "stop" else None


def _optional_string(value: Any, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ImportFormatError("expected a string or null", where)
    return value


def _node(where: str, key: str) -> str:
    return f"{where}.mapping[{json.dumps(key)}]"
