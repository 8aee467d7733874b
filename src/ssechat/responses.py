"""The ASGI response that carries an event stream to one client.

``EventStreamResponse`` reads a ``FrameSource`` (``ssechat.frames``, re-exported here): a cursor
on frames already encoded (``ssechat.sse``) that someone else appends, with ``take`` (everything
pending, joined) and ``notify`` (resolve this future when more comes). A run's subscription is
one, so a token costs the response one wake-up of its own task and one write, whatever arrived
meanwhile going out in that write. Any async iterable of frames works too: a pump task drains it
into a pending buffer, which is then the source.

The writer runs in a task of its own, so a wake-up resumes one coroutine rather than the stack of
the server and framework the request runs under. Beside it there is only the disconnect listener
(a task that sleeps in ``receive()``) and one heartbeat timer, which fires once per heartbeat
interval, re-armed for the remainder when the stream was written to meanwhile: a ``: ping``
comment goes out after that many idle seconds. Whichever ends first ends the stream; the source
is closed (and a pump's iterable closed) before the response returns, so cleanup runs as soon
as the client goes away. A producer's cleanup that must await runs in a cancelled task, so it
shields itself.

It must never buffer the whole stream, compress it, create a timer or a task per frame, or let a
producer error escape as a traceback to the client: once the headers are out, the only honest
answer is to end the stream. It runs on asyncio (uvicorn's loop), like the rest of ssechat.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from contextlib import suppress
from typing import Any, cast

import anyio
from starlette.background import BackgroundTask
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ssechat.frames import FrameSource
from ssechat.sse import encode_comment

__all__ = ["DEFAULT_HEARTBEAT", "HEARTBEAT_FRAME", "EventStreamResponse", "FrameSource", "Watch"]

logger = logging.getLogger(__name__)

DEFAULT_HEARTBEAT = 15.0
HEARTBEAT_FRAME = encode_comment("ping")
# Past this many pending bytes a pumped iterable waits for the writer: a slow reader slows its
# producer instead of growing the buffer without bound.
HIGH_WATER = 256 * 1024

Watch = Callable[[Callable[[], None]], Callable[[], None]]
"""``watch(stop)``, called as the stream starts, hands out ``stop`` (which ends the stream at
once: its credentials were revoked) and returns what to call when the stream is over."""

STREAM_HEADERS: Mapping[str, str] = {
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",
}


class EventStreamResponse(Response):
    """Stream ``text/event-stream`` frames from ``body`` until it ends or the client leaves."""

    media_type = "text/event-stream"
    charset = "utf-8"

    def __init__(
        self,
        body: FrameSource | AsyncIterable[bytes],
        *,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        heartbeat: float | None = DEFAULT_HEARTBEAT,
        background: BackgroundTask | None = None,
        watch: Watch | None = None,
    ) -> None:
        self.body_source = body
        self.watch = watch
        self.status_code = status_code
        self.background = background
        self.heartbeat = heartbeat if heartbeat and heartbeat > 0 else math.inf
        merged = dict(STREAM_HEADERS)
        if headers:
            merged.update(headers)
        # Connection is hop-by-hop and forbidden in HTTP/2; the server decides it, not us.
        merged = {k: v for k, v in merged.items() if k.lower() != "connection"}
        self.init_headers(merged)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = self.body_source
        # Not isinstance(body, FrameSource): a runtime protocol check costs ~15 µs a call.
        pump = body if hasattr(body, "notify") and hasattr(body, "take") else _Pump(body)
        source = cast(FrameSource, pump)
        writer = _Writer(source, send, self.heartbeat)
        listener: asyncio.Task[None] | None = None
        writing: asyncio.Task[None] | None = None
        unwatch = self.watch(writer.stop) if self.watch is not None else None
        try:
            if isinstance(pump, _Pump):
                pump.start()
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            loop = asyncio.get_running_loop()
            listener = loop.create_task(writer.listen(receive))
            # The writer gets a task of its own: each wake-up then resumes one coroutine, not
            # the dozen frames of the server and framework this request task runs under.
            writing = loop.create_task(writer.run())
            await writing
        finally:
            if unwatch is not None:
                unwatch()
            source.close()
            with anyio.CancelScope(shield=True):
                for task in (writing, listener):
                    if task is not None and not task.done():
                        task.cancel()
                        with suppress(asyncio.CancelledError):
                            await task
                if isinstance(pump, _Pump):
                    await pump.finish()
        if not writer.disconnected:
            with suppress(OSError):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        if self.background is not None:
            await self.background()


class _Writer:
    """Sends what the source has, one write per wake-up, and heartbeats when idle."""

    __slots__ = (
        "disconnected",
        "heartbeat",
        "last_write",
        "loop",
        "ping_due",
        "send",
        "source",
        "stopped",
        "timer",
        "waiter",
    )

    def __init__(self, source: FrameSource, send: Send, heartbeat: float) -> None:
        self.source = source
        self.send = send
        self.heartbeat = heartbeat
        self.loop = asyncio.get_running_loop()
        self.last_write = self.loop.time()
        self.ping_due = False
        self.disconnected = False
        self.stopped = False
        self.waiter: asyncio.Future[None] | None = None
        self.timer: asyncio.TimerHandle | None = None

    async def run(self) -> None:
        loop, source = self.loop, self.source
        if self.heartbeat != math.inf:
            self.timer = loop.call_at(self.last_write + self.heartbeat, self._tick)
        try:
            while not self.disconnected and not self.stopped:
                chunk = source.take()
                if chunk:
                    if not await self._send(chunk):
                        return
                    continue
                if source.ended:
                    return
                if self.ping_due:
                    self.ping_due = False
                    if not await self._send(HEARTBEAT_FRAME):
                        return
                    continue
                waiter = self.waiter = loop.create_future()
                source.notify(waiter)
                try:
                    await waiter
                finally:
                    self.waiter = None
        finally:
            if self.timer is not None:
                self.timer.cancel()

    async def listen(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                self._wake()
                return

    def stop(self) -> None:
        """End the stream now, cleanly, whatever the source still has (see ``Watch``)."""
        self.stopped = True
        self._wake()

    def _tick(self) -> None:
        now = self.loop.time()
        due = self.last_write + self.heartbeat
        if now >= due:
            self.ping_due = True
            self._wake()
            due = now + self.heartbeat
        self.timer = self.loop.call_at(due, self._tick)

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _send(self, chunk: bytes) -> bool:
        """Send one body chunk; False when the client turned out to be gone."""
        try:
            await self.send({"type": "http.response.body", "body": chunk, "more_body": True})
        except OSError:
            # The server noticed the client is gone before the disconnect message arrived.
            self.disconnected = True
            return False
        self.last_write = self.loop.time()
        return True


class _Pump:
    """A ``FrameSource`` fed by a task that drains an async iterable of frames."""

    __slots__ = ("body", "done", "drained", "pending", "size", "task", "waiter")

    def __init__(self, body: AsyncIterable[bytes]) -> None:
        self.body = body
        self.pending: list[bytes] = []
        self.size = 0
        self.done = False
        self.waiter: asyncio.Future[None] | None = None
        self.drained: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def finish(self) -> None:
        """Stop the producer if it still runs, and wait until it has cleaned up."""
        task = self.task
        if task is not None and not task.done():
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        iterator = aiter(self.body)
        try:
            async for frame in iterator:
                self.pending.append(frame)
                self.size += len(frame)
                self._wake()
                if self.size > HIGH_WATER:
                    self.drained = asyncio.get_running_loop().create_future()
                    await self.drained
        except Exception:
            logger.exception("event stream producer failed; ending the stream")
        finally:
            self.done = True
            self._wake()
            await _aclose(iterator)

    def _wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def take(self) -> bytes:
        pending = self.pending
        if not pending:
            return b""
        chunk = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        self.size = 0
        drained, self.drained = self.drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)
        return chunk

    @property
    def ended(self) -> bool:
        return self.done and not self.pending

    def notify(self, waiter: asyncio.Future[None]) -> None:
        if self.pending or self.done:
            if not waiter.done():
                waiter.set_result(None)
        else:
            self.waiter = waiter

    def close(self) -> None:
        pass


async def _aclose(iterator: AsyncIterator[bytes] | Any) -> None:
    """Close an async generator even from a cancelled scope, so its ``finally`` can await."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is None:
        return
    with anyio.CancelScope(shield=True):
        try:
            await aclose()
        except Exception:
            logger.exception("event stream producer failed while closing")
