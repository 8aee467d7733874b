"""The tool service: which MCP servers run, which tools a conversation offers its model, and the
admins' changes to the servers.

The servers come from two places: the settings file (``SSECHAT_MCP_CONFIG``, read at start;
admins turn its servers on and off and set their tools' approval, stored as overrides) and the
admins' Tools page (whole entries, stored). Every process runs its own connections to the
enabled servers (``ssechat.tools.MCPServers``); a change is saved, applied here, and announced
to the other processes (``tools-changed``), which read the settings again and apply them.

A tool's approval: ``always`` if an admin set it so, or the file's ``alwaysAllow`` names it and
no admin set it back to ``ask``; ``ask`` otherwise (the default, as the issue asks).

Like the chat service, it speaks no HTTP: it takes values, answers the API's models and raises
``ssechat.errors``. Secrets stay in ``ServerSpec`` (the servers' env and headers): the models it
answers carry their names only.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from ssechat.api.tool_schemas import (
    Approval,
    McpServer,
    McpServerList,
    ToolInfo,
    ToolList,
)
from ssechat.auth import Principal
from ssechat.config import Settings
from ssechat.errors import ConflictError, ForbiddenError, InvalidRequestError, NotFoundError
from ssechat.runs.tools import ToolOffer
from ssechat.store import Store
from ssechat.tools import (
    ConfigError,
    MCPServers,
    ServerSpec,
    ServerState,
    function_name,
    parse_entry,
    parse_file,
)

__all__ = ["ToolService"]

logger = logging.getLogger(__name__)

Publish = Callable[[], Awaitable[None]]


class ToolService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        file_specs: Sequence[ServerSpec],
        servers: MCPServers,
    ) -> None:
        self.settings = settings
        self.store = store
        self.servers = servers
        self._file = {spec.name: spec for spec in file_specs}
        self._specs: dict[str, ServerSpec] = {}
        self._approvals: dict[str, dict[str, str]] = {}
        self._publish: Publish | None = None

    @classmethod
    async def open(cls, settings: Settings, store: Store) -> ToolService:
        """Read the settings file (a ``ConfigError`` says what is wrong in it) and the stored
        settings, and start the enabled servers (in the background: chat does not wait)."""
        specs = parse_file(settings.mcp_config) if settings.mcp_config else []
        service = cls(settings, store, specs, MCPServers())
        await service.reload()
        return service

    def share_changes(self, publish: Publish) -> None:
        """With several processes: how to tell the others that the settings changed."""
        self._publish = publish

    async def reload(self) -> None:
        """Read the stored settings and apply them: start, stop or restart servers."""
        rows = await self.store.list_tool_servers()
        specs = dict(self._file)
        approvals: dict[str, dict[str, str]] = {}
        for row in rows:
            base = specs.get(row.name)
            if row.config is not None and base is None:
                try:
                    base = parse_entry(row.name, row.config, source="admin")
                except ConfigError:
                    logger.exception("the stored MCP server %r is not valid; skipped", row.name)
                    continue
            if base is None:
                continue  # overrides of a server no longer in the file
            if row.enabled is not None:
                base = _with_enabled(base, row.enabled)
            specs[row.name] = base
            approvals[row.name] = dict(row.approvals)
        self._specs, self._approvals = specs, approvals
        await self.servers.apply(list(specs.values()))

    async def close(self) -> None:
        await self.servers.close()

    # --- what users see ---------------------------------------------------------------------

    def _state(self, name: str) -> ServerState:
        state = self.servers.state(name)
        return state if state is not None else ServerState(name, "off", None, ())

    def approval(self, server: str, tool: str) -> Approval:
        chosen = self._approvals.get(server, {}).get(tool)
        if chosen in ("ask", "always"):
            return "always" if chosen == "always" else "ask"
        spec = self._specs.get(server)
        return "always" if spec is not None and tool in spec.always_allow else "ask"

    def tool_list(self) -> ToolList:
        """The tools of the enabled servers, for a conversation's picker."""
        tools: list[ToolInfo] = []
        for name, spec in sorted(self._specs.items()):
            if not spec.enabled:
                continue
            state = self._state(name)
            for tool in state.tools:
                tools.append(
                    ToolInfo(
                        key=f"{name}/{tool.name}",
                        server=name,
                        tool=tool.name,
                        description=tool.description,
                        approval=self.approval(name, tool.name),
                        available=state.status == "ready",
                    )
                )
        return ToolList(tools=tools)

    def offers(self, keys: Sequence[str]) -> tuple[ToolOffer, ...]:
        """What a run may call, of the tools a conversation chose: those of running servers
        (a tool whose server is down is left out: the model is not offered what cannot run)."""
        offers: list[ToolOffer] = []
        taken: set[str] = set()
        for key in keys:
            server, _, tool_name = key.partition("/")
            spec = self._specs.get(server)
            if spec is None or not spec.enabled:
                continue
            state = self._state(server)
            tool = next((t for t in state.tools if t.name == tool_name), None)
            if state.status != "ready" or tool is None:
                continue
            function = function_name(server, tool_name)
            n = 2
            while function in taken:  # two keys that read alike after the name is made safe
                suffix = f"_{n}"
                function = function_name(server, tool_name)[: 64 - len(suffix)] + suffix
                n += 1
            taken.add(function)
            definition = {
                "type": "function",
                "function": {
                    "name": function,
                    "description": tool.description,
                    "parameters": dict(tool.input_schema) or {"type": "object"},
                },
            }
            offers.append(
                ToolOffer(
                    function=function,
                    server=server,
                    tool=tool_name,
                    approval=self.approval(server, tool_name),
                    definition=definition,
                    timeout=spec.timeout,
                )
            )
        return tuple(offers)

    # --- what admins do ---------------------------------------------------------------------

    async def servers_list(self, principal: Principal) -> McpServerList:
        _check_admin(principal)
        return McpServerList(servers=[self._server(name) for name in sorted(self._specs)])

    async def add_server(
        self, principal: Principal, name: str, config: Mapping[str, Any]
    ) -> McpServer:
        _check_admin(principal)
        if name in self._specs or name in self._file:
            raise ConflictError(f"an MCP server named {name!r} exists already")
        _check_entry(name, config)
        await self.store.add_tool_server(name, config=dict(config))
        await self._changed()
        return self._server(name)

    async def update_server(
        self,
        principal: Principal,
        name: str,
        *,
        enabled: bool | None,
        approvals: Mapping[str, str] | None,
        config: Mapping[str, Any] | None,
    ) -> McpServer:
        _check_admin(principal)
        if name not in self._specs:
            raise NotFoundError(f"no MCP server named {name!r}")
        changes: dict[str, Any] = {}
        if config is not None:
            if name in self._file:
                raise ConflictError(
                    f"{name!r} is defined in the settings file (SSECHAT_MCP_CONFIG): edit it there"
                )
            _check_entry(name, config)
            changes["config"] = dict(config)
        if enabled is not None:
            changes["enabled"] = enabled
        if approvals is not None:
            changes["approvals"] = dict(approvals)
        if changes:
            await self.store.update_tool_server(name, **changes)
            await self._changed()
        return self._server(name)

    async def delete_server(self, principal: Principal, name: str) -> None:
        _check_admin(principal)
        if name in self._file:
            raise ConflictError(
                f"{name!r} is defined in the settings file (SSECHAT_MCP_CONFIG): turn it off, "
                "or remove it there"
            )
        if not await self.store.delete_tool_server(name):
            raise NotFoundError(f"no MCP server named {name!r}")
        await self._changed()

    async def _changed(self) -> None:
        await self.reload()
        if self._publish is not None:
            try:
                await self._publish()
            except Exception:  # Redis down: the others see it at their next change or start
                logger.warning("could not tell the other processes that the MCP servers changed")

    def _server(self, name: str) -> McpServer:
        spec = self._specs[name]
        state = self._state(name)
        approvals = self._approvals.get(name, {})
        return McpServer.model_validate(
            {
                **spec.public(),
                "status": state.status,
                "error": state.error,
                "approvals": {k: v for k, v in approvals.items() if v in ("ask", "always")},
                "tools": [
                    {
                        "name": tool.name,
                        "description": tool.description,
                        "approval": self.approval(name, tool.name),
                        "input_schema": dict(tool.input_schema),
                    }
                    for tool in state.tools
                ],
            }
        )


def _with_enabled(spec: ServerSpec, enabled: bool) -> ServerSpec:
    return dataclasses.replace(spec, enabled=enabled)


def _check_entry(name: str, config: Mapping[str, Any]) -> None:
    try:
        parse_entry(name, config, source="admin")
    except ConfigError as exc:
        raise InvalidRequestError(str(exc)) from None


def _check_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise ForbiddenError("only admins manage MCP servers")
