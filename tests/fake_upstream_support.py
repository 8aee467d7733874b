"""Helpers for the fake upstream's tests: requests, a plain reading of its streams, and a clock.

``HeldClock`` is a ``fake_upstream`` ``Clock`` that stands still until the test lets each sleep
end: pacing and stalls are watched as events (which waits, between which frames), never timed.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anyio
import httpx


def chat(model: str, stream: bool = True, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "what is the weather like"},
        ],
        "stream": stream,
    }
    body.update(extra)
    return body


def frames_of(body: bytes) -> list[str]:
    """A plain reading of an event stream: blank-line separated, one ``data: `` line each."""
    return [f for f in body.decode("utf-8").split("\n\n") if f]


def payloads(body: bytes) -> list[Any]:
    out: list[Any] = []
    for frame in frames_of(body):
        assert frame.startswith("data: ")
        assert "\n" not in frame
        data = frame[len("data: ") :]
        out.append(data if data == "[DONE]" else json.loads(data))
    return out


class HeldClock:
    """A clock that stands still: each ``sleep`` of the fake waits until the test ends it, and
    only then does the time move on, by the seconds slept. ``asked`` lists every sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.asked: list[float] = []
        self._sleeps: asyncio.Queue[tuple[float, asyncio.Event]] = asyncio.Queue()

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        done = asyncio.Event()
        self.asked.append(seconds)
        self._sleeps.put_nowait((seconds, done))
        await done.wait()
        self.now += seconds

    async def next_sleep(self) -> tuple[float, asyncio.Event]:
        """The fake's next sleep (its seconds, and the event that ends it), once it begins."""
        with anyio.fail_after(10):
            return await self._sleeps.get()


class FrameReader:
    """A streamed response's body read frame by frame; ``pending`` holds what came after the
    last whole frame."""

    def __init__(self, response: httpx.Response) -> None:
        self._pieces = response.aiter_raw()
        self.frames: list[bytes] = []
        self.pending = b""

    async def until(self, count: int) -> list[bytes]:
        """Read until ``count`` whole frames have arrived in all."""
        with anyio.fail_after(10):
            while len(self.frames) < count:
                self.pending += await anext(self._pieces)
                *whole, self.pending = self.pending.split(b"\n\n")
                self.frames += [frame + b"\n\n" for frame in whole]
        return self.frames

    async def rest(self) -> bytes:
        """Everything received, once the body has ended."""
        with anyio.fail_after(10):
            async for piece in self._pieces:
                self.pending += piece
        return b"".join(self.frames) + self.pending


def raw_chat_request(model: str) -> bytes:
    body = json.dumps(chat(model)).encode()
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(body), body)
    )
