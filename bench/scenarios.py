"""The streaming scenarios: paced (with the search for the most streams a peer holds) and
saturated. Each measurement starts its server afresh, warms it up, then opens the streams while
a sampler reads the server's CPU time and RSS from /proc every 100 ms.

Definitions (the README of ``bench`` repeats them):

- TTFT: from the moment the load generator starts connecting to the first token frame;
- gap: time between two consecutive token frames of one stream;
- lag of a token: how much later than a zero-cost relay would deliver it it arrived, i.e.
  ``arrival - request_start - (i + 1) / rate`` (the upstream sends token ``i`` at
  ``(i + 1) / rate`` after it got the request); a stream *falls behind* when one of its tokens
  lags more than ``behind_limit`` (0.5 s);
- a peer *holds* N streams when all N end complete (every token, no error) and none falls
  behind;
- CPU µs per token and RSS per stream are taken over the window in which all N streams were
  flowing (from the sampler), so stream set-up and tear-down are not in them.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.client import Stream, StreamProtocol, Totals, clock, open_stream, wait_until
from bench.peers import Peer, Upstream, start_peer
from bench.procs import CpuPlan, Procs, ProcStat, cpu_busy
from bench.services import Services
from bench.stats import Sample, Window, percentile, pick_window, rnd, window_between

__all__ = [
    "Bench",
    "PacedConfig",
    "Sampler",
    "disturbance",
    "ladder",
    "paced_fresh",
    "paced_level",
    "saturated",
    "warmup",
]

SAMPLE_EVERY = 0.1
COALESCE = 0.005  # saturated streams are read at most every 5 ms: fewer, fuller reads
Hook = Callable[[Peer, Totals], Coroutine[Any, Any, None]]


@dataclass
class Bench:
    """What every scenario needs: the processes, the CPU plan, the upstream, a work dir."""

    procs: Procs
    plan: CpuPlan
    upstream: Upstream
    work: Path
    quick: bool = False
    log: list[str] = field(default_factory=list)
    attempts: int = 3  # measurements disturbed by other work are taken again, up to this
    quiet_wait: float = 30.0  # seconds to wait, at most, for the machine to be quiet
    patience_until: float = math.inf  # after this clock time: no more waiting nor retries
    services: Services | None = None  # PostgreSQL + Redis, for the peers that use them

    def peer(self, name: str, **ssechat_env: str) -> AbstractContextManager[Peer]:
        return start_peer(
            name,
            self.procs,
            self.plan,
            self.upstream,
            self.work,
            ssechat_env=ssechat_env,
            services=self.services,
        )

    def say(self, message: str) -> None:
        print(f"[bench] {message}", flush=True)
        self.log.append(message)

    async def wait_quiet(self) -> float:
        """Wait (at most ``quiet_wait`` s) until the machine's CPUs are under 10 % busy with
        other people's work; return the seconds waited."""
        every = self.plan.server | self.plan.loadgen | self.plan.upstream
        start = clock()
        wait = self.quiet_wait if start < self.patience_until else min(self.quiet_wait, 2.0)
        while clock() - start < wait:
            before = cpu_busy(every)
            await asyncio.sleep(0.5)
            busy = (cpu_busy(every) - before) / 0.5
            if math.isnan(busy) or busy < 0.1 * max(len(every), 1):
                break
        return round(clock() - start, 1)

    async def measure(
        self, label: str, run: Callable[[], Awaitable[dict[str, Any]]]
    ) -> dict[str, Any]:
        """``run()`` after waiting for quiet; again (up to ``attempts``) while disturbed; the
        least disturbed result is kept and says how disturbed it was."""
        best: dict[str, Any] | None = None
        for attempt in range(1, self.attempts + 1):
            waited = await self.wait_quiet()
            result = await run()
            result["attempt"] = attempt
            result["waited_for_quiet_s"] = waited
            if best is None or disturbance(result) < disturbance(best):
                best = result
            if disturbance(result) <= DISTURBED or clock() > self.patience_until:
                break
            if attempt < self.attempts:
                self.say(
                    f"{label}: disturbed (other work took {disturbance(result):.0%} of a CPU "
                    "we measure on); measuring again"
                )
        assert best is not None
        best["disturbed"] = disturbance(best) > DISTURBED
        return best


DISTURBED = 0.05  # share of a CPU taken by other work above which a measurement is redone


