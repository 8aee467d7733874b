"""Scenarios about the life of streams rather than their tokens: starting, idling, resuming.

- ``starts`` (every peer): what starting a stream costs. A few streams of one token, one at a
  time (the time to first token of a lone stream), then a burst of many with a bounded number
  in flight (streams started per second, server CPU per start, TTFT under that load).

- ``idle``: ``runs`` runs whose upstream goes silent after one token (``fake-tokens-2+stall-1``),
  each with the stream that started it, then ``followers`` more streams following those runs
  (``GET /api/runs/{id}/events``, ``Last-Event-ID: 1``: nothing to replay). All of them then sit
  idle for two heartbeat periods: every stream must get a heartbeat and none may end. RSS per
  stream is (RSS with everything open - RSS before) / streams. Runs and followers are mixed
  because the server's open-files limit (``ulimit -Hn``) must hold a client socket per stream
  plus an upstream socket per run.
- ``resume``: ``runs`` paced runs; each client drops its connection after a random number of
  deltas, waits up to 100 ms, and resumes with ``Last-Event-ID``; the ids it saw over both
  connections must be exactly 1..N and the text exactly the upstream's.
"""

from __future__ import annotations

import asyncio
import math
import random
import resource
from collections.abc import Callable
from typing import Any

import orjson

from bench.client import (
    Stream,
    StreamProtocol,
    Totals,
    clock,
    fetch,
    open_stream,
    wait_until,
)
from bench.scenarios import Bench, Hook, warmup
from bench.stats import percentile, rnd
from ssechat.fake_upstream.wire import generated_tokens

__all__ = ["idle", "resume", "starts"]

_IN_FLIGHT = 64  # streams being set up at once, at most


async def _open_paced(
    count: int,
    rate: float,
    ready: Callable[[], int],
    start_one: Callable[[int], None],
    limit: float,
) -> bool:
    """Start ``count`` streams at most ``rate``/s and ``_IN_FLIGHT`` not yet ready at once."""
    start = clock()
    deadline = start + limit
    opened = 0

    def room() -> bool:
        return opened - ready() < _IN_FLIGHT

    for i in range(count):
        await wait_until(room, deadline - clock(), every=0.005)
        await asyncio.sleep(max(0.0, start + i / rate - clock()))
        if clock() >= deadline:
            return False
        start_one(i)
        opened += 1
    return await wait_until(lambda: ready() >= count, max(0.0, deadline - clock()))


async def starts(
    bench: Bench, name: str, lone: int, burst: int, in_flight: int, hook: Hook | None = None
) -> dict[str, Any]:
    model = "fake-tokens-1"
    totals = Totals()
    with bench.peer(name) as peer:
        await peer.prepare(lone + burst, model)
        warm_failures = await warmup(peer)
        alone: list[Stream] = []
        for i in range(lone):
            request = peer.stream_request(model, i)
            alone.append(await open_stream(peer.port, request, peer.kind, totals, sep=peer.sep))
        semaphore = asyncio.Semaphore(in_flight)

        async def one(i: int) -> Stream:
            async with semaphore:
                request = peer.stream_request(model, lone + i)
                return await open_stream(peer.port, request, peer.kind, totals, sep=peer.sep)

        cpu0 = peer.cpu_parts()
        start = clock()
        hooked = asyncio.create_task(hook(peer, totals)) if hook else None
        crowd = await asyncio.gather(*(one(i) for i in range(burst)))
        seconds = clock() - start
        cpu1 = peer.cpu_parts()
        if hooked is not None:
            await hooked
    # (server, Redis, PostgreSQL) CPU seconds in the burst; NaN for what the peer does not use
    cpus = [b - a for a, b in zip(cpu0, cpu1, strict=True)]
    per_start = [rnd(c / burst * 1e3, 2) for c in cpus]
    total = cpus[0] + sum(c for c in cpus[1:] if not math.isnan(c))
    errors = [r.error or "no done" for r in alone + crowd if r.error or not r.done]
    lone_ttft = [(r.first_at - r.sent_at) * 1e3 for r in alone if r.first_at]
    crowd_ttft = [(r.first_at - r.sent_at) * 1e3 for r in crowd if r.first_at]
    out: dict[str, Any] = {
        "model": model,
        "lone": lone,
        "burst": burst,
        "in_flight": in_flight,
        "lone_ttft_ms": {
            "p50": rnd(percentile(lone_ttft, 50)),
            "p99": rnd(percentile(lone_ttft, 99)),
        },
        "burst_ttft_ms": {
            "p50": rnd(percentile(crowd_ttft, 50)),
            "p99": rnd(percentile(crowd_ttft, 99)),
        },
        "starts_per_s": rnd(burst / seconds, 0),
        "cpu_ms_per_start": per_start[0],
        "redis_ms_per_start": per_start[1],
        "pg_ms_per_start": per_start[2],
        "total_ms_per_start": rnd(total / burst * 1e3, 2),
        "server_cpu_util": rnd(cpus[0] / seconds),
        "total_cpu_util": rnd(total / seconds),
        "warmup_failures": warm_failures,
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:3],
    }
    bench.say(
        f"starts {name}: lone TTFT p50 {out['lone_ttft_ms']['p50']} ms, "
        f"{out['starts_per_s']} starts/s, {out['cpu_ms_per_start']} ms server CPU per start "
        f"(+ Redis {out['redis_ms_per_start']} + PostgreSQL {out['pg_ms_per_start']})"
    )
    return out


