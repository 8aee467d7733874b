"""Row mapping: the columns a record is selected by, in its fields' order, and rows into records.

A query selects ``CONVERSATION_COLUMNS`` or ``MESSAGE_COLUMNS``, so a row maps onto a
``Conversation`` or ``Message`` by position, with no name lookups (the branch and the message
list map many rows per call). This module must never run SQL, hold a query, or build a record
any other way than from such a row.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ssechat.store import schema
from ssechat.store.models import Conversation, Message

__all__ = [
    "CONVERSATION_COLUMNS",
    "CONVERSATION_FIELDS",
    "MESSAGE_COLUMNS",
    "MESSAGE_FIELDS",
    "conversation_from_row",
    "message_from_row",
]

CONVERSATION_FIELDS = tuple(field.name for field in dataclasses.fields(Conversation))
MESSAGE_FIELDS = tuple(field.name for field in dataclasses.fields(Message))
# Selected in the order of the records' fields, so a row maps onto one by position.
CONVERSATION_COLUMNS = [schema.conversations.c[name] for name in CONVERSATION_FIELDS]
MESSAGE_COLUMNS = [schema.messages.c[name] for name in MESSAGE_FIELDS]


def conversation_from_row(row: Sequence[Any]) -> Conversation:
    # Columns in the order of the fields: see CONVERSATION_COLUMNS.
    return Conversation(
        row[0], row[1], row[2], row[3], row[4], float(row[5]), float(row[6]), row[7]
    )


def message_from_row(row: Sequence[Any]) -> Message:
    # Columns in the order of the fields: see MESSAGE_COLUMNS.
    usage = row[8]
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
    )
