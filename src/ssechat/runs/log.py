"""The run event log: an append-only list of encoded SSE frames with sequence ids.

One run writes its log; any number of subscribers read it from any id, replay what they missed
and then follow live, each getting everything pending in one batch. ``RunLog`` is the interface a
Redis Streams backend will implement for several server processes; ``MemoryRunLog`` serves one.

The log stores frames already encoded (``ssechat.sse``), so a token costs one encode however many
tabs watch it. It must never block a writer on a slow reader: readers keep their own cursor.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Protocol

__all__ = ["MemoryRunLog", "RunLog"]


class RunLog(Protocol):
    """Append-only frames numbered 0, 1, 2…; ``close`` marks the end of the run."""

    @property
    def last_seq(self) -> int:
        """The id of the newest frame, -1 while empty."""
        ...

    @property
    def closed(self) -> bool: ...

    def append(self, frame: bytes) -> int:
        """Add one frame; return its sequence id."""
        ...

    def close(self) -> None: ...

    def follow(self, after: int = -1) -> AsyncIterator[bytes]:
        """Frames with ids greater than ``after``: first the backlog, then live, until closed.

        Each item is every frame pending at that moment, joined: a reader that falls behind
        catches up in one write instead of one per frame.
        """
        ...


class MemoryRunLog:
    """A ``RunLog`` in this process's memory."""

    __slots__ = ("_changed", "_closed", "_frames")

    def __init__(self) -> None:
        self._frames: list[bytes] = []
        self._closed = False
        self._changed: asyncio.Event | None = None

    @property
    def last_seq(self) -> int:
        return len(self._frames) - 1

    @property
    def closed(self) -> bool:
        return self._closed

    def append(self, frame: bytes) -> int:
        if self._closed:
            raise RuntimeError("append to a closed run log")
        self._frames.append(frame)
        self._notify()
        return len(self._frames) - 1

    def close(self) -> None:
        self._closed = True
        self._notify()

    def _notify(self) -> None:
        # One shared event for all readers, replaced after each wake-up: an append costs one
        # set() whatever the number of readers, and nothing at all when none is waiting.
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def follow(self, after: int = -1) -> AsyncIterator[bytes]:
        position = max(after + 1, 0)
        frames = self._frames
        while True:
            end = len(frames)
            if position < end:
                batch = frames[position] if end - position == 1 else b"".join(frames[position:end])
                position = end
                yield batch
                continue
            if self._closed:
                return
            if self._changed is None:
                self._changed = asyncio.Event()
            await self._changed.wait()
