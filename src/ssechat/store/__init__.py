"""Conversations and their message trees, and the accounts that own them, kept in a database
(a SQLite file, or PostgreSQL shared by several processes), with migrations.

``Store`` (a protocol, in ``store.base``) is the whole interface the rest of ssechat uses;
``open_store`` gives one, a ``SQLStore`` (SQLAlchemy Core on the store's threads). Every
operation a user's request reaches takes the acting user as ``owner``: another user's
conversation or message is not found. ``Store.accounts`` (the ``Accounts`` protocol) keeps the
users, their sessions and API keys. The records it hands out are frozen ``Conversation``,
``Message``, ``Exchange``, ``User``, ``SessionRecord``, ``ApiKey`` and ``ToolServerRow`` values.
It also keeps the admins' MCP server settings (server-wide, not a user's).

The modules, from the bottom: ``models`` (the records), ``schema`` (the tables), ``migrations``,
``sqlite`` and ``postgres`` (all that is specific to each), ``dialects`` (which one a URL
names), ``cursor`` (the page cursor), ``rows`` (rows into records), ``statements`` (the prebuilt
queries), ``threads`` (the writer and reader threads, and the decorators that run a method's
body there), ``base`` (the protocols), ``accounts`` (the
accounts' implementation), ``tool_settings`` (the MCP server settings') and ``sql`` (the
store's).

The package must never import the API, the runs or the providers: ``api.service`` is where they
meet, and runs see the store only through their small ``AnswerStore`` protocol. It never sees a
password, a session token or an API key in clear: the caller hashes them.
"""

from ssechat.store.base import Accounts, Store
from ssechat.store.models import (
    LOCAL_OWNER,
    MESSAGE_STATUSES,
    ROLES,
    TOOL_APPROVALS,
    UNSET,
    USER_ROLES,
    USER_STATUSES,
    ApiKey,
    Conversation,
    Exchange,
    Message,
    SessionRecord,
    ToolServerRow,
    Unset,
    User,
)
from ssechat.store.sql import SQLStore, open_store
from ssechat.store.sqlite import default_database_url

__all__ = [
    "LOCAL_OWNER",
    "MESSAGE_STATUSES",
    "ROLES",
    "TOOL_APPROVALS",
    "UNSET",
    "USER_ROLES",
    "USER_STATUSES",
    "Accounts",
    "ApiKey",
    "Conversation",
    "Exchange",
    "Message",
    "SQLStore",
    "SessionRecord",
    "Store",
    "ToolServerRow",
    "Unset",
    "User",
    "default_database_url",
    "open_store",
]
