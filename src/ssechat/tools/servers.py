"""The running MCP servers: connections, supervision, tool lists and tool calls.

    MCPServers.apply(specs) ──▶ one supervisor task per enabled server (asyncio task)
        │  connect (stdio child or Streamable HTTP, the ``mcp`` SDK's ``Client``), within
        │  ``connect_timeout``; list the tools (every page) → status "ready"
        │  watch: the transport's end (a stdio child's output closed), a failed check
        │  (``probe_interval``: the tools listed again, which also picks up a changed list),
        │  ``notifications/tools/list_changed`` (listed again at once)
        │  ended → status "error" (what happened, in words), every call in flight answered with
        │  an error at once, reconnect after 1 s, doubling to 30 s, while enabled
        ▼
    MCPServers.call(server, tool, arguments, timeout) ── from any task, through the session the
        supervisor owns (an anyio context is entered and left by one task: the supervisor)

A tool or server failure is never raised from ``call``: it is an error ``ToolOutcome`` the model
can read. A cancelled caller's ``CancelledError`` propagates, and the SDK tells the server
(``notifications/cancelled``, or the HTTP request closed).

This module must never log, raise or answer an env or header value (or a URL's password: it is
sent as Basic auth, never in the URL the SDK logs), never let one server's failure reach another
server or the chat, and never import the store, the runs or the API.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass
from typing import Any, Literal, TextIO
from urllib.parse import unquote, urlsplit

import anyio
import anyio.lowlevel
import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.session import IncomingMessage, MessageHandlerFnT
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, Implementation, ToolListChangedNotification

from .config import ServerSpec, public_url
from .results import ToolOutcome, cap, outcome_of
from .watch import Ended, WatchedTransport, describe

__all__ = ["MCPServers", "ServerState", "Status", "ToolInfo", "ToolOutcome"]

log = logging.getLogger(__name__)

Status = Literal["off", "starting", "ready", "error"]

# A server whose tools list never ends cannot hang a connect.
_MAX_TOOL_PAGES = 100
_CLIENT_INFO = Implementation(name="ssechat", version="1")


@dataclass(frozen=True, slots=True)
class ToolInfo:
    """One tool of one server, as listed."""

    server: str
    name: str
    description: str
    input_schema: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ServerState:
    """What an admin (and the tools picker) sees of a server."""

    name: str
    status: Status
    error: str | None
    tools: tuple[ToolInfo, ...]


class _Server:
    """One configured server and, while it is enabled, its supervisor's connection."""

    def __init__(self, spec: ServerSpec) -> None:
        self.spec = spec
        self.status: Status = "starting" if spec.enabled else "off"
        self.error: str | None = None
        self.tools: tuple[ToolInfo, ...] = ()
        self.client: Client | None = None
        # Each call in flight, so that a connection's end answers them at once.
        self.calls: set[anyio.CancelScope] = set()
        self.end_reason = "the server stopped"
        self.stopped = False
        # The supervisor runs inside this scope: cancelling it stops the server.
        self.scope = anyio.CancelScope()
        self.task: asyncio.Task[None] | None = None
        self.relist = anyio.Event()

    def state(self) -> ServerState:
        return ServerState(self.spec.name, self.status, self.error, self.tools)

    def end_calls(self, reason: str) -> None:
        self.end_reason = reason
        for scope in self.calls:
            scope.cancel()


