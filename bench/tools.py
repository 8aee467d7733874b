"""The ``tools`` scenario: what one tool step through MCP costs a run, against a plain run.

``ssechat serve`` runs with ``SSECHAT_MCP_CONFIG`` naming the MCP test server
(``tests/mcp_test_server.py``, over stdio: the server's child process), its ``echo`` tool set to
``always`` through the admin API, as an admin would. A tool run asks ``fake-agent``: the
first upstream request ends in a call of ``test__echo`` with the user's text, the run calls the
tool through MCP, and the second upstream request answers "Tool said: <text>". A plain run asks
``fake-tokens-N`` for an answer of the same number of tokens, with no tools offered. Each kind
runs ``runs`` times one after another (latency without contention), then ``concurrent`` times
with ``in_flight`` at once (throughput and CPU per run).

Reported per phase: runs/s, latency from sending the request to ``done`` (p50/p99), the
server's CPU per run, and the MCP server child's CPU per call; then what a tool step adds:
server CPU (concurrent phases, the steadier figure) and latency (p50 of the sequential phases).

Every run's text must be exactly the expected answer (for a tool run it can only be when the
tool's result came back through MCP), the test server must have logged one ``echo`` call per
tool run (its marks), and one stored answer is read back to check its call, decision and
result: a figure taken from runs that did not do what they claim is an error, not a result.

Like every scenario it starts its own server (the MCP child dies with it, by its pid) and only
talks to 127.0.0.1; it never changes the server's code or settings beyond its own environment.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from tests.mcp_support import marks, stdio_entry

from bench.client import Stream, Totals, clock, fetch, open_stream, request
from bench.peers import Peer
from bench.procs import ProcStat, ProcTree, cpu_busy
from bench.scenarios import Bench
from bench.stats import percentile, rnd
from ssechat.fake_upstream.wire import generated_tokens, word_tokens

__all__ = ["tools"]

SERVER = "test"
TOOL = "echo"
TOOL_KEY = f"{SERVER}/{TOOL}"
AGENT = "fake-agent"
PROMPT = "Tell me about streaming."
TOOL_ANSWER = f"Tool said: {PROMPT}"  # what fake-agent answers once echo gave PROMPT back
PLAIN_TOKENS = len(word_tokens(TOOL_ANSWER))
PLAIN_MODEL = f"fake-tokens-{PLAIN_TOKENS}"
PLAIN_ANSWER = "".join(generated_tokens(PLAIN_TOKENS))
PER_CONVERSATION = 10  # runs per conversation (each a new root branch: the context stays one turn)
READY_WITHIN = 30.0  # seconds for the MCP server to start and list its tools
RUN_LIMIT = 60.0
_SSE = {"Accept": "text/event-stream"}


@dataclass(frozen=True, slots=True)
class Kind:
    name: str  # "plain" or "tools"
    model: str
    answer: str
    conversations: tuple[str, ...]


async def tools(bench: Bench, runs: int, concurrent: int, in_flight: int) -> dict[str, Any]:
    """The scenario (see the module docstring); the result's ``window`` holds what other work
    took of our CPUs, so that ``Bench.measure`` can take a disturbed measurement again."""
    work = Path(tempfile.mkdtemp(prefix="tools-", dir=bench.work))
    marks_dir = work / "marks"
    marks_dir.mkdir()
    config = work / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {SERVER: stdio_entry(marks_dir)}}))
    warm = 4
    with bench.peer("ssechat", SSECHAT_MCP_CONFIG=str(config)) as peer:
        assert peer.stat is not None
        await _tool_ready(peer)
        await _set_always(peer)
        count = warm + runs + concurrent
        plain = Kind("plain", PLAIN_MODEL, PLAIN_ANSWER, await _conversations(peer, count, []))
        tooled = Kind("tools", AGENT, TOOL_ANSWER, await _conversations(peer, count, [TOOL_KEY]))
        # Warm: imports, the MCP session, the store's statements (not counted).
        warm_errors = [*(await _phase(peer, plain, 0, warm, 2, None))["error_examples"]]
        warm_errors += (await _phase(peer, tooled, 0, warm, 2, None))["error_examples"]
        child = _mcp_child(peer.stat.pid)
        mcp = ProcStat(child) if child is not None else None
        span = _Span(bench, peer, mcp)
        phases = {
            "plain_sequential": await _phase(peer, plain, warm, runs, 1, mcp),
            "tools_sequential": await _phase(peer, tooled, warm, runs, 1, mcp),
            "plain_concurrent": await _phase(peer, plain, warm + runs, concurrent, in_flight, mcp),
            "tools_concurrent": await _phase(peer, tooled, warm + runs, concurrent, in_flight, mcp),
        }
        window = span.end()
        calls = len(marks(marks_dir, f"{TOOL}-started"))
        stored = await _stored_call(peer, tooled.conversations[0])
        restarted = child is None or _mcp_child(peer.stat.pid) != child
    # Only tool runs call echo (the warm-up's too); plain runs leave no mark.
    expected_calls = warm + runs + concurrent
    checks = {
        "echo_calls_at_mcp_server": calls,
        "echo_calls_expected": expected_calls,
        "stored_call_ok": stored == "",
        "mcp_server_restarted": restarted,
    }
    problems = [*warm_errors]
    if calls != expected_calls:
        problems.append(f"the MCP server saw {calls} echo calls, not {expected_calls}")
    if stored:
        problems.append(stored)
    if restarted:
        problems.append("the MCP server child was not found, or was restarted, mid-measurement")
    errors = sum(p["errors"] for p in phases.values()) + len(problems)
    out: dict[str, Any] = {
        "tool": TOOL_KEY,
        "transport": "stdio",
        "tool_model": AGENT,
        "plain_model": PLAIN_MODEL,
        "answer_tokens": PLAIN_TOKENS,
        "runs": runs,
        "concurrent": concurrent,
        "in_flight": in_flight,
        **phases,
        "tool_step": _tool_step(phases),
        "checks": checks,
        "window": window,
        "errors": errors,
        "error_examples": sorted(
            {*problems, *(e for p in phases.values() for e in p["error_examples"])}
        )[:3],
    }
    step = out["tool_step"]
    bench.say(
        f"tools: a tool step costs {step['server_cpu_ms']} ms of server CPU "
        f"(+ {step['mcp_cpu_ms_per_call']} ms in the MCP server) and {step['latency_ms_p50']} ms "
        f"of latency (p50); errors={errors}"
    )
    return out


async def _tool_ready(peer: Peer) -> None:
    """Wait until the MCP server is ready and lists echo (it starts in the background)."""
    last: list[str] = ["no answer"]

    async def ready() -> bool:
        status, body = await fetch(peer.port, "GET", "/api/tools", headers=peer.auth)
        if status != 200:
            last[0] = f"GET /api/tools: HTTP {status}"
            return False
        listed = {t["key"]: t for t in orjson.loads(body)["tools"]}
        last[0] = f"{TOOL_KEY}: {listed.get(TOOL_KEY)}"
        return bool(listed.get(TOOL_KEY, {}).get("available"))

    deadline = clock() + READY_WITHIN
    while not await ready():
        if clock() > deadline:
            raise RuntimeError(
                f"the MCP test server was not ready in {READY_WITHIN:g} s ({last[0]})"
            )
        await asyncio.sleep(0.05)


async def _set_always(peer: Peer) -> None:
    """Set echo's approval to ``always`` as an admin does, and check that the tools list says so."""
    path = f"/api/admin/mcp/{SERVER}"
    body = {"approvals": {TOOL: "always"}}
    status, answer = await fetch(peer.port, "PATCH", path, body, headers=peer.auth)
    if status != 200:
        raise RuntimeError(f"PATCH {path}: HTTP {status} {answer[:200]!r}")
    status, answer = await fetch(peer.port, "GET", "/api/tools", headers=peer.auth)
    listed = {t["key"]: t for t in orjson.loads(answer)["tools"]} if status == 200 else {}
    if listed.get(TOOL_KEY, {}).get("approval") != "always":
        raise RuntimeError(f"{TOOL_KEY} is not set to always: {listed.get(TOOL_KEY)}")
    # A change of approvals may restart the server's connection: wait until it is ready again.
    await _tool_ready(peer)


