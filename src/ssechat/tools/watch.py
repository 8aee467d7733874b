"""How a connection to an MCP server is seen to end, and how its failures are said.

``WatchedTransport`` wraps an SDK transport and marks an ``Ended`` when the server's side of it
closes (a stdio child's output ends when the child exits): the SDK answers the requests in flight
with "Connection closed" but tells its owner nothing, and the supervisor needs to know at once.
``describe`` turns an exception from the SDK, httpx2 or a spawn into a short sentence.

This module must never put an exception's own text in a sentence when that text could carry a
secret (a header, an env value, a URL's query): only known, safe parts are used.
"""

from __future__ import annotations

import socket
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any

import anyio
import httpx2
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED

from .config import ServerSpec

__all__ = ["Ended", "WatchedTransport", "describe"]

# A server's own message is shown, but not at any length.
_MAX_SERVER_TEXT = 200


class Ended:
    """The end of one connection, with the first reason given for it."""

    def __init__(self) -> None:
        self._event = anyio.Event()
        self.reason = ""

    def set(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        await self._event.wait()


class _WatchedReadStream:
    """The transport's read stream; its end (EOF, or closed under the reader) marks ``ended``."""

    def __init__(self, inner: Any, ended: Ended, reason: str) -> None:
        self._inner = inner
        self._ended = ended
        self._reason = reason

    @property
    def last_context(self) -> Any:
        # The dispatcher reads the sender's contextvars snapshot off the stream, when it has one.
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> Any:
        try:
            return await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            self._ended.set(self._reason)
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> _WatchedReadStream:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> _WatchedReadStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class WatchedTransport:
    """An SDK transport (an async context manager of read and write streams), watched."""

    def __init__(self, inner: AbstractAsyncContextManager[Any], ended: Ended, reason: str) -> None:
        self._inner = inner
        self._ended = ended
        self._reason = reason

    async def __aenter__(self) -> tuple[Any, Any]:
        read_stream, write_stream = await self._inner.__aenter__()
        return _WatchedReadStream(read_stream, self._ended, self._reason), write_stream

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        return await self._inner.__aexit__(exc_type, exc_val, exc_tb)


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        found: list[BaseException] = []
        for inner in exc.exceptions:
            found.extend(_leaves(inner))
        return found
    return [exc]


def _first(exc: BaseException) -> BaseException:
    """The exception that says most: a group's first leaf that is not a cancellation."""
    leaves = _leaves(exc)
    for leaf in leaves:
        if not isinstance(leaf, anyio.get_cancelled_exc_class()):
            return leaf
    return leaves[0] if leaves else exc


def _connect_detail(exc: BaseException) -> str:
    """Why a connect failed, from the OS error underneath httpx2's (its text is not used)."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ConnectionRefusedError):
            return " (connection refused)"
        if isinstance(cause, socket.gaierror):
            return " (the host name was not found)"
        if isinstance(cause, OSError) and cause.strerror:
            return f" ({cause.strerror})"
        cause = cause.__cause__ or cause.__context__
    return ""


def describe(exc: BaseException, spec: ServerSpec | None = None) -> str:
    """A short sentence for what went wrong, without a secret."""
    exc = _first(exc)
    stdio = spec is not None and spec.transport == "stdio"
    if isinstance(exc, MCPError):
        if exc.code == CONNECTION_CLOSED:
            return "the server exited" if stdio else "the server closed the connection"
        return f"the server answered with an error: {exc.message[:_MAX_SERVER_TEXT]}"
    if isinstance(exc, httpx2.HTTPStatusError):
        return f"the server answered HTTP {exc.response.status_code}"
    if isinstance(exc, httpx2.ConnectTimeout):
        return "could not connect to the server (timed out)"
    if isinstance(exc, httpx2.ConnectError):
        return "could not connect to the server" + _connect_detail(exc)
    if isinstance(exc, httpx2.RemoteProtocolError | httpx2.ReadError):
        return "the server closed the connection"
    if isinstance(exc, httpx2.TimeoutException):
        return "the server did not answer in time"
    if isinstance(exc, TimeoutError):
        return "the server did not answer in time"
    if isinstance(exc, FileNotFoundError) and stdio and spec is not None:
        return f"could not start the command {spec.command!r}: not found"
    if isinstance(exc, PermissionError) and stdio and spec is not None:
        return f"could not start the command {spec.command!r}: permission denied"
    if isinstance(exc, ConnectionRefusedError):
        return "could not connect to the server (connection refused)"
    if isinstance(exc, OSError):
        what = "could not start the command" if stdio else "the connection failed"
        return f"{what} ({exc.strerror or type(exc).__name__})"
    return f"the connection failed ({type(exc).__name__})"
