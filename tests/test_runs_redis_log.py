"""ssechat.runs.redis_log: run logs in Redis Streams, written by one process and followed by
another (a second client), against a real redis-server."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import orjson
import pytest
import redis.asyncio as redis

from ssechat.runs.log import MemoryRunLog
from ssechat.runs.redis_log import FollowedLog, RedisLogs, RedisRunLog
from ssechat.sse import EventDecoder, json_data

from .runlog_support import read_all, read_until
from .services import RedisServer, running_redis

pytestmark = pytest.mark.anyio

RETENTION = 60.0


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


async def _logs(url: str, prefix: str, linger: float = 0.0) -> tuple[redis.Redis, RedisLogs]:
    # No linger by default: these tests count the flusher's calls exactly (one per wake-up);
    # the linger has a test of its own.
    client = redis.Redis.from_url(url)
    return client, RedisLogs(client, retention=RETENTION, prefix=prefix, linger=linger)


@pytest.fixture
async def two(redis_server: RedisServer) -> AsyncIterator[tuple[RedisLogs, RedisLogs]]:
    """Two processes' RedisLogs (two clients) on one fresh key prefix."""
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    client_a, a = await _logs(redis_server.url, prefix)
    client_b, b = await _logs(redis_server.url, prefix)
    try:
        yield a, b
    finally:
        await a.aclose()
        await b.aclose()
        await client_a.aclose()
        await client_b.aclose()


async def write_run(log: RedisRunLog, deltas: int, *, done: bool = True) -> None:
    await log.append("run", json_data({"run_id": log.run_id}))
    await log.append_reasoning("hmm ")
    for i in range(deltas):
        await log.append_delta(f"t{i} ")
    if done:
        await log.append("done", json_data({"status": "complete"}))
        await log.close()


def ids(raw: bytes) -> list[int]:
    return [int(event.last_event_id) for event in EventDecoder().feed(raw)]


async def test_events_gives_back_what_was_appended() -> None:
    log = MemoryRunLog("r")
    await log.append("run", json_data({"a": "x\ny"}))
    await log.append_delta("he")
    await log.append_reasoning("think")
    await log.append_delta("llo")
    await log.append("done", "{}")
    assert log.events(0, 5) == [
        ("run", json_data({"a": "x\ny"})),
        ("delta", "he"),
        ("reasoning", "think"),
        ("delta", "llo"),
        ("done", "{}"),
    ]
    assert log.events(2, 4) == [("reasoning", "think"), ("delta", "llo")]
    assert log.event_count == 5


async def test_a_run_followed_from_another_process_has_every_event_with_the_same_ids(
    two: tuple[RedisLogs, RedisLogs],
) -> None:
    a, b = two
    writer = a.writer("r1")
    with anyio.fail_after(10):
        await write_run(writer, 5, done=False)
        await writer.flushed()
        mirror = await b.follow("r1")
        assert isinstance(mirror, FollowedLog)
        assert mirror.started == {"run_id": "r1"}
        assert await mirror.last_id() == 6  # follow returns with what the stream held
        for i in range(5, 40):  # live from here on
            await writer.append_delta(f"t{i} ")
        await writer.append("done", json_data({"status": "complete"}))
        await writer.close()
        followed = await read_all(mirror.reader())
        local = await read_all(writer.reader())
    assert followed == local
    assert ids(followed) == list(range(43))
    assert mirror.done == {"status": "complete"}
    assert await mirror.text() == await writer.text()
    assert await mirror.reasoning() == "hmm "


async def test_resume_from_any_id_has_no_gap_and_no_duplicate(
    two: tuple[RedisLogs, RedisLogs],
) -> None:
    a, b = two
    writer = a.writer("r2")
    with anyio.fail_after(10):
        await write_run(writer, 12)
        await writer.flushed()
        mirror = await b.follow("r2")
        assert mirror is not None
        await mirror.wait_for(14)
        for after in range(-1, 15):
            assert await read_all(mirror.reader(after)) == await read_all(writer.reader(after))


