"""``python -m bench.micro``: the per-token building blocks of ssechat, today's and proposed.

Each line times one operation of the relay path in a tight loop (µs per call, best of 5 runs),
next to the cheaper form PROFILE.md proposes, so that a proposal's gain can be checked before
and after a change to ``src/``. Single-threaded, no sockets, a few seconds in all; numbers are
for comparison on one machine, not absolute.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

import anyio
import h11
import httptools
import orjson
import uvloop

from ssechat.auth import AccountService, Principal
from ssechat.config import Settings
from ssechat.fake_upstream.wire import ChunkWriter, chunked
from ssechat.providers import ChatMessage, GenerationParams, OpenAIProvider
from ssechat.providers.chunks import FrameSplitter, parse_chunk
from ssechat.runs.log import delta_frame
from ssechat.sse import EventDecoder, encode, json_data
from ssechat.store import Store, open_store

TEXT = " naïve"
FRAME = ChunkWriter("chatcmpl-1", "fake-tokens-200@20", created=0).content(TEXT)
CHUNK = chunked(FRAME)

OWNER = "bench"  # every conversation here is one user's


def timeit(fn: Callable[[], object], number: int) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, time.perf_counter() - start)
    return best / number * 1e6


def fast_parse(frame: bytes) -> str | None:
    # data: {json}\n\n -> choices[0].delta.content, with orjson and no line machinery
    chunk = orjson.loads(frame[6:])
    choices = chunk.get("choices")
    if choices:
        delta = choices[0].get("delta")
        if delta:
            content = delta.get("content")
            return content if isinstance(content, str) else None
    return None


def encoding() -> list[tuple[str, float]]:
    return [
        ("sse.encode(json_data({'text'}), event, id) (generic)", timeit(
            lambda: encode(json_data({"text": TEXT}), event="delta", id="17"), 100_000)),
        ("runs.log.delta_frame (today's hot path)", timeit(
            lambda: delta_frame(17, TEXT), 100_000)),
    ]  # fmt: skip


def parsing() -> list[tuple[str, float]]:
    decoder = EventDecoder()

    def current() -> None:
        for event in decoder.feed(FRAME):
            parse_chunk(event.data)

    return [
        ("EventDecoder.feed + _parse_chunk, one frame", timeit(current, 50_000)),
        ("split on blank line + orjson (proposed)", timeit(lambda: fast_parse(FRAME), 50_000)),
    ]


def splitting() -> list[tuple[str, float]]:
    splitter = FrameSplitter()

    def provider_path() -> None:
        for frame in splitter.feed(FRAME):
            parse_chunk(frame if isinstance(frame, bytes) else frame.data)

    return [
        ("FrameSplitter.feed + parse_chunk (the provider's path)", timeit(provider_path, 50_000))
    ]


def http_body() -> list[tuple[str, float]]:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
    head += b"transfer-encoding: chunked\r\n\r\n"
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="POST", target="/", headers=[("host", "x")]))
    conn.receive_data(head)
    conn.next_event()

    def with_h11() -> None:
        conn.receive_data(CHUNK)
        conn.next_event()
        conn.next_event()  # NEED_DATA

    class Sink:
        def on_body(self, body: bytes) -> None:
            pass

    parser = httptools.HttpResponseParser(Sink())
    parser.feed_data(head)
    return [
        ("h11: one chunk in, one Data event out", timeit(with_h11, 50_000)),
        ("httptools.HttpResponseParser.feed_data (proposed)", timeit(
            lambda: parser.feed_data(CHUNK), 50_000)),
    ]  # fmt: skip


async def scheduling() -> list[tuple[str, float]]:
    loop = asyncio.get_running_loop()
    n = 20_000

    def fail_after() -> None:
        with anyio.fail_after(60):  # noqa: ASYNC100 - the cost of the scope itself
            pass

    def call_at() -> None:
        loop.call_at(loop.time() + 60, print).cancel()

    event = asyncio.Event()
    hops = 0

    async def waiter() -> None:
        nonlocal hops
        while hops < n:
            await event.wait()
            event.clear()
            hops += 1

    task = asyncio.create_task(waiter())
    start = time.perf_counter()
    while hops < n:
        event.set()
        await asyncio.sleep(0)
    hop = (time.perf_counter() - start) / n * 1e6
    await task
    return [
        ("anyio.fail_after/move_on_after scope (per read, per wake)", timeit(fail_after, n)),
        ("one loop.call_at + cancel (a plain timer)", timeit(call_at, n)),
        ("task hop: Event.set -> other task runs -> back", hop),
    ]


async def persistence() -> list[tuple[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        store = await open_store(str(Path(tmp) / "a.db"))
        try:
            conversation = await store.create_conversation(model="m", owner=OWNER)
            answers = [
                (
                    await store.start_exchange(
                        conversation.id, owner=OWNER, parent_id=None, user_content="hi", model="m"
                    )
                ).answer.id
                for _ in range(100)
            ]
            n = 300
            start = time.perf_counter()
            for i in range(n):
                await store.update_message(answers[0], content="x" * (i + 1))
            one = (time.perf_counter() - start) / n * 1e6
            saver = float("inf")
            for repeat in range(5):  # the runs' saver: every live answer in one executemany
                start = time.perf_counter()
                for round_ in range(20):
                    await store.save_partial_answers(
                        dict.fromkeys(answers, "x" * (repeat + round_ + 1))
                    )
                saver = min(saver, (time.perf_counter() - start) / 2000 * 1e6)
        finally:
            await store.close()
        db = sqlite3.connect(Path(tmp) / "b.db", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE m (id TEXT PRIMARY KEY, content TEXT, updated_at REAL)")
        db.executemany("INSERT INTO m VALUES (?, '', 0)", [(str(i),) for i in range(100)])
        start = time.perf_counter()
        for round_ in range(20):
            db.execute("BEGIN")
            db.executemany(
                "UPDATE m SET content = ?, updated_at = ? WHERE id = ?",
                [("x" * (round_ + 1), time.time(), str(i)) for i in range(100)],
            )
            db.execute("COMMIT")
        batched = (time.perf_counter() - start) / 2000 * 1e6
        db.close()
    return [
        ("Store.update_message, one answer (a run's final save)", one),
        ("Store.save_partial_answers, 100 answers per call (per answer)", saver),
        ("sqlite3 executemany, 100 answers per transaction (per answer)", batched),
    ]


# --- starting a turn: the store's part of a stream start -------------------------------------
#
# On a real SQLite file, each start in a conversation of its own that already holds two finished
# turns. CPU is ``time.process_time``, which counts every thread of the process: the store's
# threads as well as the loop's.


async def _turns(store: Store, count: int) -> list[tuple[str, str]]:
    """``count`` conversations of two finished turns: (conversation id, last answer id)."""
    leaves: list[tuple[str, str]] = []
    for _ in range(count):
        conversation = await store.create_conversation(owner=OWNER)
        parent: str | None = None
        for turn in range(2):
            started = await store.start_exchange(
                conversation.id,
                owner=OWNER,
                parent_id=parent,
                user_content=f"question {turn}",
                model="m",
            )
            await store.update_message(
                started.answer.id, content="an answer " * 40, status="complete"
            )
            parent = started.answer.id
        assert parent is not None
        leaves.append((conversation.id, parent))
    return leaves


async def store_starts() -> list[tuple[str, float]]:
    n, warm = 500, 50
    with tempfile.TemporaryDirectory() as tmp:
        store = await open_store(str(Path(tmp) / "starts.db"))
        try:
            leaves = await _turns(store, n + warm)
            best = float("inf")
            for _ in range(2):  # best of two
                for conversation_id, parent_id in leaves[:warm]:
                    await store.start_exchange(
                        conversation_id,
                        owner=OWNER,
                        parent_id=parent_id,
                        user_content="hi",
                        model="m",
                    )
                used = time.process_time()
                for conversation_id, parent_id in leaves[warm:]:
                    await store.start_exchange(
                        conversation_id,
                        owner=OWNER,
                        parent_id=parent_id,
                        user_content="hi",
                        model="m",
                    )
                best = min(best, (time.process_time() - used) / n * 1e6)
        finally:
            await store.close()
    return [("Store.start_exchange, one write transaction", best)]


# --- the provider: upstream socket bytes in, Delta out ----------------------------------------
#
# A raw HTTP/1.1 server in a child process (so that its CPU is not counted) answers every POST
# with pre-built chunked frames, asked for through the model name: ``burst-N`` writes N frames
# in one write (the saturated case: many frames per read), ``paced-N-MS`` one frame every MS
# milliseconds (the paced case: one frame per read). The parent streams them through
# ``OpenAIProvider.stream`` and counts its own CPU time (``time.process_time``) per token.

_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
    b"transfer-encoding: chunked\r\nconnection: keep-alive\r\n\r\n"
)


class _FrameServer(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end].decode("latin-1").lower()
        length = int(head.split("content-length:", 1)[1].split("\r\n", 1)[0])
        if len(self.buffer) < end + 4 + length:
            return
        body = orjson.loads(self.buffer[end + 4 : end + 4 + length])
        self.buffer = self.buffer[end + 4 + length :]
        asyncio.get_running_loop().create_task(self.answer(body["model"]))

    async def answer(self, model: str) -> None:
        assert self.transport is not None
        kind, count, *interval = model.split("-")
        frames = [CHUNK] * int(count) + [chunked(b"data: [DONE]\n\n"), b"0\r\n\r\n"]
        if kind == "burst":
            self.transport.write(_STREAM_HEAD + b"".join(frames))
            return
        self.transport.write(_STREAM_HEAD)
        loop = asyncio.get_running_loop()
        step = float(interval[0]) / 1000
        next_at = loop.time()
        for frame in frames:
            next_at += step
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            if self.transport.is_closing():
                return
            self.transport.write(frame)


def _serve_frames(ready: multiprocessing.SimpleQueue[int]) -> None:
    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_FrameServer, "127.0.0.1", 0, backlog=1024)
        ready.put(server.sockets[0].getsockname()[1])
        await asyncio.Future()

    uvloop.run(serve())


async def _tokens_per_cpu(provider: OpenAIProvider, model: str, streams: int) -> float:
    messages = [ChatMessage("user", "hi")]
    counts: list[int] = []

    async def one() -> None:
        size = 0
        async for delta in provider.stream(messages, model, GenerationParams()):
            size += len(delta.text)
        # The texts of one read are joined into one Delta: count tokens in the text.
        counts.append(size // len(TEXT))

    start = time.process_time()
    async with anyio.create_task_group() as tg:
        for _ in range(streams):
            tg.start_soon(one)
    used = time.process_time() - start
    tokens = sum(counts)
    assert tokens == streams * int(model.split("-")[1]), counts
    return used / tokens * 1e6


async def provider_path() -> list[tuple[str, float]]:
    context = multiprocessing.get_context("spawn")
    ready: multiprocessing.SimpleQueue[int] = context.SimpleQueue()
    server = context.Process(target=_serve_frames, args=(ready,), daemon=True)
    server.start()
    try:
        base_url = f"http://127.0.0.1:{ready.get()}/v1"
        provider = OpenAIProvider(base_url=base_url, max_retries=0)
        try:
            await _tokens_per_cpu(provider, "burst-100", 4)  # warm: connections, imports
            burst = min([await _tokens_per_cpu(provider, "burst-20000", 1) for _ in range(3)])
            paced = await _tokens_per_cpu(provider, "paced-200-5", 50)
        finally:
            await provider.aclose()
        return [
            ("saturated, 20 000 frames in one write", burst),
            ("paced, 50 streams x 200 frames at 200/s", paced),
        ]
    finally:
        server.kill()
        server.join()


async def auth_checks() -> list[tuple[str, float]]:
    """What checking a request's API key costs: from the cache (every request within
    ``CACHE_SECONDS`` of the last read), and the read itself (one indexed query on a reader)."""
    with tempfile.TemporaryDirectory() as tmp:
        store = await open_store(str(Path(tmp) / "auth.db"))
        try:
            accounts = AccountService(Settings(database_url=str(Path(tmp) / "auth.db")), store)
            user = await accounts.add_user(
                email="bench@example.com", password="benchmark-password", name=None, role="admin"
            )
            principal = Principal(user.id, user.email, None, "admin", "session", "")
            header = "Bearer " + (await accounts.create_key(principal, "bench"))["key"]
            n = 20_000
            await accounts.authenticate(header, None)
            start = time.perf_counter()
            for _ in range(n):
                await accounts.authenticate(header, None)
            cached = (time.perf_counter() - start) / n * 1e6
            reads = 300
            start = time.perf_counter()
            for _ in range(reads):
                accounts._cache.clear()  # as every CACHE_SECONDS
                await accounts.authenticate(header, None)
            read = (time.perf_counter() - start) / reads * 1e6
        finally:
            await store.close()
    return [
        ("AccountService.authenticate, an API key checked before (cached)", cached),
        ("AccountService.authenticate, the database read (once a second per key)", read),
    ]


async def _async_parts() -> list[tuple[str, list[tuple[str, float]]]]:
    return [
        ("checking a request's credentials", await auth_checks()),
        ("scheduling", await scheduling()),
        ("persistence", await persistence()),
        ("starting a turn in the store, CPU per start (process_time)", await store_starts()),
        ("OpenAIProvider.stream, CPU per token (process_time)", await provider_path()),
    ]


def main() -> None:
    sections = [
        ("encoding a delta", encoding()),
        ("reading an upstream chunk", parsing() + splitting()),
    ]
    sections.append(("HTTP/1.1 chunked body", http_body()))
    sections += uvloop.run(_async_parts())
    for title, rows in sections:
        print(f"{title}:")
        for name, us in rows:
            print(f"  {us:9.2f} µs  {name}")


if __name__ == "__main__":
    main()
