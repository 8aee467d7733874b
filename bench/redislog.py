"""``python -m bench.redislog``: what batching the Redis run log costs in latency and saves in CPU.

A real redis-server (``tests.services.running_redis``), a writer process (the runs' owner,
``RedisRunLog``) and a follower process (another ``RedisLogs`` on its own client, one mirror per
run). For each scenario (N concurrent runs paced at R tokens/s, or one unpaced run) and each
variant, (a) the batching writer and (b) one ``XADD`` per append, it prints: CPU per token of the
writer, of the follower and of redis-server (utime + stime from ``/proc``), ``XADD`` entries per
token, and the latency from an append to the follower's mirror (p50/p95; each delta carries its
``time.monotonic()``, a clock all processes on one machine share). Numbers are for comparison on
one machine, not absolute. This must never run in the test suite: it takes a minute.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as redis
from tests.services import running_redis

from ssechat.runs.redis_log import RedisLogs, RedisRunLog
from ssechat.sse import EventDecoder

RETENTION = 60.0


class PerAppendRunLog(RedisRunLog):
    """Variant (b): one XADD per event, none batched (the bench only)."""

    async def _flush_loop(self) -> None:
        client, key = self._logs.client, self.key
        try:
            while True:
                end = self.local.event_count
                if self._sent < end:
                    seq = self._sent
                    batch = orjson.dumps(self.local.events(seq, seq + 1))
                    await client.xadd(key, {"f": seq, "b": batch}, id=f"{seq + 1}-0")
                    self._sent = seq + 1
                    self.entries += 1
                    self._advance()
                elif self._closed:
                    await client.pexpire(key, self._logs.expiry_ms)
                    self._expired = True
                    self._advance()
                    return
                else:
                    self._idle = True
                    kick = self._kick = asyncio.get_running_loop().create_future()
                    await kick
        finally:
            self._logs._writers.discard(self)


@dataclass(frozen=True)
class Scenario:
    name: str
    runs: int
    tokens: int  # per run
    rate: float  # tokens/s per run; 0: unpaced


def cpu_of(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _writer(
    url: str, prefix: str, scenario: Scenario, batching: bool, streams: MpEvent,
    following: MpEvent, out: Any,
) -> None:  # fmt: skip
    async def main() -> None:
        # One XADD in flight per live run: the pool must hold that many connections.
        client = redis.Redis.from_url(url, max_connections=scenario.runs + 16)
        logs = RedisLogs(client, retention=RETENTION, prefix=prefix)
        make = RedisRunLog if batching else PerAppendRunLog
        writers = [make(logs, f"run{i}") for i in range(scenario.runs)]
        for log in writers:
            await log.append("run", "{}")
        await asyncio.gather(*(log.flushed() for log in writers))
        streams.set()
        await asyncio.to_thread(following.wait)
        cpu = time.process_time()

        async def run(log: RedisRunLog) -> None:
            pause = 1 / scenario.rate if scenario.rate else 0.0
            for _ in range(scenario.tokens):
                await log.append_delta(f"{time.monotonic():.6f} ")
                if pause:
                    await asyncio.sleep(pause)
                elif log.local.event_count % 8 == 0:
                    await asyncio.sleep(0)  # an upstream read yields now and then
            await log.append("done", "{}")
            await log.close()
            await log.flushed()

        await asyncio.gather(*(run(log) for log in writers))
        cpu = time.process_time() - cpu
        entries = sum(log.entries for log in writers) - scenario.runs  # the run events' own
        out.put({"writer_cpu": cpu, "entries": entries})
        await logs.aclose()
        await client.aclose()

    asyncio.run(main())


def _follower(
    url: str, prefix: str, scenario: Scenario, streams: MpEvent, following: MpEvent, out: Any
) -> None:
    async def main() -> None:
        client = redis.Redis.from_url(url, max_connections=scenario.runs + 16)
        logs = RedisLogs(client, retention=RETENTION, prefix=prefix)
        await asyncio.to_thread(streams.wait)
        mirrors = [await logs.follow(f"run{i}") for i in range(scenario.runs)]
        cpu = time.process_time()
        following.set()
        latencies: list[float] = []

        async def read(i: int) -> None:
            mirror = mirrors[i]
            assert mirror is not None
            reader, decoder = mirror.reader(0), EventDecoder()
            loop = asyncio.get_running_loop()
            while not reader.ended:
                batch = reader.take()
                if batch:
                    now = time.monotonic()
                    for event in decoder.feed(batch):
                        if event.type == "delta":
                            latencies.append(now - float(orjson.loads(event.data)["text"]))
                    continue
                waiter = loop.create_future()
                reader.notify(waiter)
                await waiter

        await asyncio.gather(*(read(i) for i in range(scenario.runs)))
        out.put({"follower_cpu": time.process_time() - cpu, "latencies": latencies})
        await logs.aclose()
        await client.aclose()

    asyncio.run(main())


def measure(url: str, redis_pid: int, scenario: Scenario, batching: bool) -> dict[str, float]:
    context = multiprocessing.get_context("fork")
    prefix = f"bench{uuid.uuid4().hex[:8]}:"
    streams, following = context.Event(), context.Event()
    writer_out, follower_out = context.Queue(), context.Queue()
    follower = context.Process(
        target=_follower, args=(url, prefix, scenario, streams, following, follower_out)
    )
    writer = context.Process(
        target=_writer, args=(url, prefix, scenario, batching, streams, following, writer_out)
    )
    follower.start()
    writer.start()
    following.wait()
    redis_cpu = cpu_of(redis_pid)
    wrote, followed = writer_out.get(), follower_out.get()
    redis_cpu = cpu_of(redis_pid) - redis_cpu
    writer.join()
    follower.join()
    tokens = scenario.runs * scenario.tokens
    latencies = sorted(followed["latencies"])
    assert len(latencies) == tokens, (len(latencies), tokens)
    return {
        "writer_us": wrote["writer_cpu"] / tokens * 1e6,
        "follower_us": followed["follower_cpu"] / tokens * 1e6,
        "redis_us": redis_cpu / tokens * 1e6,
        "entries_per_token": wrote["entries"] / tokens,
        "p50_ms": statistics.median(latencies) * 1e3,
        "p95_ms": latencies[int(len(latencies) * 0.95)] * 1e3,
    }


SCENARIOS = [
    Scenario("100 runs @ 20 tok/s", 100, 100, 20.0),
    Scenario("1000 runs @ 20 tok/s", 1000, 60, 20.0),
    Scenario("1 run, unpaced", 1, 20000, 0.0),
]


def main() -> None:
    quick = "--quick" in sys.argv
    print(
        "| scenario | writer | writer µs/token | follower µs/token | redis µs/token"
        " | XADD/token | p50 ms | p95 ms |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    with running_redis() as server:
        assert server.process is not None
        chosen = [s for s in SCENARIOS if any(arg in s.name for arg in sys.argv[1:])]
        for scenario in SCENARIOS[:1] if quick else chosen or SCENARIOS:
            for batching in (True, False):
                row = measure(server.url, server.process.pid, scenario, batching)
                print(
                    f"| {scenario.name} | {'batching' if batching else 'XADD per append'}"
                    f" | {row['writer_us']:.1f} | {row['follower_us']:.1f}"
                    f" | {row['redis_us']:.1f} | {row['entries_per_token']:.3f}"
                    f" | {row['p50_ms']:.2f} | {row['p95_ms']:.2f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