async def test_many_local_readers_share_one_follower(two: tuple[RedisLogs, RedisLogs]) -> None:
    a, b = two
    writer = a.writer("r3")
    with anyio.fail_after(10):
        await write_run(writer, 3, done=False)
        await writer.flushed()
        mirrors = await asyncio.gather(*(b.follow("r3") for _ in range(20)))
        assert all(mirror is mirrors[0] for mirror in mirrors)
        followers = [t for t in asyncio.all_tasks() if "_follow" in repr(t.get_coro())]
        assert len(followers) == 1
        mirror = mirrors[0]
        assert mirror is not None
        readers = [mirror.reader() for _ in range(50)]
        await writer.append("done", "{}")
        await writer.close()
        outputs = await asyncio.gather(*(read_all(reader) for reader in readers))
    assert len(set(outputs)) == 1
    assert ids(outputs[0]) == list(range(6))
    # One reader of the stream served them all: a handful of XREADs, not one per reader.
    assert b.xreads < len(readers)


async def test_appends_made_while_a_write_is_in_flight_become_one_entry(
    two: tuple[RedisLogs, RedisLogs], redis_server: RedisServer
) -> None:
    a, _ = two
    writer = a.writer("r4")
    with anyio.fail_after(10):
        await writer.append("run", "{}")
        await asyncio.sleep(0)  # the flusher starts its XADD of the first event
        for i in range(200):
            await writer.append_delta(f"t{i}")
        await writer.flushed()
        length = await a.client.xlen(a.key("r4"))
    assert writer.entries == length
    assert length < 201
    assert length <= 3


async def contiguous_entries(logs: RedisLogs, run_id: str) -> int:
    """Check the run's stream: each entry starts where the one before ended; the ids it holds."""
    have = 0
    for entry_id, fields in await logs.client.xrange(logs.key(run_id)):
        assert int(fields[b"f"]) == have
        have = int(entry_id.decode().partition("-")[0])
        assert have == int(fields[b"f"]) + len(orjson.loads(fields[b"b"]))
    return have


async def test_runs_appending_while_a_flush_is_in_flight_share_the_next_one(
    two: tuple[RedisLogs, RedisLogs],
) -> None:
    a, b = two
    writers = [a.writer(f"m{i}") for i in range(20)]
    with anyio.fail_after(10):
        for writer in writers:
            await writer.append("run", json_data({"run_id": writer.run_id}))
        await asyncio.gather(*(writer.flushed() for writer in writers))
        mirrors = [await b.follow(writer.run_id) for writer in writers]
        for round_ in range(3):
            pipelines, xadds = a.pipelines, a.xadds
            await writers[0].append_delta("first ")
            await asyncio.sleep(0)  # the flusher sends a call with writer 0's entry alone
            for writer in writers:  # …while every run appends: they all wait for the next one
                await writer.append_delta(f"r{round_}a ")
                await writer.append_reasoning(f"r{round_} ")
                await writer.append_delta(f"r{round_}b ")
            await asyncio.gather(*(writer.flushed() for writer in writers))
            # Two flush calls: writer 0's, then one carrying the 20 runs' entries.
            assert (a.pipelines - pipelines, a.xadds - xadds) == (2, 21)
        for writer in writers:
            await writer.append("done", json_data({"status": "complete"}))
            await writer.close()
        await asyncio.gather(*(writer.flushed() for writer in writers))
        followed = [await read_all(mirror.reader()) for mirror in mirrors if mirror is not None]
        local = [await read_all(writer.reader()) for writer in writers]
        held = [await contiguous_entries(a, writer.run_id) for writer in writers]
    assert a.pipelines * 5 < a.xadds  # far fewer round trips than entries
    assert followed == local
    assert [ids(raw) for raw in followed] == [list(range(14))] + [list(range(11))] * 19
    assert held == [14] + [11] * 19
    assert [writer.entries for writer in writers] == [8] + [5] * 19
    ttls = [await a.client.pttl(a.key(writer.run_id)) for writer in writers]
    assert all(0 < ttl <= RETENTION * 1000 for ttl in ttls)


