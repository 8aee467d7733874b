"""Pure helpers: percentiles, and the window of a phase in which every stream was flowing.

Nothing here does IO; ``bench.scenarios`` feeds it the samples it took.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Sample", "Window", "percentile", "pick_window", "rnd", "window_between"]


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100) of unsorted ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def rnd(value: float | None, digits: int = 2) -> float | None:
    return None if value is None or math.isnan(value) else round(value, digits)


@dataclass(frozen=True, slots=True)
class Sample:
    """One look at a running phase (every ~100 ms)."""

    t: float
    tokens: int
    active: int  # streams that have had their first token and have not ended
    server_cpu: float
    server_sys: float  # the system (kernel) part of server_cpu
    upstream_cpu: float
    loadgen_cpu: float
    server_rss: int
    server_cpus_busy: float  # seconds the server's CPUs were busy, whoever ran there
    loadgen_cpus_busy: float  # the same for the CPUs of the upstream and the load generator
    # Redis's and PostgreSQL's CPU seconds and memory (NaN / 0 for the embedded peers): they run
    # on the server's CPUs and their time counts next to the server's.
    redis_cpu: float = math.nan
    pg_cpu: float = math.nan
    redis_rss: int = 0
    pg_rss: int = 0


@dataclass(frozen=True, slots=True)
class Window:
    """The stretch of a phase between two samples, and what happened in it."""

    seconds: float
    tokens: int
    mean_active: float
    server_cpu: float
    server_sys: float
    upstream_cpu: float
    loadgen_cpu: float
    peak_rss: int
    server_cpus_busy: float
    loadgen_cpus_busy: float
    redis_cpu: float = math.nan
    pg_cpu: float = math.nan
    peak_redis_rss: int = 0
    peak_pg_rss: int = 0

    @property
    def services_cpu(self) -> float:
        """Redis + PostgreSQL CPU seconds (0 when the peer uses neither)."""
        return sum(0.0 if math.isnan(v) else v for v in (self.redis_cpu, self.pg_cpu))

    @property
    def total_cpu(self) -> float:
        """The server's CPU seconds plus Redis's and PostgreSQL's."""
        return self.server_cpu + self.services_cpu

    def us_per_token(self, cpu_seconds: float) -> float | None:
        if not self.tokens or math.isnan(cpu_seconds):
            return None
        return cpu_seconds / self.tokens * 1e6

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_us_per_token(self) -> float | None:
        """The server's own CPU per token (its worker processes included)."""
        return self.us_per_token(self.server_cpu)

    def util(self, cpu_seconds: float) -> float | None:
        return None if self.seconds <= 0 or math.isnan(cpu_seconds) else cpu_seconds / self.seconds

    @property
    def foreign_on_server_cpus(self) -> float | None:
        """Share of the window the server's CPUs ran something else: other people's work
        (Redis and PostgreSQL share those CPUs with the server: they are ours)."""
        server = (0.0 if math.isnan(self.server_cpu) else self.server_cpu) + self.services_cpu
        return self.util(max(0.0, self.server_cpus_busy - server))

    @property
    def foreign_on_loadgen_cpus(self) -> float | None:
        ours = self.upstream_cpu + self.loadgen_cpu
        return self.util(max(0.0, self.loadgen_cpus_busy - ours))


def pick_window(samples: Sequence[Sample], streams: int, trim: float = 0.2) -> Window | None:
    """The longest run of samples with all ``streams`` flowing (else at least 90 % of them),
    trimmed by ``trim`` seconds at each end so that no start or end falls inside it."""
    for need in (streams, math.ceil(0.9 * streams)):
        best: tuple[int, int] | None = None
        start: int | None = None
        for i, sample in enumerate([*samples, None]):
            if sample is not None and sample.active >= need:
                start = i if start is None else start
                continue
            if start is not None:
                if best is None or (i - start) > (best[1] - best[0]):
                    best = (start, i)
                start = None
        if best is not None:
            first, end = best
            inner = [s for s in samples[first:end] if samples[first].t + trim <= s.t]
            inner = [s for s in inner if s.t <= samples[end - 1].t - trim]
            chosen = inner if len(inner) >= 2 else list(samples[first:end])
            if len(chosen) >= 2:
                return _window(chosen)
    return None


def window_between(samples: Sequence[Sample], start: float, end: float) -> Window | None:
    """The samples taken between ``start`` and ``end`` (clock times)."""
    chosen = [s for s in samples if start <= s.t <= end]
    return _window(chosen) if len(chosen) >= 2 else None


def _window(chosen: Sequence[Sample]) -> Window:
    a, b = chosen[0], chosen[-1]
    return Window(
        seconds=b.t - a.t,
        tokens=b.tokens - a.tokens,
        mean_active=sum(s.active for s in chosen) / len(chosen),
        server_cpu=b.server_cpu - a.server_cpu,
        server_sys=b.server_sys - a.server_sys,
        upstream_cpu=b.upstream_cpu - a.upstream_cpu,
        loadgen_cpu=b.loadgen_cpu - a.loadgen_cpu,
        peak_rss=max(s.server_rss for s in chosen),
        server_cpus_busy=b.server_cpus_busy - a.server_cpus_busy,
        loadgen_cpus_busy=b.loadgen_cpus_busy - a.loadgen_cpus_busy,
        redis_cpu=b.redis_cpu - a.redis_cpu,
        pg_cpu=b.pg_cpu - a.pg_cpu,
        peak_redis_rss=max(s.redis_rss for s in chosen),
        peak_pg_rss=max(s.pg_rss for s in chosen),
    )