async def idle(
    bench: Bench, runs: int, followers: int, heartbeat: float, open_rate: float
) -> dict[str, Any]:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if 2 * runs + followers + 64 > soft:
        raise ValueError(f"{runs} runs + {followers} followers need more than {soft} files")
    model = "fake-tokens-2+stall-1"
    env = {"SSECHAT_HEARTBEAT": f"{heartbeat:g}", "SSECHAT_UPSTREAM_IDLE_TIMEOUT": "3600"}
    limit = 20.0 + (runs + followers) / open_rate * 3
    with bench.peer("ssechat", **env) as peer:
        assert peer.stat is not None
        await peer.prepare(runs, model, per_conversation=10)
        warm_failures = await warmup(peer)
        base_rss, base_fds = peer.stat.rss_bytes(), peer.stat.open_fds()
        totals = Totals()
        run_streams = [Stream() for _ in range(runs)]
        follow_streams = [Stream() for _ in range(followers)]
        protocols: list[StreamProtocol] = []
        tasks: list[asyncio.Task[Stream]] = []
        big = limit + 8 * heartbeat + 60

        def start_run(i: int) -> None:
            request = peer.stream_request(model, i)
            coro = open_stream(
                peer.port, request, "run", totals, result=run_streams[i], limit=big,
                registry=protocols,
            )  # fmt: skip
            tasks.append(asyncio.create_task(coro))

        def start_follower(j: int) -> None:
            request = peer.resume_request(run_streams[j % runs].run_id, 1)
            coro = open_stream(
                peer.port, request, "run", totals, result=follow_streams[j], limit=big,
                registry=protocols,
            )  # fmt: skip
            tasks.append(asyncio.create_task(coro))

        t0 = clock()
        runs_open = await _open_paced(
            runs, open_rate, lambda: totals.first_tokens + totals.finished, start_run, limit
        )
        runs_open = runs_open and totals.first_tokens >= runs
        runs_open_s = clock() - t0
        rss_runs = peer.stat.rss_bytes()
        followers_open = runs_open and await _open_paced(
            followers, open_rate, lambda: totals.open - runs + totals.finished, start_follower,
            limit,
        )  # fmt: skip
        everything = run_streams + follow_streams
        rss_all, fds_all = peer.stat.rss_bytes(), peer.stat.open_fds()
        before = [s.heartbeats for s in everything]
        cpu0, t1 = peer.stat.cpu_seconds(), clock()
        hold = 2 * heartbeat + 0.5
        await asyncio.sleep(hold)
        cpu1, t2 = peer.stat.cpu_seconds(), clock()
        beats = [s.heartbeats - b for s, b in zip(everything, before, strict=True)]
        ended = sum(1 for s in everything if s.end_at)
        for proto in protocols:
            proto.abort()
        await asyncio.gather(*tasks)
    streams = runs + followers
    errors = [s.error for s in everything if s.error]
    out: dict[str, Any] = {
        "runs": runs,
        "followers": followers,
        "streams": streams,
        "heartbeat_s": heartbeat,
        "hold_s": rnd(hold),
        "warmup_failures": warm_failures,
        "all_open": bool(runs_open and followers_open),
        "runs_open_after_s": rnd(runs_open_s),
        "server_open_files": fds_all - base_fds,
        "rss_base_mib": rnd(base_rss / 2**20, 1),
        "rss_all_open_mib": rnd(rss_all / 2**20, 1),
        "rss_kib_per_stream": rnd((rss_all - base_rss) / streams / 1024, 1),
        "rss_kib_per_run_with_stream": rnd((rss_runs - base_rss) / runs / 1024, 1),
        "rss_kib_per_follower": rnd((rss_all - rss_runs) / max(followers, 1) / 1024, 1),
        "ended_while_idle": ended,
        "streams_without_heartbeat": sum(1 for b in beats if b < 1),
        "heartbeats": sum(beats),
        "idle_server_cpu_util": rnd((cpu1 - cpu0) / (t2 - t1), 3),
        "cpu_us_per_heartbeat": rnd((cpu1 - cpu0) / max(sum(beats), 1) * 1e6, 1),
        "errors": len(errors) + ended,
        "error_examples": sorted(set(errors))[:3],
    }
    bench.say(
        f"idle: {streams} streams open={out['all_open']}, {out['rss_kib_per_stream']} KiB/stream, "
        f"without heartbeat={out['streams_without_heartbeat']}, errors={out['errors']}"
    )
    return out


