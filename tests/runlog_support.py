"""Test doubles for runs: a second ``RunLog``, a scripted provider, an answer store in memory.

``ListRunLog`` is what a networked log looks like to the manager: each of its async methods
really suspends (a round trip), it numbers events its own way (1000, 1007, 1014…, so an id
the manager predicted would show), it keeps every encoded frame in a list, and its readers are
fed by pushes from it (as a follower task would feed them) rather than reading its storage.
"""

from __future__ import annotations

import asyncio
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Mapping,
    Sequence,
)
from typing import Any

from ssechat.errors import SSEChatError
from ssechat.frames import FrameSource
from ssechat.providers.base import ChatMessage, Delta, GenerationParams, Usage
from ssechat.sse import Event, EventDecoder, encode, json_data


async def batches(source: FrameSource) -> AsyncIterator[bytes]:
    """Read ``source`` as an async iterator of batches until it ends; close it at the end."""
    try:
        while True:
            batch = source.take()
            if batch:
                yield batch
            elif source.ended:
                return
            else:
                waiter = asyncio.get_running_loop().create_future()
                source.notify(waiter)
                await waiter
    finally:
        source.close()


async def read_all(source: FrameSource) -> bytes:
    return b"".join([batch async for batch in batches(source)])


async def read_until(
    source: FrameSource, done: Callable[[list[Event]], bool]
) -> tuple[list[Event], bytes]:
    """The events of ``source`` (and their bytes) up to the first batch after which ``done``
    holds, or up to its end; the source is left open."""
    decoder = EventDecoder()
    events: list[Event] = []
    raw = bytearray()
    while not done(events):
        batch = source.take()
        if batch:
            raw += batch
            events.extend(decoder.feed(batch))
        elif source.ended:
            break
        else:
            waiter = asyncio.get_running_loop().create_future()
            source.notify(waiter)
            await waiter
    return events, bytes(raw)


class ListReader:
    """A ``FrameSource`` fed by its log's pushes."""

    def __init__(self, log: ListRunLog, after: int) -> None:
        self.log = log
        self.pending = [frame for id, frame in log.frames if id > after]
        self.done = log.closed
        self.waiter: asyncio.Future[None] | None = None
        self.closed = False

    def push(self, frame: bytes) -> None:
        self.pending.append(frame)
        self._wake()

    def end(self) -> None:
        self.done = True
        self._wake()

    def _wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def take(self) -> bytes:
        chunk = b"".join(self.pending)
        self.pending.clear()
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
        self.closed = True
        self.log.readers.discard(self)


class ListRunLog:
    """A ``RunLog`` whose ids are ``FIRST + STEP * n`` and whose async methods suspend."""

    FIRST = 1000
    STEP = 7

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.frames: list[tuple[int, bytes]] = []
        self.texts: list[str] = []
        self.thoughts: list[str] = []
        self.closed = False
        self.readers: set[ListReader] = set()
        self.size = 0

    def _add(self, event: str, data: str) -> int:
        if self.closed:
            raise RuntimeError("append to a closed run log")
        id = self.FIRST + self.STEP * len(self.frames)
        frame = encode(data, event=event, id=str(id))
        self.frames.append((id, frame))
        for reader in self.readers:
            reader.push(frame)
        return id

    async def append(self, event: str, data: str) -> int:
        await asyncio.sleep(0)
        return self._add(event, data)

    async def append_delta(self, text: str) -> int:
        await asyncio.sleep(0)
        id = self._add("delta", json_data({"text": text}))
        self.texts.append(text)
        self.size += len(text)
        return id

    async def append_reasoning(self, text: str) -> int:
        await asyncio.sleep(0)
        id = self._add("reasoning", json_data({"text": text}))
        self.thoughts.append(text)
        self.size += len(text)
        return id

    async def close(self) -> None:
        await asyncio.sleep(0)
        self.closed = True
        for reader in self.readers:
            reader.end()

    async def text(self) -> str:
        await asyncio.sleep(0)
        return "".join(self.texts)

    async def reasoning(self) -> str:
        await asyncio.sleep(0)
        return "".join(self.thoughts)

    async def last_id(self) -> int:
        await asyncio.sleep(0)
        return self.frames[-1][0] if self.frames else -1

    @property
    def text_size(self) -> int:
        return self.size

    def reader(self, after: int = -1) -> ListReader:
        reader = ListReader(self, after)
        if not self.closed:
            self.readers.add(reader)
        return reader


class ListLogFactory:
    """The manager's ``log_factory``: a ``ListRunLog`` per run, kept by run id."""

    def __init__(self) -> None:
        self.logs: dict[str, ListRunLog] = {}

    def __call__(self, run_id: str) -> ListRunLog:
        log = self.logs[run_id] = ListRunLog(run_id)
        return log


class ScriptedProvider:
    """A ``Provider`` that streams what the test puts in its queue: a text becomes a delta,
    an ``SSEChatError`` is raised, ``None`` ends the answer (finish ``stop``, with usage)."""

    name = "scripted"

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str | SSEChatError | None] = asyncio.Queue()
        self.closed = asyncio.Event()

    def feed(self, *items: str | SSEChatError | None) -> None:
        for item in items:
            self.queue.put_nowait(item)

    async def stream(
        self, messages: Sequence[ChatMessage], model: str, params: GenerationParams
    ) -> AsyncGenerator[Delta, None]:
        try:
            while True:
                item = await self.queue.get()
                if item is None:
                    yield Delta(finish_reason="stop")
                    yield Delta(usage=Usage(1, 2, 3))
                    return
                if isinstance(item, SSEChatError):
                    raise item
                yield Delta(text=item)
        finally:
            self.closed.set()

    async def list_models(self) -> list[str]:
        return ["scripted"]

    async def aclose(self) -> None:
        pass


class MemoryAnswers:
    """An ``AnswerStore`` in memory: the last content and fields saved for each answer."""

    def __init__(self) -> None:
        self.partial: list[dict[str, str]] = []
        self.partial_reasoning: list[dict[str, str]] = []
        self.final: dict[str, dict[str, Any]] = {}
        self.changed = asyncio.Event()  # set (and replaced) at every partial save

    async def save_partial_answers(
        self, contents: Mapping[str, str], reasoning: Mapping[str, str] | None = None
    ) -> None:
        await asyncio.sleep(0)
        self.partial.append(dict(contents))
        self.partial_reasoning.append(dict(reasoning or {}))
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()

    async def update_message(self, id: str, **fields: Any) -> None:
        await asyncio.sleep(0)
        self.final[id] = fields


Step = Delta | Callable[[], Awaitable[object]]


class ScriptedDeltas:
    """A ``Provider`` that plays a script: each ``Delta`` is yielded as it is, each callable is
    awaited (a gate the test opens, so a run pauses exactly where the test wants it). It keeps
    the messages of every request, as an upstream would see them."""

    name = "scripted-deltas"

    def __init__(self, *steps: Step) -> None:
        self.steps = steps
        self.requests: list[list[ChatMessage]] = []

    async def stream(
        self, messages: Sequence[ChatMessage], model: str, params: GenerationParams
    ) -> AsyncGenerator[Delta, None]:
        self.requests.append(list(messages))
        for step in self.steps:
            if isinstance(step, Delta):
                yield step
            else:
                await step()

    async def list_models(self) -> list[str]:
        return ["scripted-deltas"]

    async def aclose(self) -> None:
        pass
