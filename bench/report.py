"""Turn the results dictionary into the goals table and ``RESULTS.md``. Pure: no IO."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.mdtable import fmt as _fmt
from bench.mdtable import table as _table
from bench.peers import LABELS
from bench.report_store import import_section, search_section, store_goals

__all__ = ["goals", "level_at", "markdown"]

NOTE_SHARED = (
    "Figures from a shared two-CPU VM can be disturbed by other work (more so the latency "
    "percentiles and the capacity ladder). The harness measures it (the Disturbance section), "
    "re-measures a disturbed window and marks what stayed disturbed with ⚠; the load average "
    "before and after is in the machine table. Compare runs on a quiet machine before reading "
    "small differences."
)


def level_at(peer: dict[str, Any] | None, streams: int) -> dict[str, Any] | None:
    """The paced result of ``peer`` at ``streams`` (else its lowest level tried)."""
    if not peer or not peer.get("levels"):
        return None
    levels: list[dict[str, Any]] = peer["levels"]
    for level in levels:
        if level["streams"] == streams:
            return level
    return levels[0]


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _diff(a: Any, b: Any) -> float | None:
    return round(a - b, 2) if isinstance(a, int | float) and isinstance(b, int | float) else None


def _goal(
    name: str, target: str, measured: Any, check: Callable[[Any], bool], where: str = ""
) -> dict[str, Any]:
    met = None if measured is None else bool(check(measured))
    return {"goal": name, "target": target, "measured": measured, "where": where, "met": met}


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    paced = _get(results, "paced", "peers") or {}
    ours = paced.get("ssechat")
    held = int(ours["max_held"]) if ours else 0
    streams = held or (ours["levels"][0]["streams"] if ours and ours["levels"] else 0)
    at = level_at(ours, streams)
    floor = level_at(paced.get("direct"), streams)
    where = f"paced, {streams} streams" if at else ""
    sat = _get(results, "saturated", "ssechat", "window") or {}
    sat_where = f"{_get(results, 'saturated', 'ssechat', 'streams')} streams" if sat else ""
    added_p50 = _diff(_get(at, "ttft_ms", "p50"), _get(floor, "ttft_ms", "p50"))
    added_p99 = _diff(_get(at, "ttft_ms", "p99"), _get(floor, "ttft_ms", "p99"))
    added_gap = _diff(_get(at, "gap_ms", "p99"), _get(floor, "gap_ms", "p99"))
    rss = _get(at, "window", "rss_kib_per_stream")
    idle_rss = _get(results, "idle", "rss_kib_per_stream")
    resume = results.get("resume") or {}
    return [
        _goal("paced streams held, none behind", ">= 1000", held if ours else None,
              lambda v: v >= 1000, "fake-tokens-200@20"),
        _goal("CPU per relayed token, paced", "<= 40 µs", _get(at, "window", "cpu_us_per_token"),
              lambda v: v <= 40, where),
        _goal("CPU per relayed token, saturated", "<= 10 µs", sat.get("cpu_us_per_token"),
              lambda v: v <= 10, sat_where),
        _goal("relayed tokens/s, saturated", ">= 100 000", sat.get("tokens_per_s"),
              lambda v: v >= 100_000, sat_where),
        _goal("added TTFT p50", "<= 1 ms", added_p50, lambda v: v <= 1, where),
        _goal("added TTFT p99", "<= 5 ms", added_p99, lambda v: v <= 5, where),
        _goal("added inter-token gap p99", "<= 2 ms", added_gap, lambda v: v <= 2, where),
        _goal("RSS per open stream, paced", "<= 20 KiB", rss, lambda v: v <= 20, where),
        _goal("RSS per open stream, idle", "<= 20 KiB", idle_rss, lambda v: v <= 20,
              f"{_get(results, 'idle', 'streams')} idle streams" if idle_rss is not None else ""),
        _goal("reconnects gap-free and duplicate-free", "all",
              f"{resume['ok']}/{resume['reconnects']}" if resume else None,
              lambda _: bool(resume.get("passed")), "Last-Event-ID"),
        *store_goals(results),
    ]  # fmt: skip


# --- markdown ---------------------------------------------------------------------------------


def _pair(data: Any, key: str, floor: Any = None) -> str:
    p50, p99 = _get(data, key, "p50"), _get(data, key, "p99")
    text = f"{_fmt(p50)} / {_fmt(p99)}"
    if floor is not None and floor is not data:
        a50 = _diff(p50, _get(floor, key, "p50"))
        a99 = _diff(p99, _get(floor, key, "p99"))
        text += f" (+{_fmt(a50)} / +{_fmt(a99)})"
    return text


def _machine(results: dict[str, Any]) -> list[str]:
    m = results["machine"]
    rows = [
        ["CPU", f"{m['cpu_model']}, {m['cpus']} CPUs"],
        ["memory", f"{m['memory_gib']} GiB"],
        ["OS / kernel", f"{m['os']} / {m['kernel']}"],
        ["Python / Node", f"{m['python']} / {m['node']}"],
        ["pinning (taskset)", m["pinning"]],
        ["open files (soft / hard)", f"{m['nofile_limit']['soft']} / {m['nofile_limit']['hard']}"],
        ["load average at start / end", f"{' '.join(m['loadavg_at_start'])} / "
         f"{' '.join(m.get('loadavg_at_end', []))}"],
        ["upstream", results["upstream"]],
    ]  # fmt: skip
    return ["## Machine", "", *_table(["", ""], rows)]


def _goals(results: dict[str, Any]) -> list[str]:
    rows = [
        [g["goal"], g["target"], _fmt(g["measured"]), g["where"],
         {True: "met", False: "**not met**", None: "–"}[g["met"]]]
        for g in results.get("goals", [])
    ]  # fmt: skip
    return ["## ssechat against its goals (server on one CPU)", "",
            *_table(["goal", "target", "measured", "where", ""], rows)]  # fmt: skip


def _flag(result: Any) -> str:
    return " ⚠" if isinstance(result, dict) and result.get("disturbed") else ""


CPU_HEAD = ["server µs/token", "Redis µs/token", "PostgreSQL µs/token", "total µs/token"]


_CPU_KEYS = {
    "us_per_token": ("cpu_us_per_token", "redis_cpu_us_per_token", "pg_cpu_us_per_token",
                     "total_cpu_us_per_token"),
    "ms_per_start": ("cpu_ms_per_start", "redis_ms_per_start", "pg_ms_per_start",
                     "total_ms_per_start"),
}  # fmt: skip


def _cpu_cells(data: dict[str, Any], unit: str) -> list[str]:
    """Server, Redis, PostgreSQL and total CPU per token (``us_per_token``) or per start
    (``ms_per_start``). The embedded peers use neither service: their total is the server's."""
    server, redis, pg, total = (data.get(key) for key in _CPU_KEYS[unit])
    if total is None and redis is None and pg is None:
        total = server  # a results.json from before these columns
    return [_fmt(server), _fmt(redis), _fmt(pg), _fmt(total)]