async def _conversations(peer: Peer, runs: int, keys: list[str]) -> tuple[str, ...]:
    """Create the conversations the runs post to (not timed)."""
    semaphore = asyncio.Semaphore(16)

    async def create() -> str:
        async with semaphore:
            status, body = await fetch(
                peer.port, "POST", "/api/conversations", {"tools": keys}, headers=peer.auth
            )
        if status != 201:
            raise RuntimeError(f"creating a conversation: HTTP {status} {body[:200]!r}")
        return str(orjson.loads(body)["id"])

    count = max(1, -(-runs // PER_CONVERSATION))
    return tuple(await asyncio.gather(*(create() for _ in range(count))))


async def _phase(
    peer: Peer, kind: Kind, first: int, count: int, in_flight: int, mcp: ProcStat | None
) -> dict[str, Any]:
    """``count`` runs of ``kind``, ``in_flight`` at a time; numbered from ``first`` so that
    each phase spreads its runs over its own conversations."""
    assert peer.stat is not None
    semaphore = asyncio.Semaphore(in_flight)
    totals = Totals()

    async def one(i: int) -> Stream:
        conversation = kind.conversations[(first + i) // PER_CONVERSATION % len(kind.conversations)]
        body = {"content": PROMPT, "model": kind.model, "parent_id": None}
        path = f"/api/conversations/{conversation}/messages"
        wire = request("POST", path, peer.port, body=body, headers={**_SSE, **peer.auth})
        async with semaphore:
            # texts: frame by frame, so that the text can be checked exactly
            result = Stream(texts=[])
            return await open_stream(peer.port, wire, "run", totals, result=result, limit=RUN_LIMIT)

    cpu0, mcp0, start = peer.stat.cpu_seconds(), _cpu(mcp), clock()
    streams = await asyncio.gather(*(one(i) for i in range(count)))
    seconds = clock() - start
    cpu, calls_cpu = peer.stat.cpu_seconds() - cpu0, _cpu(mcp) - mcp0
    failures = [_failure(s, kind.answer) for s in streams]
    latency = [
        (s.end_at - s.sent_at) * 1e3 for s, f in zip(streams, failures, strict=True) if not f
    ]
    errors = [f for f in failures if f]
    calls = count if kind.name == "tools" else 0
    return {
        "model": kind.model,
        "runs": count,
        "in_flight": in_flight,
        "seconds": rnd(seconds, 3),
        "runs_per_s": rnd(count / seconds, 1) if seconds > 0 else None,
        "latency_ms": {"p50": rnd(percentile(latency, 50)), "p99": rnd(percentile(latency, 99))},
        "server_cpu_ms_per_run": rnd(cpu / count * 1e3, 3) if count else None,
        "mcp_cpu_ms_per_call": rnd(calls_cpu / calls * 1e3, 3) if calls and mcp else None,
        "mcp_cpu_ms_idle": rnd(calls_cpu * 1e3, 1) if not calls and mcp else None,
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:3],
    }


def _failure(stream: Stream, answer: str) -> str:
    if stream.error or not stream.done:
        return stream.error or "no done"
    text = "".join(stream.texts or [])
    return "" if text == answer else f"answer {text[:80]!r}, not {answer[:80]!r}"


def _cpu(stat: ProcStat | None) -> float:
    return stat.cpu_seconds() if stat is not None else math.nan


def _tool_step(phases: dict[str, Any]) -> dict[str, Any]:
    """What a tool step adds to a run of the same answer length."""

    def diff(a: Any, b: Any) -> float | None:
        ok = isinstance(a, int | float) and isinstance(b, int | float)
        return round(a - b, 3) if ok else None

    seq_t, seq_p = phases["tools_sequential"], phases["plain_sequential"]
    con_t, con_p = phases["tools_concurrent"], phases["plain_concurrent"]
    return {
        "server_cpu_ms": diff(con_t["server_cpu_ms_per_run"], con_p["server_cpu_ms_per_run"]),
        "mcp_cpu_ms_per_call": con_t["mcp_cpu_ms_per_call"],
        "latency_ms_p50": diff(seq_t["latency_ms"]["p50"], seq_p["latency_ms"]["p50"]),
        "latency_ms_p99": diff(seq_t["latency_ms"]["p99"], seq_p["latency_ms"]["p99"]),
    }


def _mcp_child(server_pid: int) -> int | None:
    """The MCP test server: the ssechat process's descendant running ``mcp_test_server.py``."""
    for pid in ProcTree(server_pid).pids()[1:]:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(arg.endswith(b"mcp_test_server.py") for arg in argv):
            return pid
    return None


async def _stored_call(peer: Peer, conversation: str) -> str:
    """Read one tool run's stored answer back; "" when its call is as the scenario expects."""
    status, body = await fetch(
        peer.port, "GET", f"/api/conversations/{conversation}", headers=peer.auth
    )
    if status != 200:
        return f"GET /api/conversations/{conversation}: HTTP {status}"
    answers = [m for m in orjson.loads(body)["messages"] if m.get("tool_calls")]
    if not answers:
        return "no stored answer holds a tool call"
    call = answers[-1]["tool_calls"][0]
    result = call.get("result") or {}
    got = (call.get("server"), call.get("tool"), call.get("approval"), result.get("content"))
    want = (SERVER, TOOL, "always", PROMPT)
    if got != want or result.get("is_error"):
        return f"stored call {got}, is_error={result.get('is_error')}; expected {want}"
    return ""


class _Span:
    """What other work took of our CPUs while the phases ran, as ``Window`` reports it."""

    def __init__(self, bench: Bench, peer: Peer, mcp: ProcStat | None) -> None:
        assert peer.stat is not None
        self.plan, self.server, self.mcp = bench.plan, peer.stat, mcp
        self.upstream, self.me = bench.upstream.stat, ProcStat(os.getpid())
        self.start = self._read()

    def _read(self) -> tuple[float, ...]:
        ours_on_server = self.server.cpu_seconds() + (_cpu(self.mcp) if self.mcp else 0.0)
        ours_on_loadgen = self.upstream.cpu_seconds() + self.me.cpu_seconds()
        return (
            clock(),
            cpu_busy(self.plan.server),
            cpu_busy(self.plan.loadgen | self.plan.upstream),
            ours_on_server,
            ours_on_loadgen,
        )

    def end(self) -> dict[str, Any]:
        t0, busy_s0, busy_l0, ours_s0, ours_l0 = self.start
        t1, busy_s1, busy_l1, ours_s1, ours_l1 = self._read()
        seconds = t1 - t0

        def share(value: float) -> float | None:
            return None if math.isnan(value) or seconds <= 0 else rnd(max(0.0, value) / seconds)

        return {
            "seconds": rnd(seconds),
            "server_cpu_util": share(ours_s1 - ours_s0),
            "foreign_on_server_cpus": share((busy_s1 - busy_s0) - (ours_s1 - ours_s0)),
            "foreign_on_loadgen_cpus": share((busy_l1 - busy_l0) - (ours_l1 - ours_l0)),
        }
