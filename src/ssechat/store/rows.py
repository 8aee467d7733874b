"""Row mapping: the columns a record is selected by, in its fields' order, and rows into records.

A query selects ``CONVERSATION_COLUMNS`` or ``MESSAGE_COLUMNS``, so a row maps onto a
``Conversation`` or ``Message`` by position, with no name lookups (the branch and the message
list map many rows per call); likewise ``USER_COLUMNS``, ``SESSION_COLUMNS`` and
``API_KEY_COLUMNS`` (a session's or key's check selects its user's columns first, then its
own), and ``TOOL_SERVER_COLUMNS``. JSON columns come back as the JSON held them (a message's
tool calls keep their nested values). This module must never run SQL, hold a query, or build a
record any other way than from such a row.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ssechat.store import schema
from ssechat.store.models import ApiKey, Conversation, Message, SessionRecord, ToolServerRow, User

__all__ = [
    "API_KEY_COLUMNS",
    "API_KEY_FIELDS",
    "CONVERSATION_COLUMNS",
    "CONVERSATION_FIELDS",
    "MESSAGE_COLUMNS",
    "MESSAGE_FIELDS",
    "MESSAGE_INSERT_FIELDS",
    "SESSION_COLUMNS",
    "SESSION_FIELDS",
    "TOOL_SERVER_COLUMNS",
    "TOOL_SERVER_FIELDS",
    "USER_COLUMNS",
    "USER_FIELDS",
    "api_key_from_row",
    "conversation_from_row",
    "message_from_row",
    "session_from_row",
    "tool_server_from_row",
    "user_from_row",
]

CONVERSATION_FIELDS = tuple(field.name for field in dataclasses.fields(Conversation))
MESSAGE_FIELDS = tuple(field.name for field in dataclasses.fields(Message))
# What a new message is inserted with: a new message has no error, reasoning or tool calls yet
# (their columns default to NULL), and a start's insert binds no more than it needs.
MESSAGE_INSERT_FIELDS = tuple(
    name
    for name in MESSAGE_FIELDS
    if name not in ("error", "reasoning", "reasoning_seconds", "tool_calls")
)
# Selected in the order of the records' fields, so a row maps onto one by position.
CONVERSATION_COLUMNS = [schema.conversations.c[name] for name in CONVERSATION_FIELDS]
MESSAGE_COLUMNS = [schema.messages.c[name] for name in MESSAGE_FIELDS]

USER_FIELDS = tuple(field.name for field in dataclasses.fields(User))
SESSION_FIELDS = tuple(field.name for field in dataclasses.fields(SessionRecord))
API_KEY_FIELDS = tuple(field.name for field in dataclasses.fields(ApiKey))
USER_COLUMNS = [schema.users.c[name] for name in USER_FIELDS]
SESSION_COLUMNS = [schema.sessions.c[name] for name in SESSION_FIELDS]
API_KEY_COLUMNS = [schema.api_keys.c[name] for name in API_KEY_FIELDS]
TOOL_SERVER_FIELDS = tuple(field.name for field in dataclasses.fields(ToolServerRow))
TOOL_SERVER_COLUMNS = [schema.mcp_servers.c[name] for name in TOOL_SERVER_FIELDS]


def conversation_from_row(row: Sequence[Any]) -> Conversation:
    # Columns in the order of the fields: see CONVERSATION_COLUMNS.
    tools = row[8]
    return Conversation(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        float(row[5]),
        float(row[6]),
        row[7],
        tuple(tools) if tools else (),
    )


def message_from_row(row: Sequence[Any]) -> Message:
    # Columns in the order of the fields: see MESSAGE_COLUMNS.
    usage, reasoning_seconds, tool_calls = row[8], row[13], row[14]
    return Message(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        {str(k): int(v) for k, v in usage.items()} if usage is not None else None,
        float(row[9]),
        float(row[10]),
        row[11],
        row[12],
        float(reasoning_seconds) if reasoning_seconds is not None else None,
        # As the JSON holds them (nested results, int offsets, nulls): freshly decoded per row,
        # so no copy is needed.
        list(tool_calls) if tool_calls is not None else None,
    )


def user_from_row(row: Sequence[Any]) -> User:
    # Columns in the order of the fields: see USER_COLUMNS.
    return User(row[0], row[1], row[2], row[3], row[4], float(row[5]), float(row[6]))


def session_from_row(row: Sequence[Any]) -> SessionRecord:
    # Columns in the order of the fields: see SESSION_COLUMNS.
    return SessionRecord(row[0], row[1], float(row[2]), float(row[3]))


def api_key_from_row(row: Sequence[Any]) -> ApiKey:
    # Columns in the order of the fields: see API_KEY_COLUMNS.
    last_used_at = row[5]
    return ApiKey(
        row[0],
        row[1],
        row[2],
        row[3],
        float(row[4]),
        float(last_used_at) if last_used_at is not None else None,
    )


def tool_server_from_row(row: Sequence[Any]) -> ToolServerRow:
    # Columns in the order of the fields: see TOOL_SERVER_COLUMNS.
    enabled = row[2]
    return ToolServerRow(
        row[0],
        row[1],
        bool(enabled) if enabled is not None else None,
        {str(k): str(v) for k, v in (row[3] or {}).items()},
        float(row[4]),
    )
