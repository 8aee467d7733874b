"""``python -m bench.redislog``: what the Redis run log's flusher costs in CPU and latency.

A real redis-server (``tests.services.running_redis``), a writer process (the runs' owner) and a
follower process (another ``RedisLogs`` on its own client, one mirror per run). For each scenario
(N concurrent runs paced at R tokens/s, or one unpaced run) and each variant, (a) one flusher
per process (``RedisRunLog``: one script call for every run with something unsent) and (b) one
flusher task per run (the code before, kept below), alternated and repeated, it prints: CPU per
token of the writer, of the follower and of redis-server (utime + stime from ``/proc``), ``XADD``
entries per token, ``XADD``s per round trip, and the latency from an append to the follower's
mirror (p50/p95; each delta carries its ``time.monotonic()``, a clock all processes on one
machine share). ``--pipeline-cost`` instead compares a pipeline of k ``XADD``s with one
``EVALSHA`` doing the same k. Numbers are for comparison on one machine, not absolutes. This must
never run in the test suite: it takes minutes.
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

from ssechat.runs.log import MemoryRunLog
from ssechat.runs.redis_log import RedisLogs, RedisRunLog
from ssechat.sse import EventDecoder

RETENTION = 60.0


class PerRunFlusherLog:
    """Variant (b): the flusher before issue 12's speed pass (commit cdeecb4), one task per run
    with one ``XADD`` of its own in flight: kept here, in the bench only, to compare against."""

    def __init__(self, logs: RedisLogs, run_id: str) -> None:
        self._logs = logs
        self.run_id = run_id
        self.key = logs.key(run_id)
        self.local = MemoryRunLog(run_id)
        self._sent = 0
        self._closed = False
        self._expired = False
        self._idle = True
        self._kick: asyncio.Future[None] | None = None
        self._progress = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.entries = 0

    async def append(self, event: str, data: str) -> int:
        seq = await self.local.append(event, data)
        if self._idle:
            self._wake()
        return seq

    async def append_delta(self, text: str) -> int:
        seq = await self.local.append_delta(text)
        if self._idle:
            self._wake()
        return seq

    async def close(self) -> None:
        await self.local.close()
        self._closed = True
        self._wake()

    async def flushed(self) -> None:
        target = self.local.event_count
        while self._sent < target or (self._closed and not self._expired):
            progress = self._progress
            await progress.wait()

    def _wake(self) -> None:
        self._idle = False
        kick = self._kick
        if kick is not None:
            self._kick = None
            if not kick.done():
                kick.set_result(None)
        elif self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._flush_loop())

    def _advance(self) -> None:
        progress, self._progress = self._progress, asyncio.Event()
        progress.set()

    async def _flush_loop(self) -> None:
        # The old loop minus its failure handling (the bench runs no outage).
        client, key = self._logs.client, self.key
        while True:
            end = self.local.event_count
            if self._sent < end:
                batch = orjson.dumps(self.local.events(self._sent, end))
                await client.xadd(key, {"f": self._sent, "b": batch}, id=f"{end}-0")
                self._sent = end
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
    url: str, prefix: str, scenario: Scenario, one_flusher: bool, streams: MpEvent,
    following: MpEvent, out: Any,
) -> None:  # fmt: skip
    async def main() -> None:
        # Per-run flushers hold one connection per live run: the pool must hold that many.
        client = redis.Redis.from_url(url, max_connections=scenario.runs + 16)
        logs = RedisLogs(client, retention=RETENTION, prefix=prefix)
        make = RedisRunLog if one_flusher else PerRunFlusherLog
        writers: list[RedisRunLog | PerRunFlusherLog] = [
            make(logs, f"run{i}") for i in range(scenario.runs)
        ]
        for log in writers:
            await log.append("run", "{}")
        await asyncio.gather(*(log.flushed() for log in writers))
        streams.set()
        await asyncio.to_thread(following.wait)
        cpu = time.process_time()
        pipelines, xadds = logs.pipelines, logs.xadds

        async def run(log: RedisRunLog | PerRunFlusherLog) -> None:
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
        per_trip = (logs.xadds - xadds) / (logs.pipelines - pipelines) if one_flusher else 1.0
        out.put({"writer_cpu": cpu, "entries": entries, "per_trip": per_trip})
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


def measure(url: str, redis_pid: int, scenario: Scenario, one_flusher: bool) -> dict[str, float]:
    context = multiprocessing.get_context("fork")
    prefix = f"bench{uuid.uuid4().hex[:8]}:"
    streams, following = context.Event(), context.Event()
    writer_out, follower_out = context.Queue(), context.Queue()
    follower = context.Process(
        target=_follower, args=(url, prefix, scenario, streams, following, follower_out)
    )
    writer = context.Process(
        target=_writer, args=(url, prefix, scenario, one_flusher, streams, following, writer_out)
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
        "per_trip": wrote["per_trip"],
        "p50_ms": statistics.median(latencies) * 1e3,
        "p95_ms": latencies[int(len(latencies) * 0.95)] * 1e3,
    }


SCENARIOS = [
    Scenario("1 run, unpaced", 1, 20000, 0.0),
    Scenario("100 runs @ 20 tok/s", 100, 100, 20.0),
    Scenario("500 runs @ 20 tok/s", 500, 60, 20.0),
]


async def _pipeline_cost(url: str, redis_pid: int, size: int, rounds: int) -> tuple[float, ...]:
    """CPU per XADD (this process's, redis-server's) of ``rounds`` pipelines of ``size`` XADDs,
    then of as many EVALSHAs doing the same XADDs, on ``size`` fresh streams."""
    client = redis.Redis.from_url(url)
    script = client.register_script(
        "for i = 1, #KEYS do redis.call('XADD', KEYS[i], ARGV[2 * i - 1], 'f', "
        "ARGV[2 * i - 1], 'b', ARGV[2 * i]) end return #KEYS"
    )
    prefix = f"cost{uuid.uuid4().hex[:8]}:"
    body = orjson.dumps([["delta", "a token "]])
    costs: list[float] = []
    for evalsha in (False, True):
        keys = [f"{prefix}{evalsha}:{i}" for i in range(size)]
        cpu, redis_cpu = time.process_time(), cpu_of(redis_pid)
        for seq in range(1, rounds + 1):
            if evalsha:
                args: list[Any] = []
                for _ in keys:
                    args += [f"{seq}-0", body]
                await script(keys=keys, args=args)
            else:
                pipe = client.pipeline(transaction=False)
                for key in keys:
                    pipe.xadd(key, {"f": seq, "b": body}, id=f"{seq}-0")
                await pipe.execute(raise_on_error=False)
        xadds = size * rounds
        costs += [
            (time.process_time() - cpu) / xadds * 1e6,
            (cpu_of(redis_pid) - redis_cpu) / xadds * 1e6,
        ]
        await client.delete(*keys)
    await client.aclose()
    return tuple(costs)


def pipeline_cost(url: str, redis_pid: int) -> None:
    print("| XADDs per round trip | pipeline client µs/XADD | redis µs/XADD"
          " | EVALSHA client µs/XADD | redis µs/XADD |")  # fmt: skip
    print("| ---: | ---: | ---: | ---: | ---: |")
    for size in (1, 5, 20, 100):
        for _ in range(2):
            costs = asyncio.run(_pipeline_cost(url, redis_pid, size, 20000 // size))
            print(f"| {size} | " + " | ".join(f"{cost:.1f}" for cost in costs) + " |", flush=True)


def main() -> None:
    with running_redis() as server:
        assert server.process is not None
        if "--pipeline-cost" in sys.argv:
            pipeline_cost(server.url, server.process.pid)
            return
        print(
            "| scenario | flusher | writer µs/token | follower µs/token | redis µs/token"
            " | XADD/token | XADD/round trip | p50 ms | p95 ms |"
        )
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        quick = "--quick" in sys.argv
        chosen = [s for s in SCENARIOS if any(arg in s.name for arg in sys.argv[1:])]
        for scenario in SCENARIOS[:1] if quick else chosen or SCENARIOS:
            # Alternated and repeated: the machine is shared and its load drifts.
            for one_flusher in (True, False) * (1 if quick else 2):
                row = measure(server.url, server.process.pid, scenario, one_flusher)
                print(
                    f"| {scenario.name} | {'one per process' if one_flusher else 'one per run'}"
                    f" | {row['writer_us']:.1f} | {row['follower_us']:.1f}"
                    f" | {row['redis_us']:.1f} | {row['entries_per_token']:.3f}"
                    f" | {row['per_trip']:.1f} | {row['p50_ms']:.2f} | {row['p95_ms']:.2f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