def disturbance(result: dict[str, Any]) -> float:
    """The largest share of one of our CPUs that other work took during the window (the
    server's CPU only counts when there is a server: not for ``direct``)."""
    window = result.get("window") or {}
    values = [window.get("foreign_on_loadgen_cpus")]
    if window.get("server_cpu_util") is not None:
        values.append(window.get("foreign_on_server_cpus"))
    return max((v for v in values if isinstance(v, int | float)), default=0.0)


class Sampler:
    """Reads the counters and /proc every ``SAMPLE_EVERY`` s until stopped (or ``limit`` s)."""

    def __init__(self, totals: Totals, peer: Peer, bench: Bench, *, metric: str = "active") -> None:
        self.totals = totals
        self.plan = bench.plan
        upstream = bench.upstream
        self.server = peer.stat
        self.redis = peer.redis
        self.postgres = peer.postgres
        self.upstream = upstream.stat
        self.me = ProcStat(os.getpid())
        self.metric = metric
        self.samples: list[Sample] = []
        self.stop = asyncio.Event()

    def take(self) -> None:
        server = self.server
        user, system = server.cpu_split() if server else (math.nan, math.nan)
        self.samples.append(
            Sample(
                t=clock(),
                tokens=self.totals.tokens,
                active=getattr(self.totals, self.metric),
                server_cpu=user + system,
                server_sys=system,
                upstream_cpu=self.upstream.cpu_seconds(),
                loadgen_cpu=self.me.cpu_seconds(),
                server_rss=server.rss_bytes() if server else 0,
                server_cpus_busy=cpu_busy(self.plan.server),
                loadgen_cpus_busy=cpu_busy(self.plan.loadgen | self.plan.upstream),
                redis_cpu=self.redis.cpu_seconds() if self.redis else math.nan,
                pg_cpu=self.postgres.cpu_seconds() if self.postgres else math.nan,
                redis_rss=self.redis.rss_bytes() if self.redis else 0,
                pg_rss=self.postgres.rss_bytes() if self.postgres else 0,
            )
        )

    async def run(self, limit: float) -> None:
        deadline = clock() + limit
        while not self.stop.is_set() and clock() < deadline:
            self.take()
            try:
                async with asyncio.timeout(SAMPLE_EVERY):
                    await self.stop.wait()
            except TimeoutError:
                pass
        self.take()


async def warmup(peer: Peer, streams: int = 8, model: str = "fake-tokens-20") -> int:
    """A few short streams so that imports, pools and caches are warm; return the failures."""
    totals = Totals()
    results = await asyncio.gather(
        *(
            open_stream(peer.port, peer.stream_request(model, i), peer.kind, totals, sep=peer.sep)
            for i in range(streams)
        )
    )
    return sum(1 for r in results if r.error or not r.done)


def window_dict(window: Window | None, streams: int, base_rss: int) -> dict[str, Any]:
    if window is None:
        return {"seconds": None}
    per_stream = (window.peak_rss - base_rss) / max(window.mean_active, 1) if base_rss else None
    return {
        "seconds": rnd(window.seconds),
        "mean_active_streams": rnd(window.mean_active, 1),
        "tokens": window.tokens,
        "tokens_per_s": rnd(window.tokens_per_s, 0),
        "cpu_us_per_token": rnd(window.cpu_us_per_token, 1),
        # Redis's and PostgreSQL's CPU per token (None for the embedded peers, which use
        # neither), and the total with the server's: what a token costs the whole deployment.
        "redis_cpu_us_per_token": rnd(window.us_per_token(window.redis_cpu), 1),
        "pg_cpu_us_per_token": rnd(window.us_per_token(window.pg_cpu), 1),
        "total_cpu_us_per_token": rnd(window.us_per_token(window.total_cpu), 1),
        "server_cpu_util": rnd(window.util(window.server_cpu)),
        "total_cpu_util": rnd(window.util(window.total_cpu)),
        "server_sys_share": rnd(window.server_sys / window.server_cpu)
        if window.server_cpu > 0
        else None,
        "upstream_cpu_util": rnd(window.util(window.upstream_cpu)),
        "loadgen_cpu_util": rnd(window.util(window.loadgen_cpu)),
        "foreign_on_server_cpus": rnd(window.foreign_on_server_cpus),
        "foreign_on_loadgen_cpus": rnd(window.foreign_on_loadgen_cpus),
        "server_rss_mib": rnd(window.peak_rss / 2**20, 1) if window.peak_rss else None,
        "rss_kib_per_stream": rnd(per_stream / 1024, 1) if per_stream is not None else None,
        "redis_rss_mib": rnd(window.peak_redis_rss / 2**20, 1) if window.peak_redis_rss else None,
        "pg_rss_mib": rnd(window.peak_pg_rss / 2**20, 1) if window.peak_pg_rss else None,
        "streams": streams,
    }