def _services(window: dict[str, Any]) -> str:
    redis, pg = window.get("redis_cpu_us_per_token"), window.get("pg_cpu_us_per_token")
    return "–" if redis is None and pg is None else f"{_fmt(redis)} + {_fmt(pg)}"


SHARED_ROWS = ("ssechat", "ssechat-pg", "ssechat-pg2")


def _shared(results: dict[str, Any]) -> list[str]:
    """ssechat embedded, on PostgreSQL + Redis, and in two processes, side by side: what each
    token and each start costs the server, Redis and PostgreSQL, at one level all of them ran."""
    paced = _get(results, "paced", "peers") or {}
    names = [n for n in SHARED_ROWS if n in paced or n in (results.get("starts") or {})]
    if not any(n != "ssechat" for n in names):
        return []
    ran = [{lv["streams"] for lv in paced[n]["levels"]} for n in names if n in paced]
    held = [{lv["streams"] for lv in paced[n]["levels"] if lv["held"]} for n in names if n in paced]
    common = set.intersection(*held) if held else set()
    level = max(common or (set.intersection(*ran) if ran else set()), default=0)
    out = [
        "## ssechat on PostgreSQL + Redis, next to the embedded row",
        "",
        f"CPU per token in the paced window at {_fmt(level)} streams (the most streams every row "
        "held, else a level they all ran), saturated, and per start; Redis and PostgreSQL run on "
        "the server's CPU and count next to it. Memory: peak RSS in that paced window (the "
        "server's workers summed; PostgreSQL's shared memory counted once).",
        "",
    ]
    rows = []
    for name in names:
        peer = paced.get(name)
        at = level_at(peer, level) if peer else None
        w = _get(at, "window") or {}
        sat = _get(results, "saturated", name, "window") or {}
        start = _get(results, "starts", name) or {}
        rows.append([
            LABELS.get(name, name) + _flag(at),
            _fmt(peer["max_held"]) if peer else "–",
            *_cpu_cells(w, "us_per_token"),
            f"{_fmt(sat.get('total_cpu_us_per_token') or sat.get('cpu_us_per_token'))} "
            f"({_fmt(sat.get('tokens_per_s'))}/s)",
            _fmt(start.get("starts_per_s")),
            _fmt(start.get("total_ms_per_start") or start.get("cpu_ms_per_start")),
            f"{_fmt(w.get('server_rss_mib'))} / {_fmt(w.get('redis_rss_mib'))} / "
            f"{_fmt(w.get('pg_rss_mib'))}",
        ])  # fmt: skip
    head = ["peer", "paced streams held", *CPU_HEAD, "saturated total µs/token (tokens/s)",
            "starts/s", "total CPU ms/start", "RSS MiB server / Redis / PostgreSQL"]  # fmt: skip
    return out + _table(head, rows)


