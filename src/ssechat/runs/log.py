"""The run event log: append-only encoded SSE frames with sequence ids, and readers of it.

One run writes its log; any number of readers read it from any id, replay what they missed and
then follow live. A reader is not a task: it is a cursor with ``take`` (everything pending,
joined into one ``bytes``) and ``notify`` (resolve this future at the next append or the close),
so the response that owns it sends a token in one wake-up of its own task, and a reader that
fell behind catches up in one write. ``RunLog`` is the interface a Redis Streams backend will
implement for several server processes; ``MemoryRunLog`` serves one.

``MemoryRunLog`` keeps its frames in one ``bytearray`` with an array of their offsets: a frame
costs its bytes and eight more, not a Python object. It must never block a writer on a slow
reader (readers keep their own cursor) and never copy the log for a reader that is up to date.
"""

from __future__ import annotations

import asyncio
from array import array
from collections.abc import AsyncIterator
from typing import Protocol

__all__ = ["LogReader", "MemoryRunLog", "RunLog", "batches"]


class LogReader(Protocol):
    """A cursor on a log: what a streaming response reads (``ssechat.responses.FrameSource``)."""

    def take(self) -> bytes:
        """Every frame after the cursor, joined (``b""`` when none); moves the cursor past them."""
        ...

    @property
    def ended(self) -> bool:
        """True once the log is closed and everything has been taken."""
        ...

    def notify(self, waiter: asyncio.Future[None]) -> None:
        """Resolve ``waiter`` (unless already done) at the next append or at the close; at once
        if the log is closed. The caller owns the future: it may resolve or cancel it too."""
        ...

    def close(self) -> None:
        """The reader leaves; idempotent."""
        ...


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

    def reader(self, after: int = -1) -> LogReader:
        """A cursor on the frames with ids greater than ``after``."""
        ...


async def batches(reader: LogReader) -> AsyncIterator[bytes]:
    """Read ``reader`` as an async iterator of batches until it ends; close it at the end."""
    try:
        while True:
            batch = reader.take()
            if batch:
                yield batch
            elif reader.ended:
                return
            else:
                waiter = asyncio.get_running_loop().create_future()
                reader.notify(waiter)
                await waiter
    finally:
        reader.close()


class MemoryRunLog:
    """A ``RunLog`` in this process's memory."""

    __slots__ = ("_buffer", "_closed", "_offsets", "_waiters")

    def __init__(self) -> None:
        self._buffer = bytearray()
        # _offsets[i] is where frame i starts; the buffer's length is where the next one will.
        self._offsets = array("Q")
        self._closed = False
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def last_seq(self) -> int:
        return len(self._offsets) - 1

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def size(self) -> int:
        """Bytes held."""
        return len(self._buffer)

    def append(self, frame: bytes) -> int:
        if self._closed:
            raise RuntimeError("append to a closed run log")
        offsets = self._offsets
        offsets.append(len(self._buffer))
        self._buffer += frame
        if self._waiters:
            self._wake()
        return len(offsets) - 1

    def close(self) -> None:
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        # Each waiting reader has its own future: a reader cancelled while it waits cancels
        # its future only, never another reader's.
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def reader(self, after: int = -1) -> MemoryLogReader:
        return MemoryLogReader(self, after)

    def follow(self, after: int = -1) -> AsyncIterator[bytes]:
        """The frames after ``after`` as an async iterator of batches, until the log closes."""
        return batches(self.reader(after))

    def _take(self, position: int) -> tuple[bytes, int]:
        end = len(self._offsets)
        if position >= end:
            return b"", position
        return bytes(self._buffer[self._offsets[position] :]), end

    def _notify(self, waiter: asyncio.Future[None]) -> None:
        if self._closed:
            if not waiter.done():
                waiter.set_result(None)
        else:
            waiters = self._waiters
            if len(waiters) >= 8:  # readers woken by something else (a heartbeat) left these
                waiters[:] = [w for w in waiters if not w.done()]
            waiters.append(waiter)


class MemoryLogReader:
    """A cursor on a ``MemoryRunLog``."""

    __slots__ = ("_log", "_position")

    def __init__(self, log: MemoryRunLog, after: int) -> None:
        self._log = log
        self._position = max(after + 1, 0)

    def take(self) -> bytes:
        batch, self._position = self._log._take(self._position)
        return batch

    @property
    def ended(self) -> bool:
        log = self._log
        return log._closed and self._position >= len(log._offsets)

    def notify(self, waiter: asyncio.Future[None]) -> None:
        self._log._notify(waiter)

    def close(self) -> None:
        pass
