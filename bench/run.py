"""``python -m bench.run``: ssechat's benchmark, end to end, with one command.

It installs the peers when needed (``bench/.venv-peers`` from ``bench/peers/requirements.txt``,
``npm ci`` in ``bench/peers``), pins itself (the load generator) and the fake upstream to one
CPU and every server under test to another, runs the scenarios, and writes
``bench/RESULTS.md`` and ``bench/results.json``. ``--quick`` runs the same harness with tiny sizes
in about ten seconds (the smoke test in ``tests/test_bench_smoke.py``).

Every process it starts is stopped by pid when it ends, however it ends; it only ever talks to
127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

import uvloop

from bench import report
from bench.importing import ImportSizes, importing
from bench.peers import PEERS, SHARED_PEERS, install_peers, start_upstream
from bench.procs import CpuPlan, Procs, loadavg, machine_info, raise_nofile_limit
from bench.profile import PY_SPY, py_spy_hook, summarize
from bench.scenarios import Bench, PacedConfig, ladder, paced_fresh, paced_level, saturated
from bench.search import SearchSizes, search
from bench.services import Services
from bench.sessions import idle, resume, starts
from bench.tools import tools

__all__ = ["main"]

BENCH_DIR = Path(__file__).resolve().parent
SCENARIOS = (
    "paced",
    "saturated",
    "starts",
    "idle",
    "resume",
    "tools",
    "search",
    "import",
    "profile",
)
STORE_PEERS = ("ssechat", "ssechat-pg")  # search's and import's databases: SQLite, PostgreSQL
PATIENCE = 480.0  # seconds of a full run after which disturbed measurements are kept as they are


@dataclass(frozen=True)
class Sizes:
    paced: PacedConfig
    levels: tuple[int, ...]
    sat_streams: int
    sat_tokens: int
    sat_seconds: float
    sat_open_for: float
    lone: int
    burst: int
    in_flight: int
    idle_runs: int
    idle_followers: int
    heartbeat: float
    open_rate: float
    resume_runs: int
    resume_tokens: int
    resume_rate: float
    resume_start_rate: float
    cancels: int
    tool_runs: int
    tool_concurrent: int
    tool_in_flight: int
    search: SearchSizes
    imports: ImportSizes
    profile_seconds: float


FULL = Sizes(
    paced=PacedConfig(tokens=200, rate=20.0),
    levels=(50, 100, 200, 400, 700, 1000),
    sat_streams=100,
    sat_tokens=20_000,
    sat_seconds=4.0,
    sat_open_for=3.0,
    lone=20,
    burst=500,
    in_flight=32,
    idle_runs=4000,
    idle_followers=6000,
    heartbeat=3.0,
    open_rate=500.0,
    resume_runs=1000,
    resume_tokens=60,
    resume_rate=30.0,
    resume_start_rate=250.0,
    cancels=200,
    tool_runs=300,
    tool_concurrent=1000,
    tool_in_flight=20,
    search=SearchSizes(
        conversations=10_000,
        messages=20,
        other_conversations=1_000,
        question_chars=150,
        answer_chars=600,
        requests=100,
        warmup=5,
        seconds=15.0,
    ),
    imports=ImportSizes(conversations=3_000, messages=20, chars=950),  # 99 MB of JSON
    profile_seconds=6.0,
)
QUICK = Sizes(
    paced=PacedConfig(tokens=20, rate=50.0),
    levels=(8,),
    sat_streams=5,
    sat_tokens=100_000,
    sat_seconds=0.8,
    sat_open_for=0.6,
    lone=3,
    burst=12,
    in_flight=4,
    idle_runs=10,
    idle_followers=10,
    heartbeat=0.5,
    open_rate=200.0,
    resume_runs=10,
    resume_tokens=30,
    resume_rate=50.0,
    resume_start_rate=100.0,
    cancels=5,
    tool_runs=4,
    tool_concurrent=8,
    tool_in_flight=4,
    search=SearchSizes(
        conversations=60,
        messages=4,
        other_conversations=20,
        question_chars=60,
        answer_chars=200,
        requests=5,
        warmup=1,
        seconds=5.0,
    ),
    imports=ImportSizes(conversations=12, messages=4, chars=100),
    profile_seconds=1.0,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (the smoke run)")
    parser.add_argument(
        "--peers",
        default=",".join(PEERS),
        help=f"comma-separated, from {', '.join(PEERS)} (default: all)",
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, from {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument("--out", type=Path, default=BENCH_DIR, help="where results are written")
    parser.add_argument("--levels", help="paced ladder, e.g. 50,100,200 (default 50…1000)")
    parser.add_argument(
        "--stock-upstream",
        action="store_true",
        help="run `python -m ssechat.fake_upstream` (asyncio) instead of it on uvloop",
    )
    args = parser.parse_args(argv)
    args.peer_names = tuple(p for p in args.peers.split(",") if p)
    args.scenario_names = tuple(s for s in args.scenarios.split(",") if s)
    for name in args.peer_names:
        if name not in PEERS:
            parser.error(f"unknown peer {name!r}")
    for name in args.scenario_names:
        if name not in SCENARIOS:
            parser.error(f"unknown scenario {name!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.levels:
        sizes = replace(sizes, levels=tuple(int(x) for x in args.levels.split(",")))
    plan = CpuPlan.for_this_machine()
    raise_nofile_limit()
    install_peers(args.peer_names)
    plan.pin_self()
    work = Path(tempfile.mkdtemp(prefix="ssechat-bench-"))
    procs = Procs(work / "logs")

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    ok = False
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            results = runner.run(_run(args, sizes, plan, procs, work))
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        (args.out / "RESULTS.md").write_text(report.markdown(results))
        print(f"[bench] wrote {args.out / 'RESULTS.md'} and {args.out / 'results.json'}")
        ok = True
    finally:
        procs.stop_all()
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"[bench] logs kept in {work / 'logs'}", file=sys.stderr)
    return 0


async def _run(
    args: argparse.Namespace, sizes: Sizes, plan: CpuPlan, procs: Procs, work: Path
) -> dict[str, Any]:
    started = time.time()
    peers: tuple[str, ...] = args.peer_names
    results: dict[str, Any] = {
        "schema": 1,
        "mode": "quick" if args.quick else "full",
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(started)),
        "machine": machine_info(plan),
        "peers": list(peers),
        "upstream": "ssechat.fake_upstream on asyncio"
        if args.stock_upstream
        else "ssechat.fake_upstream on uvloop (bench.upstream)",
        "sizes": _sizes_dict(sizes),
    }
    upstream = start_upstream(procs, plan, uvloop=not args.stock_upstream)
    bench = Bench(procs, plan, upstream, work, quick=args.quick)
    if any(name in SHARED_PEERS for name in peers):
        bench.services = Services(procs, plan.server)
    try:
        return await _scenarios(args, sizes, bench, results, started)
    finally:
        if bench.services is not None:
            bench.services.close()


async def _scenarios(
    args: argparse.Namespace, sizes: Sizes, bench: Bench, results: dict[str, Any], started: float
) -> dict[str, Any]:
    peers: tuple[str, ...] = args.peer_names
    scenarios: tuple[str, ...] = args.scenario_names
    plan, upstream = bench.plan, bench.upstream
    if args.quick:
        bench.attempts, bench.quiet_wait = 1, 0.0
    else:
        bench.patience_until = time.perf_counter() + PATIENCE
    bench.say(f"{plan.note}; upstream on port {upstream.port}")
    relays = [p for p in peers if p != "direct"]
    if "paced" in scenarios:
        results["paced"] = await _paced(bench, sizes, peers, relays)
    if "saturated" in scenarios:
        results["saturated"] = {}
        for name in peers:
            run = partial(
                saturated,
                bench,
                name,
                sizes.sat_streams,
                sizes.sat_tokens,
                sizes.sat_seconds,
                sizes.sat_open_for,
            )
            results["saturated"][name] = await bench.measure(f"saturated {name}", run)
    if "starts" in scenarios:
        results["starts"] = {}
        for name in peers:
            await bench.wait_quiet()
            results["starts"][name] = await starts(
                bench, name, sizes.lone, sizes.burst, sizes.in_flight
            )
    if "ssechat" in peers and "idle" in scenarios:
        await bench.wait_quiet()
        results["idle"] = await idle(
            bench, sizes.idle_runs, sizes.idle_followers, sizes.heartbeat, sizes.open_rate
        )
    if "ssechat" in peers and "resume" in scenarios:
        await bench.wait_quiet()
        results["resume"] = await resume(
            bench,
            sizes.resume_runs,
            sizes.resume_tokens,
            sizes.resume_rate,
            sizes.resume_start_rate,
            sizes.cancels,
        )
    if "ssechat" in peers and "tools" in scenarios:
        run = partial(tools, bench, sizes.tool_runs, sizes.tool_concurrent, sizes.tool_in_flight)
        results["tools"] = await bench.measure("tools", run)
    if "search" in scenarios:
        results["search"] = {}
        for name in (p for p in STORE_PEERS if p in peers):
            await bench.wait_quiet()
            results["search"][name] = await search(bench, name, sizes.search)
    if "import" in scenarios:
        names = [p for p in STORE_PEERS if p in peers]
        results["import"] = await importing(bench, names, sizes.imports) if names else {}
    if "ssechat" in peers and "profile" in scenarios and not args.quick:
        results["profile"] = await _profile(bench, sizes, results, args.out)
    results["goals"] = report.goals(results)
    results["machine"]["loadavg_at_end"] = loadavg()
    results["duration_s"] = round(time.time() - started, 1)
    bench.procs.stop(upstream.proc)
    return results


async def _paced(
    bench: Bench, sizes: Sizes, peers: tuple[str, ...], relays: list[str]
) -> dict[str, Any]:
    cfg = sizes.paced
    out: dict[str, Any] = {"model": cfg.model, "behind_limit_s": cfg.behind_limit, "peers": {}}
    levels = list(sizes.levels)
    for name in relays:
        out["peers"][name] = await ladder(bench, name, levels, cfg, stop_at_first_failure=True)
    if "direct" in peers:
        wanted = {levels[-1]} | {r["max_held"] for r in out["peers"].values() if r["max_held"]}
        direct = [await paced_fresh(bench, "direct", level, cfg) for level in sorted(wanted)]
        held = [r["streams"] for r in direct if r["held"]]
        out["peers"]["direct"] = {"levels": direct, "max_held": max(held, default=0)}
    return out


async def _profile(
    bench: Bench, sizes: Sizes, results: dict[str, Any], out: Path
) -> dict[str, Any]:
    if not PY_SPY.exists():
        return {"skipped": f"{PY_SPY} not found"}
    held = results.get("paced", {}).get("peers", {}).get("ssechat", {}).get("max_held", 0)
    level = max(50, int(held) or 100)
    profile_dir = out / "profile"
    profile_dir.mkdir(parents=True, exist_ok=True)
    found: dict[str, Any] = {}
    seconds = sizes.profile_seconds
    paced_file = profile_dir / f"ssechat-paced-{level}.txt"
    await bench.wait_quiet()
    with bench.peer("ssechat") as peer:
        hook = py_spy_hook(bench, paced_file, seconds, streams=level)
        run = await paced_level(bench, peer, level, sizes.paced, hook=hook)
    found["paced"] = {
        "unit": "token",
        "streams": level,
        "cpu_us_per_unit": run["window"].get("cpu_us_per_token"),
        "server_cpu_util": run["window"].get("server_cpu_util"),
        "raw": str(paced_file.relative_to(out)),
        **summarize(_read(paced_file), run["window"].get("cpu_us_per_token")),
    }
    sat_file = profile_dir / "ssechat-saturated.txt"
    hook = py_spy_hook(bench, sat_file, seconds, delay=0.5)
    await bench.wait_quiet()
    sat = await saturated(
        bench,
        "ssechat",
        sizes.sat_streams,
        sizes.sat_tokens,
        seconds + 1.0,
        sizes.sat_open_for,
        hook=hook,
    )
    found["saturated"] = {
        "unit": "token",
        "streams": sizes.sat_streams,
        "cpu_us_per_unit": sat["window"].get("cpu_us_per_token"),
        "server_cpu_util": sat["window"].get("server_cpu_util"),
        "raw": str(sat_file.relative_to(out)),
        **summarize(_read(sat_file), sat["window"].get("cpu_us_per_token")),
    }
    starts_file = profile_dir / "ssechat-starts.txt"
    hook = py_spy_hook(bench, starts_file, min(seconds, 3.0), delay=0.3)
    await bench.wait_quiet()
    burst = await starts(bench, "ssechat", 0, sizes.burst, sizes.in_flight, hook=hook)
    per_start = burst["cpu_ms_per_start"]
    found["starts"] = {
        "unit": "start",
        "streams": sizes.burst,
        "cpu_us_per_unit": per_start * 1e3 if per_start is not None else None,
        "server_cpu_util": burst["server_cpu_util"],
        "raw": str(starts_file.relative_to(out)),
        **summarize(_read(starts_file), per_start * 1e3 if per_start is not None else None),
    }
    bench.say(f"profiled ssechat: paced at {level} streams, saturated, starts")
    return found


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _sizes_dict(sizes: Sizes) -> dict[str, Any]:
    return {
        "paced_model": sizes.paced.model,
        "paced_levels": list(sizes.levels),
        "paced_start_rate_per_s": sizes.paced.start_rate,
        "saturated": f"{sizes.sat_streams} x fake-tokens-{sizes.sat_tokens}, "
        f"bursting together {sizes.sat_open_for:g} s after they open, cut "
        f"{sizes.sat_seconds:g} s later",
        "starts": f"{sizes.lone} lone, then {sizes.burst} with {sizes.in_flight} in flight",
        "idle": f"{sizes.idle_runs} runs + {sizes.idle_followers} followers, "
        f"heartbeat {sizes.heartbeat:g} s",
        "resume": f"{sizes.resume_runs} x fake-tokens-{sizes.resume_tokens}@{sizes.resume_rate:g}"
        f", then {sizes.cancels} live runs cancelled one by one",
        "tools": f"{sizes.tool_runs} runs one at a time, then {sizes.tool_concurrent} with "
        f"{sizes.tool_in_flight} in flight, each kind (MCP echo over stdio / plain)",
        "search": asdict(sizes.search),
        "import": asdict(sizes.imports),
    }


if __name__ == "__main__":
    raise SystemExit(main())
