"""``python -m bench.micro``: the per-token building blocks of ssechat, today's and proposed.

Each line times one operation of the relay path in a tight loop (µs per call, best of 5 runs),
next to the cheaper form PROFILE.md proposes, so that a proposal's gain can be checked before
and after a change to ``src/``. Single-threaded, no sockets, a few seconds in all; numbers are
for comparison on one machine, not absolute.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import h11
import httptools
import orjson
import uvloop

from ssechat.fake_upstream.wire import ChunkWriter, chunked
from ssechat.providers.openai import _parse_chunk
from ssechat.runs.manager import delta_frame
from ssechat.sse import EventDecoder, encode, json_data
from ssechat.store import Store

TEXT = " naïve"
FRAME = ChunkWriter("chatcmpl-1", "fake-tokens-200@20", created=0).content(TEXT)
CHUNK = chunked(FRAME)


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
        ("runs.manager.delta_frame (today's hot path)", timeit(
            lambda: delta_frame(17, TEXT), 100_000)),
    ]  # fmt: skip


def parsing() -> list[tuple[str, float]]:
    decoder = EventDecoder()

    def current() -> None:
        for event in decoder.feed(FRAME):
            _parse_chunk(event.data)

    return [
        ("EventDecoder.feed + _parse_chunk, one frame", timeit(current, 50_000)),
        ("split on blank line + orjson (proposed)", timeit(lambda: fast_parse(FRAME), 50_000)),
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
        store = await Store.open(str(Path(tmp) / "a.db"))
        try:
            conversation = await store.create_conversation(model="m")
            _, answer = await store.add_exchange(
                conversation.id, parent_id=None, user_content="hi", model="m"
            )
            n = 300
            start = time.perf_counter()
            for i in range(n):
                await store.update_message(answer.id, content="x" * (i + 1))
            one = (time.perf_counter() - start) / n * 1e6
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
        ("Store.update_message, one answer (today, per save)", one),
        ("sqlite3 executemany, 100 answers per transaction (per answer)", batched),
    ]


async def _async_parts() -> list[tuple[str, list[tuple[str, float]]]]:
    return [("scheduling", await scheduling()), ("persistence", await persistence())]


def main() -> None:
    sections = [("encoding a delta", encoding()), ("reading an upstream chunk", parsing())]
    sections.append(("HTTP/1.1 chunked body", http_body()))
    sections += uvloop.run(_async_parts())
    for title, rows in sections:
        print(f"{title}:")
        for name, us in rows:
            print(f"  {us:9.2f} µs  {name}")


if __name__ == "__main__":
    main()