def _paced(results: dict[str, Any]) -> list[str]:
    paced = results.get("paced")
    if not paced:
        return []
    peers = paced["peers"]
    direct = peers.get("direct")
    out = [
        f"## 1. Paced: `{paced['model']}` per stream",
        "",
        "Most streams each peer held (all complete, no token more than "
        f"{paced['behind_limit_s']:g} s later than a zero-cost relay would deliver it), and its "
        'figures at that level. "Added" is against going direct to the upstream at the same '
        "level. Times in ms; drift: how far a stream's tokens slipped behind the pace after "
        "its first one. ⚠: other work disturbed the measurement (see below).",
        "",
    ]
    rows = []
    for name, peer in peers.items():
        held = peer["max_held"]
        tried = max(level["streams"] for level in peer["levels"])
        at = level_at(peer, held)
        floor = level_at(direct, held if held else at["streams"] if at else 0)
        w = _get(at, "window") or {}
        rows.append([
            LABELS.get(name, name) + _flag(at),
            f"**{_fmt(held)}** (of {_fmt(tried)} tried)",
            _pair(at, "ttft_ms", floor if name != "direct" else None),
            _pair(at, "gap_ms", floor if name != "direct" else None),
            _fmt(_get(at, "max_drift_ms", "p99")),
            *_cpu_cells(w, "us_per_token"),
            _fmt(w.get("server_cpu_util")),
            _fmt(w.get("rss_kib_per_stream")),
            _fmt(_get(at, "errors")),
        ])  # fmt: skip
    head = ["peer", "streams held", "TTFT p50 / p99 (added)", "gap p50 / p99 (added)",
            "drift p99", *CPU_HEAD, "server CPU", "RSS KiB/stream", "errors"]  # fmt: skip
    out += _table(head, rows)
    out += ["Every level tried (lag: worst token of a stream against a zero-cost relay):", ""]
    rows = []
    for name, peer in peers.items():
        for level in peer["levels"]:
            w = level.get("window") or {}
            rows.append([
                name + _flag(level), _fmt(level["streams"]), _fmt(level["held"]),
                _fmt(level["errors"]), _fmt(level["behind"]), _pair(level, "ttft_ms"),
                _fmt(_get(level, "gap_ms", "p99")), _fmt(_get(level, "max_lag_ms", "p99")),
                _fmt(_get(level, "max_drift_ms", "p99")), _fmt(w.get("cpu_us_per_token")),
                _services(w), _fmt(w.get("server_cpu_util")),
                f"{_fmt(w.get('upstream_cpu_util'))} + {_fmt(w.get('loadgen_cpu_util'))}",
                _fmt(w.get("rss_kib_per_stream")),
            ])  # fmt: skip
    head = ["peer", "streams", "held", "errors", "behind", "TTFT p50 / p99", "gap p99",
            "lag p99", "drift p99", "µs/token", "+ Redis + PG µs/token", "server CPU",
            "upstream + loadgen CPU",
            "KiB/stream"]  # fmt: skip
    return out + _table(head, rows)


SATURATED_HEAD = ["peer", "tokens/s", "server µs/token", "Redis µs/token",
                  "PostgreSQL µs/token", "total µs/token", "server CPU (kernel share)",
                  "upstream + loadgen CPU", "streams flowing (mean)", "errors"]  # fmt: skip