async def test_a_refused_xadd_resyncs_that_run_only(
    two: tuple[RedisLogs, RedisLogs], caplog: pytest.LogCaptureFixture
) -> None:
    a, b = two
    writers = [a.writer(f"x{i}") for i in range(4)]
    ended, others = writers[1], writers[:1] + writers[2:]
    with anyio.fail_after(10):
        for writer in writers:
            await write_run(writer, 2, done=False)
        await asyncio.gather(*(writer.flushed() for writer in writers))
        # Another process ends run x1: its stream's top is now its writer's next id + 2.
        error = json_data({"code": "interrupted", "message": "the owner looked dead"})
        assert await b.end("x1", [("error", error), ("done", json_data({"status": "x"}))])
        xadds = a.xadds
        await writers[0].append_delta("alone ")
        await asyncio.sleep(0)  # a flush in flight: the appends below share the next one
        with caplog.at_level(logging.INFO, logger="ssechat.runs.redis_log"):
            for writer in writers:
                await writer.append_delta("late ")
                await writer.append_delta("later ")  # x1's XADD id is then the stream's top
            await asyncio.gather(*(writer.flushed() for writer in writers))
            for writer in others:
                await writer.append("done", "{}")
                await writer.close()
            await asyncio.gather(*(writer.flushed() for writer in others))
    # x0's alone; one call with the 4 runs' entries (x1's refused, never re-sent: Redis
    # holds more than its writer has); the 3 others' done.
    assert a.xadds - xadds == 1 + 4 + 3
    # The others' entries landed; x1's stream kept what the other process wrote.
    assert [await contiguous_entries(a, w.run_id) for w in others] == [8, 7, 7]
    assert await a.client.xlen(a.key("x1")) == 2
    snap = await b.snapshot("x1")
    assert snap is not None
    assert (snap.ended, snap.last_id, snap.text) == (True, 5, "t0 t1 ")
    assert ended.entries == 1
    assert [w.entries for w in others] == [4, 3, 3]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "run x1: cannot write its log" in warnings[0]
    assert "ResponseError" in warnings[0]


async def test_a_closed_runs_stream_expires_after_the_retention(
    two: tuple[RedisLogs, RedisLogs],
) -> None:
    a, _ = two
    writer = a.writer("r5")
    with anyio.fail_after(10):
        await write_run(writer, 3, done=False)
        await writer.flushed()
        assert await a.client.pttl(a.key("r5")) == -1  # live: no expiry yet
        await writer.append("done", "{}")
        await writer.close()
        await writer.flushed()
        ttl = await a.client.pttl(a.key("r5"))
    assert 0 < ttl <= RETENTION * 1000


async def test_snapshot_and_end_a_dead_writers_run(two: tuple[RedisLogs, RedisLogs]) -> None:
    a, b = two
    assert await b.snapshot("nothing") is None
    assert await b.follow("nothing") is None
    writer = a.writer("r6")  # its process "dies" after these: never closed
    with anyio.fail_after(10):
        await write_run(writer, 4, done=False)
        await writer.flushed()
        snap = await b.snapshot("r6")
        assert snap is not None
        assert (snap.text, snap.reasoning, snap.last_id, snap.ended) == (
            "t0 t1 t2 t3 ",
            "hmm ",
            5,
            False,
        )
        mirror = await b.follow("r6")
        assert mirror is not None
        error = json_data({"code": "interrupted", "message": "the server stopped"})
        done = json_data({"status": "interrupted"})
        assert await b.end("r6", [("error", error), ("done", done)])
        events, _ = await read_until(mirror.reader(3), lambda seen: False)
    assert [(e.type, e.last_event_id) for e in events][-2:] == [("error", "6"), ("done", "7")]
    assert mirror.error == {"code": "interrupted", "message": "the server stopped"}
    assert mirror.done == {"status": "interrupted"}
    snap = await b.snapshot("r6")
    assert snap is not None
    assert (snap.ended, snap.last_id) == (True, 7)
    assert not await a.end("r6", [("done", done)])  # already done: refused
    assert await a.client.xlen(a.key("r6")) == 2
    assert 0 < await a.client.pttl(a.key("r6")) <= RETENTION * 1000


