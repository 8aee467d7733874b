"""Conversations and their message trees, kept in a database (SQLite today), with migrations.

``Store`` (a protocol, in ``store.base``) is the whole interface the rest of ssechat uses;
``open_store`` gives one, a ``SQLStore`` (SQLAlchemy Core on the store's threads). The records it
hands out are frozen ``Conversation``, ``Message`` and ``Exchange`` values.

The modules, from the bottom: ``models`` (the records), ``schema`` (the tables), ``migrations``,
``sqlite`` (all that is SQLite-specific), ``cursor`` (the page cursor), ``rows`` (rows into
records), ``statements`` (the prebuilt queries), ``threads`` (the writer and reader threads),
``base`` (the protocol) and ``sql`` (the implementation).

The package must never import the API, the runs or the providers: ``api.service`` is where they
meet, and runs see the store only through their small ``AnswerStore`` protocol.
"""

from ssechat.store.base import Store
from ssechat.store.models import (
    MESSAGE_STATUSES,
    ROLES,
    UNSET,
    Conversation,
    Exchange,
    Message,
    Unset,
)
from ssechat.store.sql import SQLStore, open_store
from ssechat.store.sqlite import default_database_url

__all__ = [
    "MESSAGE_STATUSES",
    "ROLES",
    "UNSET",
    "Conversation",
    "Exchange",
    "Message",
    "SQLStore",
    "Store",
    "Unset",
    "default_database_url",
    "open_store",
]
