"""The connection pool of ``http1``: where a request goes, how it gets there, and keep-alive.

``Client.request`` sends a rendered request (head and body) to an ``Origin``, directly or
through an HTTP ``Proxy``, and returns the ``Response`` once its head has arrived. Connections
are kept alive per destination (an origin, and the proxy on the way): at most ``max_idle`` idle
ones each, none idle longer than ``keepalive_expiry``; a response read to its end gives its
connection back, any other is aborted at once.

Through a proxy, a request to an ``http`` origin goes to the proxy with its target in absolute
form (the caller renders the head so); one to an ``https`` origin first opens a tunnel with
``CONNECT host:port`` and then speaks TLS to the origin inside it, end to end, so the proxy sees
neither the request nor the key.

Retries are not made here: a kept-alive connection that breaks before any byte of the answer
raises ``StaleConnection`` and the caller, whose retry policy counts every attempt, decides.
This module must never log, never put a request header in an exception, and never let an
OSError or ssl exception escape: every failure is an ``HTTPError``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from typing import cast

from ssechat.providers.http1.connection import Connection, Response
from ssechat.providers.http1.errors import (
    ClientClosed,
    ConnectError,
    ConnectionBroken,
    ConnectTimeout,
    HTTPError,
    StaleConnection,
)

__all__ = ["Client", "Origin", "Proxy"]

_TUNNEL_HEAD_LIMIT = 16 * 1024


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a request goes."""

    scheme: str  # "http" or "https"
    host: str  # a name or an IP address (IPv6 without brackets); also the TLS server name
    port: int

    @property
    def authority(self) -> str:
        """``host:port`` as a request target or a Host header writes it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Proxy:
    """An HTTP proxy (``http://[user:password@]host:port``) and what it is told who we are."""

    host: str
    port: int
    # The whole Proxy-Authorization header value ("Basic …"), or None. Kept out of repr.
    authorization: str | None = None

    def __repr__(self) -> str:
        auth = ", authorization=<set>" if self.authorization else ""
        return f"Proxy(host={self.host!r}, port={self.port}{auth})"


class Client:
    """A keep-alive connection pool that makes streamed requests; see the module.

    ``ssl_context`` serves every https origin (``ssl.create_default_context()`` by default, made
    once). ``idle_timeout`` (None: none) bounds the silence of the server, from the request to
    the end of the response; ``connect_timeout`` bounds making the connection (proxy tunnel and
    TLS handshake included).
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        connect_timeout: float = 10.0,
        idle_timeout: float | None = 60.0,
        max_idle: int = 64,
        keepalive_expiry: float = 5.0,
        high_water: int = 64 * 1024,
    ) -> None:
        self._ssl_context = ssl_context
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.max_idle = max_idle
        self.keepalive_expiry = keepalive_expiry
        self.high_water = high_water
        self._idle: dict[Hashable, deque[Connection]] = {}
        self._connections: set[Connection] = set()
        self._closed = False

    async def request(
        self, origin: Origin, head: bytes, body: bytes, *, proxy: Proxy | None = None
    ) -> Response:
        """Send ``head`` (request line and headers, ending with the blank line) and ``body`` to
        ``origin``, through ``proxy`` if given; the response once its head has arrived. The
        caller must ``close()`` it. Through a proxy to an ``http`` origin, ``head``'s target must
        be in absolute form."""
        if self._closed:
            raise ClientClosed("the HTTP client is closed")
        request = head + body
        key = (origin, proxy)
        conn = self._checkout(key)
        if conn is None:
            conn = await self._connect(key, origin, proxy)
            return await conn.exchange(request)
        try:
            return await conn.exchange(request)
        except ConnectionBroken as exc:
            if conn.received or self._closed:
                raise
            raise StaleConnection(
                f"a kept-alive connection was closed by the server ({exc})"
            ) from exc

    def close(self) -> None:
        """Abort every connection, idle or in use; requests in flight fail with
        ``ClientClosed``."""
        self._closed = True
        for conn in list(self._connections):
            conn.abort(ClientClosed("the HTTP client was closed"))
        self._idle.clear()

    def _checkout(self, key: Hashable) -> Connection | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        loop = asyncio.get_running_loop()
        expired = loop.time() - self.keepalive_expiry
        while idle and idle[0].idle_since <= expired:  # the oldest first
            conn = idle.popleft()
            conn.pooled = False
            conn.abort(None)
        while idle:
            conn = idle.pop()  # the most recently used: the warmest, and the least likely stale
            conn.pooled = False
            if conn.loop is loop and conn.usable():
                return conn
            conn.abort(None)
        return None

    async def _connect(self, key: Hashable, origin: Origin, proxy: Proxy | None) -> Connection:
        loop = asyncio.get_running_loop()
        conn = Connection(
            self, key, loop, high_water=self.high_water, idle_timeout=self.idle_timeout
        )
        context: ssl.SSLContext | None = None
        if origin.scheme == "https":
            context = self._ssl_context
            if context is None:
                context = self._ssl_context = ssl.create_default_context()
        try:
            async with asyncio.timeout(self.connect_timeout):
                if proxy is None:
                    await loop.create_connection(
                        lambda: conn,
                        origin.host,
                        origin.port,
                        ssl=context,
                        server_hostname=origin.host if context is not None else None,
                    )
                elif context is None:  # http through the proxy: requests in absolute form
                    await loop.create_connection(lambda: conn, proxy.host, proxy.port)
                else:
                    await _tunnel(loop, conn, proxy, origin, context)
        except TimeoutError:
            conn.abort(None)
            raise ConnectTimeout(
                f"connecting took longer than {self.connect_timeout:g} s"
            ) from None
        except HTTPError:
            conn.abort(None)
            raise
        except (OSError, ValueError) as exc:  # refused, unresolved, TLS (ssl.SSLError)...
            conn.abort(None)
            where = " to the proxy" if proxy is not None else ""
            raise ConnectError(f"{exc or type(exc).__name__}{where}") from exc
        except BaseException:
            conn.abort(None)
            raise
        if self._closed:
            conn.abort(None)
            raise ClientClosed("the HTTP client was closed")
        self._connections.add(conn)
        return conn

    # --- Pool, for the connections ---------------------------------------------------------

    def release(self, conn: Connection) -> None:
        idle = self._idle.setdefault(conn.key, deque())
        if self._closed or len(idle) >= self.max_idle:
            conn.abort(None)
            return
        conn.pooled = True
        conn.idle_since = conn.loop.time()
        idle.append(conn)

    def forget(self, conn: Connection) -> None:
        self._connections.discard(conn)
        if conn.pooled:
            conn.pooled = False
            idle = self._idle.get(conn.key)
            if idle is not None and conn in idle:
                idle.remove(conn)


class _TunnelReply(asyncio.Protocol):
    """Reads the proxy's answer to ``CONNECT``, up to the blank line that ends its head."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.transport: asyncio.Transport | None = None
        self.head = bytearray()
        self.done: asyncio.Future[bytes] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end >= 0:
            # The origin speaks only after our TLS ClientHello: nothing may follow the head.
            self.done.set_result(bytes(self.head[: end + 4]))
            if self.transport is not None:
                self.transport.pause_reading()
        elif len(self.head) > _TUNNEL_HEAD_LIMIT:
            self.done.set_exception(ConnectError("the proxy's answer to CONNECT is too large"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectError("the proxy closed the connection during CONNECT"))


async def _tunnel(
    loop: asyncio.AbstractEventLoop,
    conn: Connection,
    proxy: Proxy,
    origin: Origin,
    context: ssl.SSLContext,
) -> None:
    """Open ``CONNECT origin`` through ``proxy``, then TLS to ``origin`` inside it, for
    ``conn``."""
    transport, reply = await loop.create_connection(
        lambda: _TunnelReply(loop), proxy.host, proxy.port
    )
    try:
        target = origin.authority.encode("ascii")
        lines = [b"CONNECT %s HTTP/1.1" % target, b"host: %s" % target]
        if proxy.authorization:
            lines.append(b"proxy-authorization: " + proxy.authorization.encode("latin-1"))
        transport.write(b"\r\n".join(lines) + b"\r\n\r\n")
        head = await reply.done
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ConnectError("the proxy's answer to CONNECT is not HTTP")
        status = int(parts[1])
        if not 200 <= status < 300:
            detail = status_line[len(parts[0]) + 1 :].strip()
            raise ConnectError(f"the proxy refused the tunnel to {origin.authority} ({detail})")
        tls = await loop.start_tls(transport, conn, context, server_hostname=origin.host)
    except BaseException:
        transport.abort()
        raise
    if tls is None:  # pragma: no cover - start_tls returns None only for a closing transport
        transport.abort()
        raise ConnectError("the tunnel closed during the TLS handshake")
    conn.connection_made(tls)
