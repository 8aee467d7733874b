"""``SQLToolSettings``: the admins' MCP server settings, a part of ``SQLStore`` (mixed into it).

One row per server an admin added (its whole ``mcpServers`` entry in ``config``) or changed (a
server of the settings file: ``config`` NULL, only the overrides: ``enabled``, ``approvals``).
Settings are server-wide, not a user's: no owner. Like the rest of the store, each public method
is one synchronous body run whole on the store's threads; the writes first take the dialect's
invariants lock, so that two processes adding, or overriding, one name at once run one after the
other (the second sees the first's row: a ``ConflictError``, or an update of it) instead of one
of them failing on the primary key.

Entries are stored as given: what a valid entry is (transport, command, URL…) is
``ssechat.tools.config``'s to say, and this module must never check, start or reach an MCP
server, never import ``ssechat.tools``, and never log or put in an error message a value of an
entry (its env and headers hold secrets).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa

from ssechat.errors import ConflictError, InvalidRequestError
from ssechat.store.models import TOOL_APPROVALS, UNSET, ToolServerRow, Unset
from ssechat.store.rows import TOOL_SERVER_FIELDS, tool_server_from_row
from ssechat.store.statements import (
    DELETE_TOOL_SERVER,
    GET_TOOL_SERVER,
    INSERT_TOOL_SERVER,
    LIST_TOOL_SERVERS,
    tool_server_update,
)
from ssechat.store.threads import StoreThreads, reads, writes

__all__ = ["NAME_LENGTH", "SQLToolSettings"]

NAME_LENGTH = 32
"""The longest server name the table holds (``mcp_servers.name``)."""


class SQLToolSettings:
    """The operations on MCP server settings of ``Store`` (documented there), for a class that
    has the store's ``threads`` and ``_clock``: ``SQLStore`` inherits them."""

    threads: StoreThreads
    _clock: Callable[[], float]

    @reads
    def list_tool_servers(self, conn: sa.Connection) -> list[ToolServerRow]:
        rows = [tool_server_from_row(row) for row in conn.execute(LIST_TOOL_SERVERS)]
        # By code point in Python, not the database's collation (PostgreSQL's locale may sort
        # "Web" after "files"): one order on every database. A handful of rows.
        rows.sort(key=lambda row: row.name)
        return rows

    async def add_tool_server(self, name: str, *, config: Mapping[str, Any]) -> ToolServerRow:
        _check_name(name)
        entry = _copy_entry(config)  # taken now: the caller's may change meanwhile
        return await self.threads.write(lambda conn: self._add_tool_server(conn, name, entry))

    def _add_tool_server(
        self, conn: sa.Connection, name: str, config: dict[str, Any]
    ) -> ToolServerRow:
        self.threads.lock_invariants(conn)
        if conn.execute(GET_TOOL_SERVER, {"b_name": name}).first() is not None:
            raise ConflictError(f"an MCP server named {name!r} exists already")
        row = ToolServerRow(name, config, None, {}, self._clock())
        conn.execute(
            INSERT_TOOL_SERVER, {f"b_{field}": getattr(row, field) for field in TOOL_SERVER_FIELDS}
        )
        return _copy_row(row)

    async def update_tool_server(
        self,
        name: str,
        *,
        config: Mapping[str, Any] | Unset | None = UNSET,
        enabled: bool | Unset | None = UNSET,
        approvals: Mapping[str, str] | Unset = UNSET,
    ) -> ToolServerRow:
        _check_name(name)
        changes: dict[str, Any] = {}
        if not isinstance(config, Unset):
            changes["config"] = _copy_entry(config) if config is not None else None
        if not isinstance(enabled, Unset):
            changes["enabled"] = enabled
        if not isinstance(approvals, Unset):
            changes["approvals"] = _check_approvals(approvals)
        return await self.threads.write(lambda conn: self._update_tool_server(conn, name, changes))

    def _update_tool_server(
        self, conn: sa.Connection, name: str, changes: dict[str, Any]
    ) -> ToolServerRow:
        # An upsert in two portable steps, one at a time under the invariants lock: a server
        # of the settings file gets its first override row here.
        self.threads.lock_invariants(conn)
        found = conn.execute(GET_TOOL_SERVER, {"b_name": name}).first()
        now = self._clock()
        if found is None:
            row = ToolServerRow(
                name,
                changes.get("config"),
                changes.get("enabled"),
                changes.get("approvals", {}),
                now,
            )
            params = {f"b_{field}": getattr(row, field) for field in TOOL_SERVER_FIELDS}
            conn.execute(INSERT_TOOL_SERVER, params)
            return _copy_row(row)
        changes = {**changes, "updated_at": now}
        params = {f"b_{field}": value for field, value in changes.items()}
        params["b_name"] = name
        conn.execute(tool_server_update(tuple(changes)), params)
        before = tool_server_from_row(found)
        row = ToolServerRow(
            name,
            changes.get("config", before.config),
            changes.get("enabled", before.enabled),
            changes.get("approvals", before.approvals),
            now,
        )
        return _copy_row(row)

    @writes
    def delete_tool_server(self, conn: sa.Connection, name: str) -> bool:
        self.threads.lock_invariants(conn)
        return bool(conn.execute(DELETE_TOOL_SERVER, {"b_name": name}).rowcount)


def _check_name(name: str) -> None:
    # The column's limit (names are checked in full by ssechat.tools.config): a name the table
    # cannot hold is the caller's error, not a database one.
    if not name or len(name) > NAME_LENGTH:
        raise InvalidRequestError(f"an MCP server's name must be 1 to {NAME_LENGTH} characters")


def _check_approvals(approvals: Mapping[str, str]) -> dict[str, str]:
    for tool, mode in approvals.items():
        if mode not in TOOL_APPROVALS:
            raise InvalidRequestError(
                f"the approval of tool {tool!r} must be one of {', '.join(TOOL_APPROVALS)}"
            )
    return dict(approvals)


def _copy_entry(config: Mapping[str, Any]) -> dict[str, Any]:
    # Deep: an entry nests lists and dicts (args, env, headers) that the caller may change
    # while the write waits for its thread. Admin writes are rare: the copy costs nothing.
    return copy.deepcopy(dict(config))


def _copy_row(row: ToolServerRow) -> ToolServerRow:
    # The row handed back shares no dict with what was written or with the caller's values.
    return ToolServerRow(
        row.name,
        copy.deepcopy(row.config),
        row.enabled,
        dict(row.approvals),
        row.updated_at,
    )