# --- paced ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PacedConfig:
    tokens: int = 200
    rate: float = 20.0
    start_rate: float = 200.0  # streams opened per second (the ramp)
    max_ramp: float = 5.0
    behind_limit: float = 0.5

    @property
    def model(self) -> str:
        return f"fake-tokens-{self.tokens}@{self.rate:g}"

    def ramp(self, streams: int) -> float:
        return min(self.max_ramp, streams / self.start_rate)


async def paced_level(
    bench: Bench, peer: Peer, streams: int, cfg: PacedConfig, hook: Hook | None = None
) -> dict[str, Any]:
    """Open ``streams`` paced streams over the ramp; time every token; judge the result."""
    await peer.prepare(streams, cfg.model)
    warm_failures = await warmup(peer)
    base_rss = peer.stat.rss_bytes() if peer.stat else 0
    totals = Totals()
    results = [Stream(times=[]) for _ in range(streams)]
    duration = cfg.tokens / cfg.rate
    ramp = cfg.ramp(streams)
    timeout = duration + 30.0
    sampler = Sampler(totals, peer, bench)
    sampling = asyncio.create_task(sampler.run(limit=ramp + timeout + 5))
    start = clock()

    async def one(i: int) -> None:
        await asyncio.sleep(max(0.0, start + ramp * i / streams - clock()))
        request = peer.stream_request(cfg.model, i)
        await open_stream(
            peer.port, request, peer.kind, totals, result=results[i], sep=peer.sep, limit=timeout
        )

    hooked = asyncio.create_task(hook(peer, totals)) if hook else None
    await asyncio.gather(*(one(i) for i in range(streams)))
    if hooked is not None:
        await hooked
    sampler.stop.set()
    await sampling
    out = judge_paced(results, cfg)
    out["streams"] = streams
    out["ramp_s"] = rnd(ramp)
    out["warmup_failures"] = warm_failures
    out["window"] = window_dict(pick_window(sampler.samples, streams), streams, base_rss)
    out["held"] = out["errors"] == 0 and out["behind"] == 0 and warm_failures == 0
    return out


def judge_paced(results: list[Stream], cfg: PacedConfig) -> dict[str, Any]:
    interval = 1.0 / cfg.rate
    ttft: list[float] = []
    gaps: list[float] = []
    lags: list[float] = []
    drifts: list[float] = []
    errors: list[str] = []
    behind = 0
    for r in results:
        if r.error or not r.done or r.tokens != cfg.tokens:
            errors.append(r.error or f"{r.tokens} of {cfg.tokens} tokens, done={r.done}")
        times = r.times or []
        if not times:
            continue
        ttft.append((times[0] - r.sent_at) * 1e3)
        gaps.extend((b - a) * 1e3 for a, b in itertools.pairwise(times))
        lag = max(t - r.sent_at - (i + 1) * interval for i, t in enumerate(times))
        lags.append(lag * 1e3)
        first = times[0]
        drifts.append(max(t - first - i * interval for i, t in enumerate(times)) * 1e3)
        if lag > cfg.behind_limit:
            behind += 1
    return {
        "model": cfg.model,
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:3],
        "behind": behind,
        "ttft_ms": _pcts(ttft),
        "gap_ms": _pcts(gaps),
        "max_lag_ms": _pcts(lags),
        "max_drift_ms": _pcts(drifts),
        "tokens_received": sum(r.tokens for r in results),
    }


def _pcts(values: list[float]) -> dict[str, float | None]:
    return {
        "p50": rnd(percentile(values, 50)),
        "p99": rnd(percentile(values, 99)),
        "max": rnd(max(values) if values else None),
    }


