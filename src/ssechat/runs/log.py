"""The run event log: append-only encoded SSE frames with sequence ids, and readers of it.

One run writes its log; any number of readers read it from any id, replay what they missed and
then follow live. A reader is not a task: it is a cursor with ``take`` (everything pending,
joined into one ``bytes``) and ``notify`` (resolve this future at the next append or the close),
so the response that owns it sends a token in one wake-up of its own task, and a reader that
fell behind catches up in a few large writes. ``RunLog`` is the interface a Redis Streams
backend will implement for several server processes; ``MemoryRunLog`` serves one.

``MemoryRunLog`` keeps the deltas' texts in one ``bytearray`` with an array of their ends and
encodes a delta's frame when a reader takes it: a token costs its text and eight bytes. It must
never block a writer on a slow reader (readers keep their own cursor) nor hold the event loop
long for one that is far behind (a take encodes at most ``_TAKE_FRAMES`` frames).
"""

from __future__ import annotations

import asyncio
import json
from array import array
from collections.abc import AsyncIterator
from typing import Protocol

__all__ = ["LogReader", "MemoryRunLog", "RunLog", "batches", "delta_frame"]


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
        """Add one encoded frame; return its sequence id."""
        ...

    def append_delta(self, text: str) -> int:
        """Add the delta event carrying ``text`` (``delta_frame``); return its sequence id."""
        ...

    @property
    def text(self) -> str:
        """The texts of every delta so far, joined: the answer."""
        ...

    @property
    def text_size(self) -> int:
        """A measure of ``text`` that grows with every non-empty delta (cheap to read)."""
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


def delta_frame(seq: int, text: str) -> bytes:
    """``encode(json_data({"text": text}), event="delta", id=str(seq))``, ten times cheaper.

    The per-token path: ``json.dumps`` of a plain string with its default (cached) encoder is
    ASCII-only and escapes CR, LF, U+2028 and U+2029, so the frame is one data line by
    construction; a test checks it against the generic encoder.
    """
    return b'id: %d\nevent: delta\ndata: {"text":%s}\n\n' % (seq, json.dumps(text).encode())


class MemoryRunLog:
    """A ``RunLog`` in this process's memory.

    A delta is kept as its text's UTF-8 bytes in one ``bytearray`` (with the array of where each
    frame's text ends), and its frame is encoded when a reader takes it: a token costs its text
    and eight bytes, not a Python object nor the fifty bytes of its frame. The few other frames
    (``run``, ``error``, ``done``) are kept whole.
    """

    __slots__ = ("_closed", "_ends", "_frames", "_text", "_waiters")

    def __init__(self) -> None:
        self._text = bytearray()
        # _ends[i]: where frame i's text ends in _text (a whole frame adds none).
        self._ends = array("Q")
        self._frames: dict[int, bytes] = {}
        self._closed = False
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def last_seq(self) -> int:
        return len(self._ends) - 1

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def text(self) -> str:
        return self._text.decode()

    @property
    def text_size(self) -> int:
        """The text's size in UTF-8 bytes."""
        return len(self._text)

    def append(self, frame: bytes) -> int:
        if self._closed:
            raise RuntimeError("append to a closed run log")
        ends = self._ends
        seq = len(ends)
        ends.append(len(self._text))
        self._frames[seq] = frame
        if self._waiters:
            self._wake()
        return seq

    def append_delta(self, text: str) -> int:
        if self._closed:
            raise RuntimeError("append to a closed run log")
        buffer = self._text
        buffer += text.encode()
        ends = self._ends
        ends.append(len(buffer))
        if self._waiters:
            self._wake()
        return len(ends) - 1

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
        ends = self._ends
        end = min(len(ends), position + _TAKE_FRAMES)
        if position >= end:
            return b"", position
        frames, text = self._frames, self._text
        start = ends[position - 1] if position else 0
        out: list[bytes] = []
        for seq in range(position, end):
            stop = ends[seq]
            frame = frames.get(seq)
            if frame is None:
                frame = delta_frame(seq, text[start:stop].decode())
            out.append(frame)
            start = stop
        return (out[0] if len(out) == 1 else b"".join(out)), end

    def _notify(self, waiter: asyncio.Future[None]) -> None:
        if self._closed:
            if not waiter.done():
                waiter.set_result(None)
        else:
            waiters = self._waiters
            if len(waiters) >= 8:  # readers woken by something else (a heartbeat) left these
                waiters[:] = [w for w in waiters if not w.done()]
            waiters.append(waiter)


# A reader far behind (a replay) gets its backlog in slices of this many frames per take, so
# encoding them never holds the event loop for long.
_TAKE_FRAMES = 512


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
        return log._closed and self._position >= len(log._ends)

    def notify(self, waiter: asyncio.Future[None]) -> None:
        self._log._notify(waiter)

    def close(self) -> None:
        pass