async def resume(
    bench: Bench,
    runs: int,
    tokens: int,
    rate: float,
    start_rate: float,
    cancels: int = 0,
    seed: int = 20240601,
) -> dict[str, Any]:
    model = f"fake-tokens-{tokens}@{rate:g}"
    expected_text = "".join(generated_tokens(tokens))
    rng = random.Random(seed)
    plans = [(rng.randint(1, max(1, tokens * 3 // 4)), rng.uniform(0, 0.1)) for _ in range(runs)]
    timeout = tokens / rate + 30
    totals = Totals()
    with bench.peer("ssechat") as peer:
        await peer.prepare(runs, model)
        warm_failures = await warmup(peer)
        start = clock()

        async def one(i: int) -> tuple[Stream, Stream | None]:
            await asyncio.sleep(max(0.0, start + i / start_rate - clock()))
            drop_at, pause = plans[i]
            first = Stream(ids=[], texts=[])
            request = peer.stream_request(model, i)
            await open_stream(
                peer.port, request, "run", totals, result=first, limit=timeout,
                drop_after=drop_at,
            )  # fmt: skip
            if not first.dropped or not first.ids or not first.run_id:
                return first, None
            await asyncio.sleep(pause)
            second = Stream(ids=[], texts=[], times=[])
            request = peer.resume_request(first.run_id, first.ids[-1])
            await open_stream(peer.port, request, "run", totals, result=second, limit=timeout)
            return first, second

        pairs = await asyncio.gather(*(one(i) for i in range(runs)))
        cancel_ms, cancel_failures = await _cancels(peer, cancels, totals)
    ok = gaps = duplicates = live = 0
    failures: list[str] = []
    ttfb: list[float] = []
    for first, second in pairs:
        if second is None:
            failures.append(first.error or "the first connection ended before the drop point")
            continue
        ids = (first.ids or []) + (second.ids or [])
        text = "".join((first.texts or []) + (second.texts or []))
        duplicates += len(ids) - len(set(ids))
        # Deltas are numbered 1, 2, 3…; a relay may join tokens, so their count is not known
        # in advance, but with the text complete they must run without a hole.
        expected_ids = list(range(1, max(ids, default=0) + 1))
        gaps += len(set(expected_ids) - set(ids))
        if second.times:
            ttfb.append((second.times[0] - second.sent_at) * 1e3)
            live += second.times[-1] - second.sent_at > 2 / rate
        if ids == expected_ids and text == expected_text and second.done and not second.error:
            ok += 1
        else:
            failures.append(second.error or f"ids {len(ids)} text ok={text == expected_text}")
    out: dict[str, Any] = {
        "model": model,
        "reconnects": runs,
        "ok": ok,
        "missing_ids": gaps,
        "duplicate_ids": duplicates,
        "resumed_while_live": live,
        "warmup_failures": warm_failures,
        "resume_first_token_ms": {
            "p50": rnd(percentile(ttfb, 50)),
            "p99": rnd(percentile(ttfb, 99)),
        },
        "errors": runs - ok,
        "error_examples": sorted(set(failures))[:3],
        "passed": ok == runs and gaps == 0 and duplicates == 0,
        "cancels": cancels,
        "cancel_ms": {"p50": rnd(percentile(cancel_ms, 50)), "p99": rnd(percentile(cancel_ms, 99))},
        "cancel_errors": len(cancel_failures),
        "cancel_error_examples": sorted(set(cancel_failures))[:3],
    }
    bench.say(
        f"resume: {ok}/{runs} gap-free and duplicate-free, {live} resumed while live, "
        f"missing={gaps} duplicates={duplicates}; cancel p50/p99 "
        f"{out['cancel_ms']['p50']}/{out['cancel_ms']['p99']} ms"
    )
    return out


async def _cancels(peer: Any, count: int, totals: Totals) -> tuple[list[float], list[str]]:
    """Stop ``count`` live runs, one after another, each once its first delta has arrived.

    What is timed: from sending ``POST /api/runs/{id}/cancel`` to its answer, which the server
    sends once the run has stopped, and so once its upstream connection is closed (the provider
    closes it as the cancel unwinds the run); the tests assert that this happens, this measures
    how fast. Each run's own stream must then end with ``done`` ``stopped``.
    """
    model = "fake-tokens-100000@50"
    times: list[float] = []
    failures: list[str] = []
    for i in range(count):
        stream = Stream(ids=[], texts=[])
        request = peer.stream_request(model, i)
        task = asyncio.create_task(
            open_stream(peer.port, request, "run", totals, result=stream, limit=60)
        )

        def started(stream: Stream = stream) -> bool:
            return bool(stream.run_id and stream.ids)

        if not await wait_until(started, 10, every=0.005):
            failures.append(stream.error or "no first delta within 10 s")
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            continue
        sent = clock()
        try:
            status, body = await fetch(
                peer.port, "POST", f"/api/runs/{stream.run_id}/cancel", headers=peer.auth
            )
        except RuntimeError as exc:
            failures.append(str(exc))
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            continue
        took = clock() - sent
        await task
        state = orjson.loads(body) if status == 200 else {}
        if state.get("status") == "stopped" and stream.done_status == "stopped":
            times.append(took * 1e3)
        else:
            failures.append(f"HTTP {status}, run {state.get('status')}, done {stream.done_status}")
    return times, failures
