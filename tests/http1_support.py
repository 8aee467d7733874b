"""Helpers for the http1 tests: tiny raw servers with canned answers, and stand-in transports."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson

from ssechat.providers import ChatMessage, Delta, GenerationParams, OpenAIProvider, http1

MESSAGES = [ChatMessage("user", "hello there")]
CHAT = b"/v1/chat/completions"
OK_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
SSE = b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\ndata: [DONE]\n\n'


def request_head(body: bytes, target: bytes = CHAT) -> bytes:
    return b"POST %s HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n" % (target, len(body))


def chat_body(model: str = "m", stream: bool = True) -> bytes:
    """A chat request; a model that is not ``fake-…`` gets the fake's default scenario."""
    return orjson.dumps(
        {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    )


async def read_all(response: http1.Response) -> bytes:
    parts = []
    while data := await response.receive():
        parts.append(data)
    return b"".join(parts)


async def fetch(client: http1.Client, port: int) -> bytes:
    """A whole exchange: post, read the body, close."""
    response = await client.request(origin(port), request_head(b"{}"), b"{}")
    try:
        return await read_all(response)
    finally:
        response.close()


async def drain_into(got: list[Delta], provider: OpenAIProvider) -> None:
    async for delta in provider.stream(MESSAGES, "m", GenerationParams()):
        got.append(delta)


def chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


class RawServer:
    """A loopback server running ``handler(server, index, reader, writer)`` per connection;
    ``closed[i]`` is set when connection ``i`` ended (its handler returned, or the client left)."""

    def __init__(self, handler: Callable[..., Awaitable[None]]) -> None:
        self.handler = handler
        self.requests: list[tuple[int, bytes]] = []  # (connection, request head)
        self.closed: list[asyncio.Event] = []
        self.port = 0

    async def on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = len(self.closed)
        self.closed.append(asyncio.Event())
        try:
            await self.handler(self, index, reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()
            self.closed[index].set()

    async def read_request(self, index: int, reader: asyncio.StreamReader) -> bytes | None:
        """The next request's head (its body read and dropped); None when the client left."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
        await reader.readexactly(length)
        self.requests.append((index, head))
        return head


@contextlib.asynccontextmanager
async def raw_server(
    handler: Callable[..., Awaitable[None]], **options: Any
) -> AsyncIterator[RawServer]:
    state = RawServer(handler)
    server = await asyncio.start_server(state.on_connect, "127.0.0.1", 0, **options)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        await server.wait_closed()


def answering(*responses: bytes, then: str = "wait") -> Callable[..., Awaitable[None]]:
    """A handler answering each request of a connection with the next canned response; after
    them it waits for the client to leave (``then="wait"``) or closes (``"close"``)."""

    async def handler(
        server: RawServer, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        for response in responses:
            if await server.read_request(index, reader) is None:
                return
            writer.write(response)
            await writer.drain()
        if then == "wait":
            await reader.read()

    return handler


def origin(port: int, host: str = "127.0.0.1") -> http1.Origin:
    return http1.Origin("http", host, port)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class FakeTransport(asyncio.Transport):
    """Just enough of a transport to drive a connection by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.written = asyncio.Event()
        self.aborted = False
        self.reading = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.set()

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_write_buffer_size(self) -> int:
        return 0


class RecordingTransport:
    """A transport that counts the calls to pause and resume reading."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self.pauses = 0
        self.resumes = 0
        self.paused = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def pause_reading(self) -> None:
        self.pauses += 1
        self.paused.set()
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self.resumes += 1
        self._transport.resume_reading()
