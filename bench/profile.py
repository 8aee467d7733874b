"""Profile ssechat under load with py-spy, and say where its CPU goes.

``py-spy record --nonblocking --format raw`` samples the server (every thread) while a scenario
runs; each line of its output is one stack, root first, and a count. Two summaries are drawn:

- *self time by component*: the library (or ssechat module) of the innermost frame. A sample
  whose innermost frame is the event loop's entry point (``Runner.run``) is time spent inside
  uvloop's C code: polling, socket calls and scheduling callbacks, the cost of wake-ups;
- *inclusive time of chosen functions*: the share of samples with that function on the stack.

Multiplied by the CPU µs per token measured in the same window, a share becomes µs per token.
py-spy's stacks of coroutines resumed from C start at the coroutine, and generator frames can be
chained oddly: read the inclusive figures as close estimates, not exact accounts.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from pathlib import Path
from typing import Any

from bench.client import Totals, wait_until
from bench.peers import PEERS_VENV, Peer
from bench.scenarios import Bench, Hook
from bench.stats import rnd

__all__ = ["PY_SPY", "py_spy_hook", "summarize"]

PY_SPY = PEERS_VENV / "bin" / "py-spy"

_FILE = re.compile(r"\(([^():]*?)(?::\d+)?\)$")

# Innermost-frame file prefix -> component, first match wins.
_COMPONENTS: tuple[tuple[str, str], ...] = (
    ("ssechat/", ""),  # named after the module, below
    ("asyncio/", "asyncio (Python: tasks, futures, locks, streams)"),
    ("anyio/", "anyio (cancel scopes, task groups, events)"),
    ("httpx/", "httpx + httpcore + h11 (upstream client)"),
    ("httpcore/", "httpx + httpcore + h11 (upstream client)"),
    ("h11/", "httpx + httpcore + h11 (upstream client)"),
    ("sqlalchemy/", "SQLAlchemy + sqlite3 (persistence)"),
    ("aiosqlite/", "SQLAlchemy + sqlite3 (persistence)"),
    ("sqlite3/", "SQLAlchemy + sqlite3 (persistence)"),
    ("greenlet/", "SQLAlchemy + sqlite3 (persistence)"),
    ("uvicorn/", "uvicorn + httptools (ASGI server)"),
    ("httptools/", "uvicorn + httptools (ASGI server)"),
    ("starlette/", "Starlette + FastAPI + pydantic (framework)"),
    ("fastapi/", "Starlette + FastAPI + pydantic (framework)"),
    ("pydantic", "Starlette + FastAPI + pydantic (framework)"),
    ("json/", "json (stdlib)"),
    ("logging/", "logging"),
)

# Functions whose inclusive share is reported (name as py-spy prints it, file prefix).
_FUNCTIONS: tuple[tuple[str, str], ...] = (
    ("RunManager._drive", "ssechat/runs/manager.py"),
    ("OpenAIProvider.stream", "ssechat/providers/openai.py"),
    ("EventDecoder.feed", "ssechat/sse.py"),
    ("read_deltas", "ssechat/providers/chunks.py"),
    ("_Connection.data_received", "ssechat/providers/http1.py"),
    ("encode", "ssechat/sse.py"),
    ("json_data", "ssechat/sse.py"),
    ("MemoryRunLog.append_delta", "ssechat/runs/log.py"),
    ("MemoryRunLog._take", "ssechat/runs/log.py"),
    ("_Writer.run", "ssechat/responses.py"),
    ("EventStreamResponse.__call__", "ssechat/responses.py"),
    ("RequestResponseCycle.send", "uvicorn/"),
    ("RequestResponseCycle.run_asgi", "uvicorn/"),
    ("HttpToolsProtocol.data_received", "uvicorn/"),
    ("RunManager._save_periodically", "ssechat/runs/manager.py"),
    ("SQLStore.save_partial_answers", "ssechat/store/"),
    ("SQLStore.update_message", "ssechat/store/"),
    ("SQLStore.start_exchange", "ssechat/store/"),
    ("_job", "ssechat/store/"),
    ("ChatService.send", "ssechat/api/service.py"),
    ("RunManager.start", "ssechat/runs/manager.py"),
    ("send_message", "ssechat/api/conversations.py"),
    ("solve_dependencies", "fastapi/"),
    ("run_in_threadpool", "starlette/"),
)


def _file(frame: str) -> str:
    match = _FILE.search(frame)
    return match.group(1) if match else ""


def _component(frames: list[str]) -> str:
    leaf = frames[-1]
    name = leaf.split(" (", 1)[0]
    path = _file(leaf)
    if name in ("Runner.run", "run_until_complete", "run_forever") or path == "":
        return "event loop (uvloop C code: polling, socket calls, callbacks)"
    for prefix, component in _COMPONENTS:
        if path.startswith(prefix):
            if prefix == "ssechat/":
                module = path.removesuffix(".py").replace("/", ".")
                return module
            return component
    return "other stdlib (contextlib, enum, typing, threading…)"


def summarize(raw: str, cpu_us_per_unit: float | None, top: int = 14) -> dict[str, Any]:
    """Self time by component and inclusive time of chosen functions, as shares of the samples
    and as µs per unit (a relayed token, a started stream) given the CPU µs per unit."""
    total = 0
    components: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        components[_component(frames)] += count
        seen: set[str] = set()
        for frame in frames:
            name = frame.split(" (", 1)[0]
            path = _file(frame)
            for wanted, prefix in _FUNCTIONS:
                if name == wanted and path.startswith(prefix) and wanted not in seen:
                    seen.add(wanted)
                    functions[wanted] += count

    def rows(counter: Counter[str], limit: int) -> list[dict[str, Any]]:
        out = []
        for key, count in counter.most_common(limit):
            share = count / total if total else 0.0
            us = share * cpu_us_per_unit if cpu_us_per_unit is not None else None
            out.append({"name": key, "share": rnd(share, 3), "us_per_unit": rnd(us, 1)})
        return out

    return {
        "samples": total,
        "self_by_component": rows(components, top),
        "inclusive_functions": rows(functions, len(_FUNCTIONS)),
    }


def py_spy_hook(
    bench: Bench,
    out: Path,
    seconds: float,
    *,
    streams: int = 0,
    delay: float = 0.3,
    rate: int = 200,
) -> Hook:
    """A scenario hook: once ``streams`` streams flow (at most 60 s) and ``delay`` more seconds
    have passed, record the server for ``seconds``."""

    async def hook(peer: Peer, totals: Totals) -> None:
        assert peer.proc is not None
        await wait_until(lambda: totals.active >= streams, 60.0, every=0.05)
        await asyncio.sleep(delay)
        argv = [str(PY_SPY), "record", "--pid", str(peer.proc.pid), "--duration"]
        argv += [f"{seconds:g}", "--rate", str(rate), "--format", "raw", "--nonblocking"]
        argv += ["--output", str(out)]
        spy = bench.procs.spawn("py-spy", argv, cpus=bench.plan.loadgen)
        try:
            await wait_until(lambda: spy.poll() is not None, seconds + 20.0, every=0.05)
        finally:
            bench.procs.stop(spy, grace=2)

    return hook