async def ladder(
    bench: Bench, name: str, levels: list[int], cfg: PacedConfig, *, stop_at_first_failure: bool
) -> dict[str, Any]:
    """Paced runs at growing levels: the most streams the peer holds, with a bisection step."""
    tried: list[dict[str, Any]] = []
    held = 0
    failed: int | None = None
    for level in levels:
        result = await paced_fresh(bench, name, level, cfg)
        tried.append(result)
        if result["held"]:
            held = level
        else:
            failed = level
            if stop_at_first_failure:
                break
    if failed is not None and held and failed > held:
        middle = _round_level((held + failed) / 2)
        if held < middle < failed:
            result = await paced_fresh(bench, name, middle, cfg)
            tried.append(result)
            held = middle if result["held"] else held
    tried.sort(key=lambda r: int(r["streams"]))
    return {"levels": tried, "max_held": held}


def _round_level(value: float) -> int:
    step = 10 if value < 200 else 50
    return int(round(value / step) * step)


async def paced_fresh(bench: Bench, name: str, level: int, cfg: PacedConfig) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        with bench.peer(name) as peer:
            return await paced_level(bench, peer, level, cfg)

    result = await bench.measure(f"paced {name} {level}", run)
    w = result["window"]
    bench.say(
        f"paced {name} {level} streams: held={result['held']} errors={result['errors']} "
        f"behind={result['behind']} ttft p50/p99={result['ttft_ms']['p50']}/"
        f"{result['ttft_ms']['p99']} ms, {w.get('cpu_us_per_token')} us/token (+ Redis "
        f"{w.get('redis_cpu_us_per_token')} + PostgreSQL {w.get('pg_cpu_us_per_token')}), "
        f"server cpu {w.get('server_cpu_util')}, rss/stream {w.get('rss_kib_per_stream')} KiB, "
        f"disturbed={result['disturbed']}"
    )
    return result


# --- saturated --------------------------------------------------------------------------------


async def saturated(
    bench: Bench,
    name: str,
    streams: int,
    tokens: int,
    seconds: float,
    open_for: float,
    hook: Hook | None = None,
) -> dict[str, Any]:
    """``streams`` unpaced streams that all burst at the same moment.

    A saturated server is slow to start new streams, so opening them one after the other
    would measure a handful of streams, not ``streams``. Each stream is therefore opened with
    ``fake-tokens-N+stall-1-S``: one token, then silence until the common start ``open_for``
    seconds after the first request, then tokens as fast as they go. Throughput and CPU are
    taken from 0.5 s after that start to ``seconds`` after it, when every stream is cut.
    """
    with bench.peer(name) as peer:
        await peer.prepare(streams, f"fake-tokens-{tokens}")
        warm_failures = await warmup(peer)
        totals = Totals()
        results = [Stream() for _ in range(streams)]
        protocols: list[StreamProtocol] = []
        sampler = Sampler(totals, peer, bench)
        sampling = asyncio.create_task(sampler.run(limit=open_for + seconds + 5))
        go = clock() + open_for

        def model() -> str:
            return f"fake-tokens-{tokens}+stall-1-{max(0.0, go - clock()):.3f}"

        tasks = [
            asyncio.create_task(
                open_stream(
                    peer.port,
                    peer.stream_request(model(), i),
                    peer.kind,
                    totals,
                    result=results[i],
                    sep=peer.sep,
                    limit=open_for + seconds + 10,
                    registry=protocols,
                    coalesce=COALESCE,
                )
            )
            for i in range(streams)
        ]
        all_open = await wait_until(lambda: totals.first_tokens >= streams, open_for)
        hooked = asyncio.create_task(hook(peer, totals)) if hook else None
        await asyncio.sleep(max(0.0, go + seconds - clock()))
        sampler.take()
        if hooked is not None:
            await hooked
        for proto in protocols:
            proto.abort()
        await asyncio.gather(*tasks)
        sampler.stop.set()
        await sampling
    window = window_between(sampler.samples, go + 0.5, go + seconds)
    errors = [r.error for r in results if r.error or not (r.done or r.dropped)]
    out: dict[str, Any] = {
        "model": f"fake-tokens-{tokens}",
        "streams": streams,
        "seconds": seconds,
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:3],
        "warmup_failures": warm_failures,
        "all_open_before_start": all_open,
        "streams_open": sum(1 for r in results if r.first_at and r.first_at <= go),
        "window": window_dict(window, streams, 0),
    }
    w = out["window"]
    bench.say(
        f"saturated {name}: {w.get('tokens_per_s')} tokens/s, {w.get('cpu_us_per_token')} "
        f"us/token (total {w.get('total_cpu_us_per_token')}), server cpu "
        f"{w.get('server_cpu_util')}, streams flowing "
        f"{w.get('mean_active_streams')}, errors={len(errors)}"
    )
    return out