class MCPServers:
    """The MCP servers this process runs, kept as ``apply`` was last told."""

    def __init__(
        self,
        *,
        connect_timeout: float = 20.0,
        probe_interval: float = 15.0,
        backoff: tuple[float, float] = (1.0, 30.0),
        on_change: Callable[[ServerState], None] | None = None,
        errlog: TextIO | None = None,
    ) -> None:
        self._connect_timeout = connect_timeout
        self._probe_interval = probe_interval
        self._backoff = backoff
        self._on_change = on_change
        # Where stdio servers' stderr goes (their logs); None: this process's stderr.
        self._errlog = errlog
        self._servers: dict[str, _Server] = {}
        self._stopping: set[asyncio.Task[None]] = set()

    # -- configuration --------------------------------------------------------------------------

    async def apply(self, specs: Iterable[ServerSpec]) -> None:
        """Make the running servers match ``specs``: start new enabled ones, stop removed and
        disabled ones, restart those whose connection changed. Returns at once: connecting and
        stopping go on in the background."""
        wanted = {spec.name: spec for spec in specs}
        for name in [name for name in self._servers if name not in wanted]:
            self._stop(self._servers.pop(name), "the server was removed")
        for name, spec in wanted.items():
            current = self._servers.get(name)
            if (
                current is not None
                and current.spec.enabled == spec.enabled
                and (not spec.enabled or current.spec.connection() == spec.connection())
            ):
                current.spec = spec  # approvals, timeout: no restart
                continue
            previous = None
            if current is not None:
                reason = "the server was turned off" if not spec.enabled else "the server restarted"
                previous = self._stop(current, reason)
            server = self._servers[name] = _Server(spec)
            if spec.enabled:
                self._start(server, after=previous)
            self._changed(server)
        await anyio.lowlevel.checkpoint()

    def spec(self, name: str) -> ServerSpec | None:
        server = self._servers.get(name)
        return server.spec if server is not None else None

    def state(self, name: str) -> ServerState | None:
        server = self._servers.get(name)
        return server.state() if server is not None else None

    def states(self) -> list[ServerState]:
        return [server.state() for server in self._servers.values()]

    def tools(self) -> list[ToolInfo]:
        """The tools of the servers that are ready."""
        return [
            tool
            for server in self._servers.values()
            if server.status == "ready"
            for tool in server.tools
        ]

    async def close(self) -> None:
        """Stop every server and wait until they are gone (stdio children ended)."""
        for server in self._servers.values():
            self._stop(server, "ssechat is shutting down")
        self._servers.clear()
        if self._stopping:
            await asyncio.wait(set(self._stopping))

    # -- calls ----------------------------------------------------------------------------------

    # The limit is the tool's (an error outcome when it passes), not a scope of the caller's.
    async def call(
        self,
        server: str,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        timeout: float,  # noqa: ASYNC109
    ) -> ToolOutcome:
        """Call one tool. ``timeout`` is the limit unless the server's entry sets its own.
        Never raises for a tool or server failure (an error outcome says what happened);
        the caller's cancellation propagates, and the server is told."""
        entry = self._servers.get(server)
        if entry is None:
            return _error(f"The tool server {server!r} is not configured.")
        client = entry.client
        if not entry.spec.enabled:
            return _error(f"The tool server {server!r} is turned off.")
        if client is None or entry.status != "ready":
            why = f": {entry.error}" if entry.error else ""
            return _error(f"The tool server {server!r} is not running{why}.")
        limit = entry.spec.timeout if entry.spec.timeout is not None else timeout
        scope = anyio.CancelScope()
        entry.calls.add(scope)
        try:
            with scope:
                with anyio.move_on_after(limit) as timer:
                    result = await client.call_tool(tool, dict(arguments))
                if timer.cancelled_caught:
                    return _error(f"The tool {tool!r} did not answer within {limit:g} s.")
                return outcome_of(result)
            return _error(
                f"The tool server {server!r} stopped during the call: {entry.end_reason}."
            )
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED:
                return _error(
                    f"The tool server {server!r} closed the connection during the call"
                    " (it may have crashed)."
                )
            return _error(f"The tool server {server!r} answered with an error: {exc.message}")
        except Exception as exc:
            return _error(f"The call to {tool!r} failed: {describe(exc)}.")
        finally:
            entry.calls.discard(scope)

    # -- supervision ----------------------------------------------------------------------------

    def _start(self, server: _Server, *, after: asyncio.Task[None] | None) -> None:
        server.task = asyncio.create_task(
            self._supervise(server, after), name=f"mcp-server:{server.spec.name}"
        )

    def _stop(self, server: _Server, reason: str) -> asyncio.Task[None] | None:
        server.stopped = True
        server.end_calls(reason)
        server.scope.cancel()
        task = server.task
        if task is None or task.done():
            return None
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)
        return task

    def _set(self, server: _Server, status: Status, error: str | None) -> None:
        if server.stopped or (server.status, server.error) == (status, error):
            return  # a retry that fails the same way again is not news (nor a log line)
        server.status, server.error = status, error
        if status == "error":
            log.warning("MCP server %r: %s", server.spec.name, error)
        else:
            log.info("MCP server %r: %s", server.spec.name, status)
        self._changed(server)

    def _changed(self, server: _Server) -> None:
        if self._on_change is None or server.stopped:
            return
        try:
            self._on_change(server.state())
        except Exception:
            # A listener's bug must not take a server's connection down with it.
            log.exception("MCP server %r: the change listener failed", server.spec.name)

    async def _supervise(self, server: _Server, after: asyncio.Task[None] | None) -> None:
        first, most = self._backoff
        delay = first
        with server.scope:
            if after is not None:
                # A restarted stdio server: the old child is gone before the new one starts.
                await asyncio.wait({after})
            while True:
                if await self._connect_once(server):
                    delay = first
                await anyio.sleep(delay)
                delay = min(delay * 2, most)
        server.client = None

    async def _connect_once(self, server: _Server) -> bool:
        """One connection, from connect to its end; returns whether it got ready."""
        spec = server.spec
        ended = Ended()
        ready = False
        reason = "the connection ended"
        try:
            # The deadline covers connecting only: it is lifted once the server is ready (a
            # scope of its own would have to end while the SDK's task groups are still open).
            with anyio.CancelScope(deadline=anyio.current_time() + self._connect_timeout) as life:
                async with AsyncExitStack() as stack:
                    transport = await self._transport(spec, stack, ended)
                    client = await stack.enter_async_context(
                        Client(
                            transport,
                            cache=None,
                            client_info=_CLIENT_INFO,
                            message_handler=self._message_handler(server),
                        )
                    )
                    server.tools = await _list_tools(spec.name, client)
                    life.deadline = math.inf
                    server.client, ready = client, True
                    self._set(server, "ready", None)
                    reason = await self._watch(server, client, ended)
            if life.cancelled_caught and not ready:
                reason = f"the server did not finish connecting within {self._connect_timeout:g} s"
        except Exception as exc:
            reason = describe(exc, spec)
        finally:
            server.client = None
            server.end_calls(reason)
        self._set(server, "error", reason)
        return ready

    async def _transport(
        self, spec: ServerSpec, stack: AsyncExitStack, ended: Ended
    ) -> WatchedTransport:
        inner: AbstractAsyncContextManager[Any]
        if spec.transport == "stdio":
            assert spec.command is not None
            params = StdioServerParameters(
                command=spec.command, args=list(spec.args), env=dict(spec.env), cwd=spec.cwd
            )
            # The SDK merges env over its default safe environment (PATH, HOME, …), never over
            # ssechat's own (which holds the provider key).
            inner = stdio_client(params, errlog=self._errlog or sys.stderr)
            return WatchedTransport(inner, ended, "the server exited")
        assert spec.url is not None
        url, auth = _split_credentials(spec.url)
        http = await stack.enter_async_context(
            httpx2.AsyncClient(
                headers=dict(spec.headers),
                auth=auth,
                # No read limit of the client's own: a slow tool's answer is bounded by the
                # call's timeout, a dead server found by the checks.
                timeout=httpx2.Timeout(30.0, read=None),
            )
        )
        inner = streamable_http_client(url, http_client=http)
        return WatchedTransport(inner, ended, "the server closed the connection")

    def _message_handler(self, server: _Server) -> MessageHandlerFnT:
        async def handle(message: IncomingMessage) -> None:
            if isinstance(message, ToolListChangedNotification):
                server.relist.set()
            await anyio.lowlevel.checkpoint()

        return handle

    async def _watch(self, server: _Server, client: Client, ended: Ended) -> str:
        """Wait for the connection's end, checking it meanwhile; returns what ended it."""

        async def check() -> None:
            while True:
                with anyio.move_on_after(self._probe_interval):
                    await server.relist.wait()
                server.relist = anyio.Event()
                try:
                    with anyio.fail_after(self._connect_timeout):
                        tools = await _list_tools(server.spec.name, client)
                except TimeoutError:
                    limit = self._connect_timeout
                    ended.set(f"the server did not answer a check within {limit:g} s")
                    return
                except Exception as exc:
                    ended.set(describe(exc, server.spec))
                    return
                if tools != server.tools:
                    server.tools = tools
                    self._changed(server)

        async with anyio.create_task_group() as group:
            group.start_soon(check)
            await ended.wait()
            group.cancel_scope.cancel()
        return ended.reason


async def _list_tools(server: str, client: Client) -> tuple[ToolInfo, ...]:
    tools: list[ToolInfo] = []
    cursor: str | None = None
    for _ in range(_MAX_TOOL_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools.extend(
            ToolInfo(server, tool.name, tool.description or "", dict(tool.input_schema))
            for tool in page.tools
        )
        cursor = page.next_cursor
        if not cursor:
            break
    return tuple(tools)


def _split_credentials(url: str) -> tuple[str, httpx2.BasicAuth | None]:
    """A URL's ``user:password@`` as Basic auth, so that the URL the SDK logs has none."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    auth = httpx2.BasicAuth(unquote(parts.username or ""), unquote(parts.password or ""))
    return public_url(url), auth


def _error(message: str) -> ToolOutcome:
    return ToolOutcome(cap(message), True)
