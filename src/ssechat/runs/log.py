"""The run event log: the interface a run writes its events through, and the in-memory one.

One run writes its log; any number of readers read it from any id, replay what they missed and
then follow live. ``RunLog`` is what a backend implements: ``MemoryRunLog`` serves one server
process; a Redis Streams log (several processes) is the next one. ``RunManager`` takes a factory
of logs, so the manager never knows which.

The contract, shaped for a networked backend:

- The log assigns the ids and encodes each frame with the id it assigned: ``append``,
  ``append_delta`` and ``append_reasoning`` return it (deltas and reasoning share one sequence,
  so a ``Last-Event-ID`` resumes across both). Ids are non-negative integers, increasing in the
  order of the appends; nobody else predicts them (the memory log numbers 0, 1, 2…, another
  may not).
- What may be a network call is async: ``append``, ``append_delta`` and ``append_reasoning``
  (one call per ``Delta``, that is per upstream read, so a networked log writes one entry per
  read, not per token), ``close``, ``text``, ``reasoning`` and ``last_id``. ``last_id`` is
  async because the API checks a client's ``Last-Event-ID`` against it, and a client may have
  seen an id, served by another process, that this process's copy of the log has not caught up
  with: only the log itself can answer.
- ``text_size`` is not: it is what this handle (the run's writer) has appended, a counter the
  saver reads every tick to skip runs that did not grow.
- ``reader`` is a ``ssechat.frames.FrameSource``: its ``take`` reads local memory and never
  waits, its ``notify`` is where waiting happens. A networked backend fills its readers from one
  follower task per run per process (one blocking read of the stream serving every local
  reader) and resolves their futures when frames arrive; so a token still costs a response one
  wake-up and one write, and a thousand readers of one run cost one network read, not a
  thousand.

``MemoryRunLog`` keeps the deltas' texts in one ``bytearray`` with an array of their ends and
encodes a delta's frame when a reader takes it: a token costs its text and eight bytes. Reasoning
is kept the same way in a second buffer, with the ids of its entries in an array of their own
that a take looks at only once the log holds reasoning: a plain answer pays nothing for it. Its
async methods never suspend. It must never block a writer on a slow reader (readers keep their
own cursor) nor hold the event loop long for one that is far behind (a take encodes at most
``_TAKE_FRAMES`` frames).
"""

from __future__ import annotations

import asyncio
import json
from array import array
from bisect import bisect_left
from collections.abc import Iterator
from typing import Protocol

from ssechat.frames import FrameSource
from ssechat.sse import EventDecoder, encode

__all__ = ["MemoryLogReader", "MemoryRunLog", "RunLog", "delta_frame", "reasoning_frame"]


class RunLog(Protocol):
    """A run's events, numbered by the log; ``close`` marks the end of the run."""

    async def append(self, event: str, data: str) -> int:
        """Add the event ``event`` carrying ``data`` (``encode(data, event=…, id=…)`` with the
        id this call assigns); return that id."""
        ...

    async def append_delta(self, text: str) -> int:
        """Add the ``delta`` event carrying ``text`` (as ``delta_frame`` encodes it); return its
        id. The per-token path: keep it cheap."""
        ...

    async def append_reasoning(self, text: str) -> int:
        """Add the ``reasoning`` event carrying ``text`` (as ``reasoning_frame`` encodes it);
        return its id, from the same sequence as the deltas'."""
        ...

    async def close(self) -> None:
        """No more appends: readers end once they have taken everything."""
        ...

    async def text(self) -> str:
        """The texts of every delta so far, joined: the answer."""
        ...

    async def reasoning(self) -> str:
        """The texts of every reasoning event so far, joined: the model's thinking."""
        ...

    async def last_id(self) -> int:
        """The id of the newest event, -1 while empty."""
        ...

    @property
    def text_size(self) -> int:
        """A measure of the text this handle appended, which grows with every non-empty delta
        or reasoning; no IO."""
        ...

    def reader(self, after: int = -1) -> FrameSource:
        """A cursor on the events with ids greater than ``after``, live until the close."""
        ...


def delta_frame(seq: int, text: str) -> bytes:
    """``encode(json_data({"text": text}), event="delta", id=str(seq))``, ten times cheaper.

    The per-token path: ``json.dumps`` of a plain string with its default (cached) encoder is
    ASCII-only and escapes CR, LF, U+2028 and U+2029, so the frame is one data line by
    construction; a test checks it against the generic encoder.
    """
    return b'id: %d\nevent: delta\ndata: {"text":%s}\n\n' % (seq, json.dumps(text).encode())


def reasoning_frame(seq: int, text: str) -> bytes:
    """``encode(json_data({"text": text}), event="reasoning", id=str(seq))``, as ``delta_frame``."""
    return b'id: %d\nevent: reasoning\ndata: {"text":%s}\n\n' % (seq, json.dumps(text).encode())