async def test_a_gap_in_the_stream_ends_the_copy_rather_than_misnumber(
    two: tuple[RedisLogs, RedisLogs],
) -> None:
    a, b = two
    key = a.key("r7")
    await a.client.xadd(key, {"f": 0, "b": orjson.dumps([["run", "{}"]])}, id="1-0")
    with anyio.fail_after(10):
        mirror = await b.follow("r7")
        assert mirror is not None
        await a.client.xadd(key, {"f": 5, "b": orjson.dumps([["delta", "x"]])}, id="6-0")
        raw = await read_all(mirror.reader())
    assert ids(raw) == [0]
    assert mirror.error is not None
    assert mirror.error["code"] == "log_gap"


@pytest.mark.parametrize("survives", [False, True], ids=["stream-lost", "stream-kept"])
async def test_redis_stopped_and_started_mid_run(tmp_path: Path, survives: bool) -> None:
    server = RedisServer(tmp_path / "redis", appendonly=survives)
    server.start()
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    client_a, a = await _logs(server.url, prefix)
    client_b, b = await _logs(server.url, prefix)
    try:
        writer = a.writer("r8")
        with anyio.fail_after(60):
            await write_run(writer, 5, done=False)
            await writer.flushed()
            mirror = await b.follow("r8")
            assert mirror is not None
            local = writer.reader()
            await read_until(local, lambda seen: len(seen) == 7)

            server.stop()
            for i in range(5, 30):
                await writer.append_delta(f"t{i} ")
            # The owner's local readers go on while Redis is down.
            events, _ = await read_until(local, lambda seen: len(seen) == 25)
            assert events[-1].last_event_id == "31"
            await writer.append("done", json_data({"status": "complete"}))
            await writer.close()  # returns at once; the backlog waits for Redis
            await read_until(local, lambda seen: False)
            assert local.ended

            server.start()
            await writer.flushed()
            followed = await read_all(mirror.reader())
        assert followed == await read_all(writer.reader())
        assert ids(followed) == list(range(33))
        assert mirror.done == {"status": "complete"}
        snap = await b.snapshot("r8")
        assert snap is not None
        assert (snap.ended, snap.last_id) == (True, 32)
    finally:
        await a.aclose()
        await b.aclose()
        await client_a.aclose()
        await client_b.aclose()
        server.stop()


async def test_the_linger_lets_runs_that_append_soon_after_share_a_call(
    redis_server: RedisServer,
) -> None:
    # Run 0 appends alone; run 1 appends a few loop turns later, while the flusher lingers:
    # one call carries both. (The linger is long, so that "a few loop turns" always fit in it;
    # what is asserted is the count of calls, not a time.)
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    client, logs = await _logs(redis_server.url, prefix, linger=2.0)
    try:
        first, second = logs.writer("l0"), logs.writer("l1")
        with anyio.fail_after(20):
            await first.append("run", json_data({"run_id": "l0"}))
            for _ in range(3):
                await asyncio.sleep(0)
            await second.append("run", json_data({"run_id": "l1"}))
            await asyncio.gather(first.flushed(), second.flushed())
        assert (logs.pipelines, logs.xadds) == (1, 2)
    finally:
        await logs.aclose()
        await client.aclose()
