"""Conversations and their message trees, kept in SQLite (WAL, one writer), with migrations.

``Store`` is the whole interface the rest of ssechat uses; the records it hands out are frozen
``Conversation``, ``Message`` and ``Exchange`` values. The package must never import the API, the
runs or the providers: ``api.service`` is where they meet, and runs see the store only through
their small ``AnswerStore`` protocol.
"""

from ssechat.store.models import (
    MESSAGE_STATUSES,
    ROLES,
    UNSET,
    Conversation,
    Exchange,
    Message,
    Unset,
)
from ssechat.store.sql import Store
from ssechat.store.sqlite import default_database_url

__all__ = [
    "MESSAGE_STATUSES",
    "ROLES",
    "UNSET",
    "Conversation",
    "Exchange",
    "Message",
    "Store",
    "Unset",
    "default_database_url",
]