class MemoryRunLog:
    """A ``RunLog`` in this process's memory, numbered 0, 1, 2….

    A delta is kept as its text's UTF-8 bytes in one ``bytearray`` (with the array of where each
    frame's text ends), and its frame is encoded when a reader takes it: a token costs its text
    and eight bytes, not a Python object nor the fifty bytes of its frame. The few other frames
    (``run``, ``error``, ``done``) are kept whole. A reasoning entry adds no answer text (its
    ``_ends`` entry repeats the previous one); its text goes to ``_reasoning``, its id to
    ``_reasoning_ids`` and its end there to ``_reasoning_ends``: sixteen bytes more.
    """

    __slots__ = (
        "_closed",
        "_ends",
        "_frames",
        "_reasoning",
        "_reasoning_ends",
        "_reasoning_ids",
        "_text",
        "_waiters",
        "run_id",
    )

    def __init__(self, run_id: str = "") -> None:
        self.run_id = run_id  # what a networked log would key its stream by; kept for repr
        self._text = bytearray()
        # _ends[i]: where frame i's text ends in _text (a whole frame adds none).
        self._ends = array("Q")
        self._frames: dict[int, bytes] = {}
        self._reasoning = bytearray()
        self._reasoning_ids = array("Q")  # the ids of the reasoning entries, increasing
        self._reasoning_ends = array("Q")  # where each one's text ends in _reasoning
        self._closed = False
        self._waiters: list[asyncio.Future[None]] = []

    def __repr__(self) -> str:
        return f"<MemoryRunLog {self.run_id!r}: {len(self._ends)} events>"

    async def last_id(self) -> int:
        return len(self._ends) - 1

    async def text(self) -> str:
        return self._text.decode()

    async def reasoning(self) -> str:
        return self._reasoning.decode()

    @property
    def text_size(self) -> int:
        """The size of the answer and the reasoning in UTF-8 bytes."""
        return len(self._text) + len(self._reasoning)

    async def append(self, event: str, data: str) -> int:
        if self._closed:
            raise RuntimeError("append to a closed run log")
        ends = self._ends
        seq = len(ends)
        self._frames[seq] = encode(data, event=event, id=str(seq))
        ends.append(len(self._text))
        if self._waiters:
            self._wake()
        return seq

    async def append_delta(self, text: str) -> int:
        if self._closed:
            raise RuntimeError("append to a closed run log")
        buffer = self._text
        buffer += text.encode()
        ends = self._ends
        ends.append(len(buffer))
        if self._waiters:
            self._wake()
        return len(ends) - 1

    async def append_reasoning(self, text: str) -> int:
        if self._closed:
            raise RuntimeError("append to a closed run log")
        buffer = self._reasoning
        buffer += text.encode()
        ends = self._ends
        seq = len(ends)
        self._reasoning_ids.append(seq)
        self._reasoning_ends.append(len(buffer))
        ends.append(len(self._text))
        if self._waiters:
            self._wake()
        return seq

    async def close(self) -> None:
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

    @property
    def event_count(self) -> int:
        """How many events the log holds (the next id); no IO."""
        return len(self._ends)

    def events(self, start: int, stop: int) -> list[tuple[str, str]]:
        """The events with ids ``start`` to ``stop - 1`` as ``(kind, payload)``: ``("delta",
        text)``, ``("reasoning", text)``, else ``(event, data)``. For a networked log that
        copies this one (``ssechat.runs.redis_log``), once per batch, never per token: the whole
        frames are decoded back from their encoding (their data never holds a line break, as
        ``json_data`` writes it: the decoder joins data lines with LF)."""
        out: list[tuple[str, str]] = []
        for _, kind, value in self._entries(start, min(stop, len(self._ends))):
            if isinstance(value, bytes):
                event = EventDecoder().feed(value)[0]
                out.append((event.type, event.data))
            else:
                out.append((kind, value))
        return out

    def _entries(self, start: int, stop: int) -> Iterator[tuple[int, str, str | bytes]]:
        """The entries with ids ``start`` to ``stop - 1`` (within the log) as ``(seq, kind,
        value)``: ``(seq, "delta", text)``, ``(seq, "reasoning", text)``, or ``(seq, "frame",
        its whole frame)``. The one walk over the log's arrays, shared by a reader's take of a
        log that holds reasoning and by ``events``."""
        ends, frames, text = self._ends, self._frames, self._text
        ids, reasoning_ends, reasoning = self._reasoning_ids, self._reasoning_ends, self._reasoning
        k = bisect_left(ids, start)  # the first reasoning entry at or after start
        next_reasoning = ids[k] if k < len(ids) else -1
        begin = ends[start - 1] if start else 0
        for seq in range(start, stop):
            if seq == next_reasoning:
                first = reasoning_ends[k - 1] if k else 0
                yield seq, "reasoning", reasoning[first : reasoning_ends[k]].decode()
                k += 1
                next_reasoning = ids[k] if k < len(ids) else -1
                continue
            end = ends[seq]
            frame = frames.get(seq)
            if frame is None:
                yield seq, "delta", text[begin:end].decode()
            else:
                yield seq, "frame", frame
            begin = end

    def _take(self, position: int) -> tuple[bytes, int]:
        ends = self._ends
        end = min(len(ends), position + _TAKE_FRAMES)
        if position >= end:
            return b"", position
        if self._reasoning_ids:
            return self._take_mixed(position, end)
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

    def _take_mixed(self, position: int, end: int) -> tuple[bytes, int]:
        # _take for a log that holds reasoning: each entry a whole frame, a reasoning entry or
        # a delta, encoded as taken.
        out: list[bytes] = []
        for seq, kind, value in self._entries(position, end):
            if isinstance(value, bytes):
                out.append(value)
            elif kind == "delta":
                out.append(delta_frame(seq, value))
            else:
                out.append(reasoning_frame(seq, value))
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
    """A cursor on a ``MemoryRunLog`` (a ``FrameSource``)."""

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
