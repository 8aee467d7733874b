"""The ASGI response that carries an event stream to one client.

``EventStreamResponse`` takes an async iterable of already-encoded frames (``ssechat.sse``) and
runs three things in one task group: the producer, which drains the iterable into a pending
buffer; the writer, which sends everything pending in one write and a heartbeat comment when the
stream has been idle; and the disconnect listener. Whichever ends the stream cancels the others,
and the producer is closed in ``finally`` (shielded), so its cleanup runs as soon as the client
goes away. A producer cancelled while it awaits runs its ``finally`` in a cancelled scope: cleanup
that must await (rare: a subscriber only unsubscribes) shields itself, as in any anyio code.

It must never buffer the whole stream, compress it, or let a producer error escape as a
traceback to the client: once the headers are out, the only honest answer is to end the stream.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from contextlib import suppress
from typing import Any

import anyio
from starlette.background import BackgroundTask
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from ssechat.sse import encode_comment

__all__ = ["DEFAULT_HEARTBEAT", "EventStreamResponse"]

logger = logging.getLogger(__name__)

DEFAULT_HEARTBEAT = 15.0
HEARTBEAT_FRAME = encode_comment("ping")
# Past this many pending bytes the producer waits for the writer: a slow reader slows its
# producer instead of growing the buffer without bound.
HIGH_WATER = 256 * 1024

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
        body: AsyncIterable[bytes],
        *,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        heartbeat: float | None = DEFAULT_HEARTBEAT,
        background: BackgroundTask | None = None,
    ) -> None:
        self.body_iterator = body
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
        stream = _Stream(self.body_iterator, send, self.heartbeat)
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        async with anyio.create_task_group() as tg:

            async def listen() -> None:
                while True:
                    message: Message = await receive()
                    if message["type"] == "http.disconnect":
                        stream.disconnected = True
                        tg.cancel_scope.cancel()
                        return

            async def run() -> None:
                await stream.run()
                tg.cancel_scope.cancel()

            tg.start_soon(listen)
            tg.start_soon(run)

        if not stream.disconnected:
            with suppress(OSError):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        if self.background is not None:
            await self.background()


class _Stream:
    """The producer and the writer of one response, sharing a pending buffer."""

    __slots__ = ("body", "disconnected", "done", "heartbeat", "pending", "pending_size", "send")

    def __init__(self, body: AsyncIterable[bytes], send: Send, heartbeat: float) -> None:
        self.body = body
        self.send = send
        self.heartbeat = heartbeat
        self.pending: list[bytes] = []
        self.pending_size = 0
        self.done = False
        self.disconnected = False

    async def run(self) -> None:
        wake = anyio.Event()
        drained = anyio.Event()

        async def produce() -> None:
            nonlocal wake, drained
            iterator = aiter(self.body)
            try:
                async for frame in iterator:
                    self.pending.append(frame)
                    self.pending_size += len(frame)
                    wake.set()
                    if self.pending_size > HIGH_WATER:
                        drained = anyio.Event()
                        await drained.wait()
            except Exception:
                logger.exception("event stream producer failed; ending the stream")
            finally:
                self.done = True
                wake.set()
                await _aclose(iterator)

        async def write() -> None:
            nonlocal wake
            while True:
                if not self.pending:
                    if self.done:
                        return
                    wake = anyio.Event()
                    with anyio.move_on_after(self.heartbeat) as idle:
                        await wake.wait()
                    if idle.cancelled_caught and not self.pending:
                        if not await self._send(HEARTBEAT_FRAME):
                            return
                        continue
                    if not self.pending:
                        continue
                chunk = self.pending[0] if len(self.pending) == 1 else b"".join(self.pending)
                self.pending.clear()
                self.pending_size = 0
                drained.set()
                if not await self._send(chunk):
                    return

        async with anyio.create_task_group() as tg:
            tg.start_soon(produce)
            await write()
            # Normally the producer is done by now; after a failed send it may still be
            # waiting for its next frame, and it must not keep the response open.
            tg.cancel_scope.cancel()

    async def _send(self, chunk: bytes) -> bool:
        """Send one body chunk; False when the client turned out to be gone."""
        try:
            await self.send({"type": "http.response.body", "body": chunk, "more_body": True})
        except OSError:
            # The server noticed the client is gone before the disconnect message arrived.
            self.disconnected = True
            return False
        return True


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
