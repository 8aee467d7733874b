"""ssechat.responses: EventStreamResponse at the raw ASGI level and over a real socket."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Message

from ssechat.responses import HEARTBEAT_FRAME, EventStreamResponse
from ssechat.runs.log import MemoryRunLog
from ssechat.sse import encode

from .conftest import RealServer

pytestmark = pytest.mark.anyio

SCOPE: dict[str, Any] = {"type": "http", "method": "GET", "path": "/", "headers": []}


class Recorder:
    """An ASGI ``send`` that keeps every message and can wait for the n-th body chunk."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.changed = anyio.Event()

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)
        self.changed.set()
        self.changed = anyio.Event()

    @property
    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.messages if m["type"] == "http.response.body"]

    async def wait_for_bodies(self, n: int) -> None:
        with anyio.fail_after(10):
            while len(self.bodies) < n:
                await self.changed.wait()


class Leaving:
    """An ASGI ``receive`` whose client disconnects when ``leave()`` is called."""

    def __init__(self) -> None:
        self.left = anyio.Event()

    def leave(self) -> None:
        self.left.set()

    async def __call__(self) -> Message:
        await self.left.wait()
        return {"type": "http.disconnect"}


async def never_disconnect() -> Message:
    await anyio.sleep_forever()
    raise AssertionError("unreachable")


async def test_headers_are_those_of_an_event_stream() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield encode("x")

    send = Recorder()
    await EventStreamResponse(body())(SCOPE, never_disconnect, send)
    start = send.messages[0]
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    assert start["status"] == 200
    assert headers["content-type"] == "text/event-stream; charset=utf-8"
    assert headers["cache-control"] == "no-cache, no-transform"
    assert headers["x-accel-buffering"] == "no"
    assert "connection" not in headers
    assert "content-length" not in headers


async def test_a_connection_header_is_never_sent_even_when_asked_for() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield encode("x")

    send = Recorder()
    response = EventStreamResponse(body(), headers={"Connection": "keep-alive", "X-A": "1"})
    await response(SCOPE, never_disconnect, send)
    names = [k.decode() for k, _ in send.messages[0]["headers"]]
    assert "connection" not in names
    assert "x-a" in names


async def test_events_pending_together_go_out_in_one_write() -> None:
    frames = [encode(str(i), id=str(i)) for i in range(3)]

    async def body() -> AsyncIterator[bytes]:
        for frame in frames:  # no await between them: all three are pending at once
            yield frame

    send = Recorder()
    await EventStreamResponse(body())(SCOPE, never_disconnect, send)
    assert send.bodies == [b"".join(frames), b""]
    assert send.messages[-1]["more_body"] is False


async def test_events_apart_in_time_go_out_as_they_come() -> None:
    gate = anyio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield encode("first")
        await gate.wait()
        yield encode("second")

    send = Recorder()
    async with anyio.create_task_group() as tg:
        tg.start_soon(EventStreamResponse(body()), SCOPE, never_disconnect, send)
        await send.wait_for_bodies(1)
        assert send.bodies == [encode("first")]
        gate.set()
    assert send.bodies == [encode("first"), encode("second"), b""]


async def test_disconnect_cancels_the_producer_and_runs_its_cleanup() -> None:
    cleaned = anyio.Event()
    client = Leaving()

    async def body() -> AsyncIterator[bytes]:
        try:
            yield encode("first")
            await anyio.sleep_forever()
        finally:
            # Cleanup that awaits runs in a cancelled scope, so it shields itself.
            with anyio.CancelScope(shield=True):
                await anyio.lowlevel.checkpoint()
            cleaned.set()

    send = Recorder()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(EventStreamResponse(body()), SCOPE, client, send)
            await send.wait_for_bodies(1)
            client.leave()
            await cleaned.wait()
    # No final chunk is written to a client that is gone.
    assert send.bodies == [encode("first")]