def _saturated(results: dict[str, Any]) -> list[str]:
    sat = results.get("saturated")
    if not sat:
        return []
    rows = []
    for name, run in sat.items():
        w = run["window"]
        rows.append([
            LABELS.get(name, name) + _flag(run), _fmt(w.get("tokens_per_s")),
            *_cpu_cells(w, "us_per_token"),
            f"{_fmt(w.get('server_cpu_util'))} ({_fmt(w.get('server_sys_share'))})",
            f"{_fmt(w.get('upstream_cpu_util'))} + {_fmt(w.get('loadgen_cpu_util'))}",
            f"{_fmt(w.get('mean_active_streams'))} of {_fmt(run['streams'])}",
            _fmt(run["errors"]),
        ])  # fmt: skip
    first = next(iter(sat.values()))
    out = [
        "## 2. Saturated: tokens as fast as the upstream sends them",
        "",
        f"{first['streams']} streams of `{first['model']}`, opened first and then bursting all "
        "at the same moment (each starts with one token and a stall that ends at that moment), "
        f"cut {first['seconds']:g} s later; throughput and CPU from 0.5 s after the burst "
        "began to the cut.",
        "",
        *_table(SATURATED_HEAD, rows),
    ]
    direct = _get(sat, "direct", "window", "tokens_per_s")
    # rawpy is a floor for Python servers, not a relay under evaluation: on this rig its
    # saturated figure is bounded by the upstream's CPU, which the next note says.
    relays = [
        (float(_get(run, "window", "tokens_per_s") or 0), n)
        for n, run in sat.items()
        if n not in ("direct", "rawpy")
    ]
    fastest, fastest_name = max(relays, default=(0.0, ""))
    if direct and fastest:
        ratio = direct / fastest
        server = _get(sat, fastest_name, "window", "server_cpu_util")
        loadgen = _get(sat, fastest_name, "window", "loadgen_cpu_util")
        if ratio >= 2:
            verdict = "not the bottleneck"
        elif server is not None and server >= 0.95 and loadgen is not None and loadgen <= 0.25:
            # A relay that joins the tokens of one read into one event is cheaper to read than
            # the upstream's one-token chunks: the ratio then says nothing about the load
            # generator; its own CPU and the server's saturation do.
            verdict = (
                f"not the bottleneck: in that window the server was saturated ({server:g} CPU) "
                f"while the load generator used {loadgen:g} of a CPU (that relay joins the "
                "tokens of one read into one event, cheaper to read than one chunk per token)"
            )
        else:
            verdict = "**too close: it may be the bottleneck**"
        out += [
            f"Load generator check: direct to the upstream it reads {_fmt(direct)} tokens/s, "
            f"{ratio:.1f}x the fastest relay under test ({_fmt(fastest)} tokens/s): {verdict}. "
            "The bare Python relay (rawpy), when present, is as fast as the rig itself: its "
            "figure is the rig's limit, a lower bound of its own. In each "
            "relay's window the server's CPU is what must be near 1.0. The upstream's own CPU "
            "is high for every relay: an unpaced upstream keeps filling the relay's kernel "
            "receive buffers (megabytes per connection on loopback) whatever the relay does, "
            "so it is busy but never starves the relay; the load generator needs only a few "
            "per cent of the CPU it shares with it.",
            "",
        ]
    for name, run in sat.items():
        w = run["window"]
        ours = (w.get("upstream_cpu_util") or 0) + (w.get("loadgen_cpu_util") or 0)
        # With Redis and PostgreSQL next to it, the server's CPU is shared: their total counts.
        server = w.get("total_cpu_util") or w.get("server_cpu_util") or 0
        if name != "direct" and ours >= 0.97 and server < 0.95:
            out += [f"**Warning**: for {name} the CPU of the upstream and the load generator was "
                    "full while the server's was not: that figure is a floor, not the server's "
                    "capacity.", ""]  # fmt: skip
    return out


def _starts(results: dict[str, Any]) -> list[str]:
    starts = results.get("starts")
    if not starts:
        return []
    floor = starts.get("direct")
    first = next(iter(starts.values()))
    rows = []
    for name, run in starts.items():
        rows.append([
            LABELS.get(name, name),
            _pair(run, "lone_ttft_ms", floor if name != "direct" else None),
            _fmt(run["starts_per_s"]), *_cpu_cells(run, "ms_per_start"),
            _pair(run, "burst_ttft_ms"), _fmt(run["errors"]),
        ])  # fmt: skip
    return [
        "## 3. Starting streams",
        "",
        f"`{first['model']}`: {first['lone']} streams one at a time (TTFT of a lone stream, "
        f"added against direct), then {first['burst']} with {first['in_flight']} in flight.",
        "",
        *_table(["peer", "lone TTFT p50 / p99 (added)", "starts/s", "server CPU ms/start",
                 "Redis ms/start", "PostgreSQL ms/start", "total ms/start",
                 f"TTFT p50 / p99, {first['in_flight']} in flight", "errors"], rows),
    ]  # fmt: skip


