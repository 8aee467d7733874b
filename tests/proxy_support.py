"""A real HTTP/1.1 forward proxy on a loopback port, for the upstream's proxy tests.

It does what a corporate proxy (squid, tinyproxy…) does with a client's requests:

- ``CONNECT host:port`` opens a TCP tunnel to the target, answers ``200 Connection established``
  and then relays bytes both ways (an ``https`` upstream: TLS runs inside the tunnel, end to end);
- a request in absolute form (``POST http://host:port/path HTTP/1.1``) is forwarded to that host
  in origin form, its ``Proxy-*`` headers dropped, and the answer relayed back; the connection
  to the client closes with the answer's, one request per connection.

Every request head it receives is recorded (``heads``), so a test can assert what went through
it, and what did not. It runs on the test's own event loop and is closed by its context manager,
tunnels included.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from urllib.parse import urlsplit

__all__ = ["ForwardProxy"]


class ForwardProxy:
    def __init__(self, *, require_auth: str | None = None) -> None:
        # require_auth: the exact Proxy-Authorization value to demand (407 otherwise).
        self.require_auth = require_auth
        self.heads: list[bytes] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def request_lines(self) -> list[bytes]:
        return [head.split(b"\r\n", 1)[0] for head in self.heads]

    async def __aenter__(self) -> ForwardProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            await self._one(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            writer.transport.abort()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head)
        line, *fields = head[:-4].split(b"\r\n")
        method, target, _ = line.split(b" ", 2)
        headers = {}
        for field in fields:
            name, _, value = field.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if self.require_auth is not None and headers.get(b"proxy-authorization") != (
            self.require_auth.encode()
        ):
            writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()
            return
        if method == b"CONNECT":
            host, _, port = target.decode().rpartition(":")
            up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await self._relay(reader, writer, up_reader, up_writer)
            return
        url = urlsplit(target.decode())
        if url.scheme != "http" or not url.hostname:
            writer.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()
            return
        up_reader, up_writer = await asyncio.open_connection(url.hostname, url.port or 80)
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        kept = [f for f in fields if not f.lower().startswith((b"proxy-", b"connection:"))]
        forwarded = b"\r\n".join(
            [b"%s %s HTTP/1.1" % (method, path.encode()), *kept, b"connection: close"]
        )
        up_writer.write(forwarded + b"\r\n\r\n")
        await self._relay(reader, writer, up_reader, up_writer)

    async def _relay(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        self._writers.add(up_writer)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()

        try:
            to_upstream = asyncio.ensure_future(pipe(reader, up_writer))
            to_client = asyncio.ensure_future(pipe(up_reader, writer))
            try:
                # Either side closing ends the exchange (one request per connection).
                await asyncio.wait({to_upstream, to_client}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                to_upstream.cancel()
                to_client.cancel()
                await asyncio.gather(to_upstream, to_client, return_exceptions=True)
        finally:
            self._writers.discard(up_writer)
            up_writer.transport.abort()