async def test_a_failing_send_counts_as_a_disconnect() -> None:
    cleaned = anyio.Event()

    async def body() -> AsyncIterator[bytes]:
        try:
            while True:
                yield encode("tick")
                await anyio.lowlevel.checkpoint()
        finally:
            cleaned.set()

    sent = 0

    async def send(message: Message) -> None:
        nonlocal sent
        if message["type"] == "http.response.body":
            sent += 1
            if sent == 2:
                raise OSError("connection reset")

    with anyio.fail_after(5):
        await EventStreamResponse(body())(SCOPE, never_disconnect, send)
    assert cleaned.is_set()


async def test_a_failing_producer_ends_the_stream_cleanly(caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield encode("partial")
        raise RuntimeError("upstream exploded")

    send = Recorder()
    await EventStreamResponse(body())(SCOPE, never_disconnect, send)
    assert send.bodies == [encode("partial"), b""]
    assert "producer failed" in caplog.text


async def test_heartbeat_is_sent_while_idle_in_process() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield encode("hello")
        await anyio.sleep_forever()
        yield b""  # pragma: no cover

    send = Recorder()
    async with anyio.create_task_group() as tg:
        tg.start_soon(EventStreamResponse(body(), heartbeat=0.01), SCOPE, never_disconnect, send)
        await send.wait_for_bodies(3)
        tg.cancel_scope.cancel()
    assert send.bodies[:3] == [encode("hello"), HEARTBEAT_FRAME, HEARTBEAT_FRAME]


async def test_gzip_middleware_never_compresses_the_stream() -> None:
    frames = [encode("x" * 500, id=str(i)) for i in range(20)]

    async def stream(request: Request) -> EventStreamResponse:
        async def body() -> AsyncIterator[bytes]:
            for frame in frames:
                yield frame

        return EventStreamResponse(body())

    app = Starlette(
        routes=[Route("/events", stream)], middleware=[Middleware(GZipMiddleware, minimum_size=10)]
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/events", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in response.headers
    assert response.content == b"".join(frames)


# --- over a real socket --------------------------------------------------------------------


def read_until(sock: socket.socket, marker: bytes, limit: int = 1 << 20) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before {marker!r}; got {data!r}")
        data += chunk
        assert len(data) < limit
    return data


def stream_app(heartbeat: float, cleaned: threading.Event | None = None) -> Callable[..., Any]:
    async def events(request: Request) -> EventStreamResponse:
        async def body() -> AsyncIterator[bytes]:
            try:
                yield encode("hello", event="greeting", id="1")
                await anyio.sleep_forever()
                yield b""  # pragma: no cover
            finally:
                if cleaned is not None:
                    cleaned.set()

        return EventStreamResponse(body(), heartbeat=heartbeat)

    return Starlette(routes=[Route("/events", events)])


REQUEST = b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"


@pytest.mark.real_server
def test_real_server_sends_heartbeats(real_server: Callable[..., RealServer]) -> None:
    server = real_server(stream_app(heartbeat=0.05))
    with server.connect() as sock:
        sock.sendall(REQUEST)
        data = read_until(sock, b"\r\n\r\n")
        head, _, rest = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert b"\r\nconnection:" not in head.lower()
        assert b"text/event-stream; charset=utf-8" in head
        # The heartbeat arrives after the first event, in its own chunk of the chunked body.
        rest += read_until(sock, b": ping\n\n")
    assert b"data: hello" in rest


@pytest.mark.real_server
def test_real_server_runs_the_producers_cleanup_when_the_client_disconnects(
    real_server: Callable[..., RealServer],
) -> None:
    cleaned = threading.Event()
    server = real_server(stream_app(heartbeat=60, cleaned=cleaned))
    sock = server.connect()
    sock.sendall(REQUEST)
    read_until(sock, b"data: hello\n\n")
    assert not cleaned.is_set()
    sock.close()
    assert cleaned.wait(timeout=10), "the producer's cleanup did not run after the disconnect"


@pytest.mark.real_server
def test_real_server_socket_has_tcp_nodelay(real_server: Callable[..., RealServer]) -> None:
    server = real_server(stream_app(heartbeat=60))
    with server.connect() as sock:
        sock.sendall(REQUEST)
        read_until(sock, b"data: hello\n\n")
        connections = list(server.server.server_state.connections)
        assert connections, "the server tracks no connection"
        for protocol in connections:
            server_sock = protocol.transport.get_extra_info("socket")  # type: ignore[attr-defined]
            assert server_sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


# --- a frame source (a run log's reader): no producer task, one write per wake-up -------------


def frame(i: int) -> bytes:
    """What a ``MemoryRunLog`` sends for ``append("e", str(i))`` given the id ``i``."""
    return encode(str(i), event="e", id=str(i))


class ClosingReader:
    """A run log reader that records its close."""

    def __init__(self, log: MemoryRunLog, after: int = -1) -> None:
        self.reader = log.reader(after)
        self.closed = False

    def take(self) -> bytes:
        return self.reader.take()

    @property
    def ended(self) -> bool:
        return self.reader.ended

    def notify(self, waiter: asyncio.Future[None]) -> None:
        self.reader.notify(waiter)

    def close(self) -> None:
        self.closed = True


async def test_a_frame_source_is_sent_batch_by_batch_then_ended() -> None:
    log = MemoryRunLog()
    for i in range(3):
        await log.append("e", str(i))
    source = ClosingReader(log)
    send = Recorder()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(EventStreamResponse(source), SCOPE, never_disconnect, send)
            await send.wait_for_bodies(1)  # the backlog, in one write
            await log.append("e", "3")
            await send.wait_for_bodies(2)
            await log.append("e", "4")
            await log.append("e", "5")
            await log.close()
    frames = [frame(i) for i in range(6)]
    assert send.bodies[0] == b"".join(frames[:3])
    assert send.bodies[1] == frames[3]
    assert b"".join(send.bodies[2:-1]) == b"".join(frames[4:])
    assert send.bodies[-1] == b""
    assert send.messages[-1]["more_body"] is False
    assert source.closed


async def test_a_frame_source_is_closed_when_the_client_leaves() -> None:
    log = MemoryRunLog()
    await log.append("e", "0")
    source = ClosingReader(log)
    client = Leaving()
    send = Recorder()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(EventStreamResponse(source), SCOPE, client, send)
            await send.wait_for_bodies(1)
            client.leave()
    assert source.closed
    assert send.bodies == [frame(0)]  # nothing more to a client that is gone
    await log.append("e", "1")  # the run goes on without it


async def test_a_busy_stream_sends_no_heartbeat_and_an_idle_one_does() -> None:
    heartbeat = 0.5
    log = MemoryRunLog()
    send = Recorder()
    loop = asyncio.get_running_loop()
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            response = EventStreamResponse(log.reader(), heartbeat=heartbeat)
            tg.start_soon(response, SCOPE, never_disconnect, send)
            # Busy: each frame appended as soon as the one before it is written, for more than
            # two heartbeat intervals, so the timer comes due at least twice while the stream
            # is busy; each time it finds a recent write and re-arms for the rest.
            start, count = loop.time(), 0
            while loop.time() - start < 2.5 * heartbeat:
                changed = send.changed
                await log.append("e", str(count))
                count += 1
                await changed.wait()
            busy = list(send.bodies)
            # Idle: nothing appended; a heartbeat comes.
            while HEARTBEAT_FRAME not in send.bodies:
                await send.changed.wait()
            tg.cancel_scope.cancel()
    assert HEARTBEAT_FRAME not in busy
    assert b"".join(busy) == b"".join(frame(i) for i in range(count))
    assert send.bodies[len(busy) :] == [HEARTBEAT_FRAME]