def _sessions(results: dict[str, Any]) -> list[str]:
    out: list[str] = []
    idle = results.get("idle")
    if idle:
        out += ["## 4. Idle streams and resume (ssechat)", ""]
        rows = [
            ["open streams", f"{_fmt(idle['streams'])} ({_fmt(idle['runs'])} runs each with "
             f"its stream + {_fmt(idle['followers'])} followers of those runs)"],
            ["all open", _fmt(idle["all_open"])],
            ["RSS per open stream", _fmt(idle["rss_kib_per_stream"], " KiB")],
            ["RSS per run with its stream / per extra follower",
             f"{_fmt(idle['rss_kib_per_run_with_stream'])} / {_fmt(idle['rss_kib_per_follower'])}"
             " KiB"],
            ["server RSS before / with all open",
             f"{_fmt(idle['rss_base_mib'])} / {_fmt(idle['rss_all_open_mib'])} MiB"],
            ["time to open the runs", _fmt(idle["runs_open_after_s"], " s")],
            ["heartbeat period; streams without one in "
             f"{_fmt(idle['hold_s'])} s", f"{_fmt(idle['heartbeat_s'])} s; "
             f"{_fmt(idle['streams_without_heartbeat'])}"],
            ["server CPU while idle; µs per heartbeat",
             f"{_fmt(idle['idle_server_cpu_util'])}; {_fmt(idle['cpu_us_per_heartbeat'])}"],
            ["errors (incl. streams that ended)", _fmt(idle["errors"])],
        ]  # fmt: skip
        out += _table(["idle", ""], rows)
    resume = results.get("resume")
    if resume:
        rows = [
            ["reconnects with Last-Event-ID", f"{_fmt(resume['reconnects'])} "
             f"(`{resume['model']}`, dropped after a random delta)"],
            ["gap-free and duplicate-free", f"{_fmt(resume['ok'])} "
             f"({'passed' if resume['passed'] else '**failed**'})"],
            ["missing / duplicate ids", f"{_fmt(resume['missing_ids'])} / "
             f"{_fmt(resume['duplicate_ids'])}"],
            ["resumed while the run was live", _fmt(resume["resumed_while_live"])],
            ["first token after reconnect p50 / p99",
             f"{_fmt(resume['resume_first_token_ms']['p50'])} / "
             f"{_fmt(resume['resume_first_token_ms']['p99'])} ms"],
        ]  # fmt: skip
        if resume.get("cancels"):
            cancel, failed = resume["cancel_ms"], resume["cancel_errors"]
            rows.append(
                [f"cancel of a live run, request to answer (run stopped, upstream closed), "
                 f"{_fmt(resume['cancels'])} runs, p50 / p99",
                 f"{_fmt(cancel['p50'])} / {_fmt(cancel['p99'])} ms"
                 + (f" ({_fmt(failed)} failed)" if failed else "")]
            )  # fmt: skip
        out += _table(["resume", ""], rows)
    return out


def _profile(results: dict[str, Any]) -> list[str]:
    profile = results.get("profile")
    if not profile or "skipped" in profile:
        return []
    out = ["## 8. Where ssechat's CPU goes (py-spy)", "",
           "Self time by component, and inclusive time of chosen functions, as a share of the "
           "samples and as µs per relayed token (per started stream for `starts`). Analysis "
           "and proposals: [PROFILE.md](PROFILE.md).", ""]  # fmt: skip
    for phase, data in profile.items():
        unit = data.get("unit", "token")
        out += [f"**{phase}** ({_fmt(data['streams'])} streams, "
                f"{_fmt(data['cpu_us_per_unit'])} µs/{unit}, server CPU "
                f"{_fmt(data['server_cpu_util'])}, {_fmt(data['samples'])} samples, "
                f"raw stacks: `{data['raw']}`)", ""]  # fmt: skip
        rows = [[r["name"], f"{r['share'] * 100:.1f} %", _fmt(r["us_per_unit"])]
                for r in data["self_by_component"]]  # fmt: skip
        out += _table(["self time in", "share", f"µs/{unit}"], rows)
        rows = [[f"`{r['name']}`", f"{r['share'] * 100:.1f} %", _fmt(r["us_per_unit"])]
                for r in data["inclusive_functions"] if r["share"]]  # fmt: skip
        out += _table(["inclusive", "share", f"µs/{unit}"], rows)
    return out


_TOOL_ROWS = (
    ("plain_sequential", "plain, one at a time"),
    ("tools_sequential", "with a tool step, one at a time"),
    ("plain_concurrent", "plain, {in_flight} in flight"),
    ("tools_concurrent", "with a tool step, {in_flight} in flight"),
)


def _tools(results: dict[str, Any]) -> list[str]:
    """A run with one MCP tool step against a plain run of the same answer length."""
    tools = results.get("tools")
    if not tools:
        return []
    rows = []
    for key, label in _TOOL_ROWS:
        phase = tools.get(key) or {}
        rows.append([
            label.format(in_flight=tools["in_flight"]), f"`{phase.get('model')}`",
            _fmt(phase.get("runs")), _fmt(phase.get("runs_per_s")), _pair(phase, "latency_ms"),
            _fmt(phase.get("server_cpu_ms_per_run")), _fmt(phase.get("mcp_cpu_ms_per_call")),
            _fmt(phase.get("errors")),
        ])  # fmt: skip
    step, checks = tools["tool_step"], tools["checks"]
    failed = f" **{_fmt(tools['errors'])} errors**: {', '.join(tools['error_examples'])}."
    return [
        f"## 5. Tools (MCP){_flag(tools)}",
        "",
        f"`{tools['tool']}` of the MCP test server (`tests/mcp_test_server.py`, "
        f"{tools['transport']}: a child process of the server, on its CPU), approval `always`. "
        f"A tool run: `{tools['tool_model']}` calls the tool, ssechat calls it through MCP, a "
        "second upstream request answers with its result. A plain run: the same "
        f"{_fmt(tools['answer_tokens'])}-token answer, no tools. Latency: from the request to "
        "`done`.",
        "",
        *_table(["runs", "model", "count", "runs/s", "latency p50 / p99 ms",
                 "server CPU ms/run", "MCP server CPU ms/call", "errors"], rows),
        f"**A tool step costs {_fmt(step['server_cpu_ms'])} ms of server CPU** (plus "
        f"{_fmt(step['mcp_cpu_ms_per_call'])} ms in the MCP server; {tools['in_flight']} in "
        f"flight) **and {_fmt(step['latency_ms_p50'])} ms of latency** (p50, one at a time; "
        f"+{_fmt(step['latency_ms_p99'])} ms at p99). Checked: the MCP server logged "
        f"{_fmt(checks['echo_calls_at_mcp_server'])} echo calls of "
        f"{_fmt(checks['echo_calls_expected'])} expected; a stored answer read back "
        f"{'holds' if checks['stored_call_ok'] else '**does not hold**'} its call and result."
        + (failed if tools["errors"] else ""),
        "",
    ]  # fmt: skip


def _disturbance(results: dict[str, Any]) -> list[str]:
    flagged: list[str] = []
    for name, peer in (_get(results, "paced", "peers") or {}).items():
        flagged += [f"paced {name} {lv['streams']}" for lv in peer["levels"] if lv.get("disturbed")]
    for name, run in (results.get("saturated") or {}).items():
        if run.get("disturbed"):
            flagged.append(f"saturated {name}")
    if (results.get("tools") or {}).get("disturbed"):
        flagged.append("tools")
    text = ", ".join(flagged) if flagged else "none"
    return [
        "## Disturbance",
        "",
        "For every window the harness measures how much of the server's CPU, and of the CPU "
        "the upstream and load generator share, went to other work (`/proc/stat`); above 5 % "
        "the measurement is taken again (up to 3 times within the first 10 minutes) and the "
        f"least disturbed is kept. Still disturbed (⚠): {text}.",
        "",
    ]


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# ssechat benchmark results",
        "",
        f"Written by `make bench` (`python -m bench.run`) on {results['started_at']}, "
        f"{results['mode']} run, {results.get('duration_s')} s. How it is measured: "
        "[README.md](README.md). Raw figures: `results.json`.",
        "",
        f"> {NOTE_SHARED}",
        "",
        *_machine(results),
        *_goals(results),
        *_shared(results),
        *_paced(results),
        *_saturated(results),
        *_starts(results),
        *_sessions(results),
        *_tools(results),
        *search_section(results),
        *import_section(results),
        *_profile(results),
        *_disturbance(results),
    ]
    return "\n".join(lines).rstrip() + "\n"
