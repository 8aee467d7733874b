"""bench.report: how a benchmark's results become its goals and ``RESULTS.md``.

The report generator is code that can regress: it picks the level the goals are read at, takes
ssechat's figures against going direct at that same level, judges each goal against its
target, and flags what other work disturbed. These tests feed it small made-up results whose
right answers are worked out by hand. They never read the committed ``bench/results.json`` or
``RESULTS.md``: those are a run's output, refreshed with each full run, and comparing them with
each other or with the README would test nothing that code does.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from bench import report
from bench.peers import LABELS
from bench.tools import _tool_step


def window(cpu: float | None = 30.0, rss: float | None = 12.0, **extra: Any) -> dict[str, Any]:
    return {
        "cpu_us_per_token": cpu,
        "server_cpu_util": 0.5,
        "upstream_cpu_util": 0.1,
        "loadgen_cpu_util": 0.1,
        "rss_kib_per_stream": rss,
        **extra,
    }


def level(
    streams: int,
    *,
    ttft: tuple[float, float] = (50.0, 60.0),
    gap99: float = 51.0,
    held: bool = True,
    disturbed: bool = False,
    **win: Any,
) -> dict[str, Any]:
    return {
        "streams": streams,
        "held": held,
        "errors": 0,
        "behind": 0 if held else 3,
        "ttft_ms": {"p50": ttft[0], "p99": ttft[1]},
        "gap_ms": {"p50": 50.0, "p99": gap99},
        "max_lag_ms": {"p99": 2.0},
        "max_drift_ms": {"p99": 1.0},
        "window": window(**win),
        "disturbed": disturbed,
    }


def saturated(tokens_per_s: float, cpu: float | None, server: float | None) -> dict[str, Any]:
    return {
        "model": "fake-tokens-20000",
        "streams": 100,
        "seconds": 4.0,
        "errors": 0,
        "window": window(
            cpu,
            None,
            tokens_per_s=tokens_per_s,
            server_cpu_util=server,
            server_sys_share=0.05,
            mean_active_streams=100.0,
        ),
        "disturbed": False,
    }


def starts(lone_p50: float) -> dict[str, Any]:
    return {
        "model": "fake-tokens-1",
        "lone": 20,
        "burst": 500,
        "in_flight": 32,
        "lone_ttft_ms": {"p50": lone_p50, "p99": lone_p50 + 2},
        "burst_ttft_ms": {"p50": 40.0, "p99": 50.0},
        "starts_per_s": 600.0,
        "cpu_ms_per_start": 1.5,
        "errors": 0,
    }


def tool_phase(
    model: str,
    runs: int,
    in_flight: int,
    latency: tuple[float, float],
    cpu: float,
    mcp: float | None,
) -> dict[str, Any]:
    return {
        "model": model,
        "runs": runs,
        "in_flight": in_flight,
        "runs_per_s": 100.0,
        "latency_ms": {"p50": latency[0], "p99": latency[1]},
        "server_cpu_ms_per_run": cpu,
        "mcp_cpu_ms_per_call": mcp,
        "errors": 0,
        "error_examples": [],
    }


def tools_result() -> dict[str, Any]:
    """A tool run costs 1.5 ms of server CPU more in flight (4.0 - 2.5), 3.25 ms more latency
    one at a time (5.0 - 1.75; p99 9.0 - 2.5)."""
    phases = {
        "plain_sequential": tool_phase("fake-tokens-6", 300, 1, (1.75, 2.5), 2.0, None),
        "tools_sequential": tool_phase("fake-agent", 300, 1, (5.0, 9.0), 3.75, 1.25),
        "plain_concurrent": tool_phase("fake-tokens-6", 1000, 20, (10.0, 20.0), 2.5, None),
        "tools_concurrent": tool_phase("fake-agent", 1000, 20, (30.0, 60.0), 4.0, 1.5),
    }
    return {
        "tool": "test/echo",
        "transport": "stdio",
        "tool_model": "fake-agent",
        "plain_model": "fake-tokens-6",
        "answer_tokens": 6,
        "runs": 300,
        "concurrent": 1000,
        "in_flight": 20,
        **phases,
        "tool_step": _tool_step(phases),
        "checks": {
            "echo_calls_at_mcp_server": 1304,
            "echo_calls_expected": 1304,
            "stored_call_ok": True,
            "mcp_server_restarted": False,
        },
        "errors": 0,
        "error_examples": [],
        "disturbed": False,
    }


def made_up() -> dict[str, Any]:
    """Two peers; ssechat held 1 000 streams (not 2 000), and direct differs at each level."""
    return {
        "mode": "full",
        "started_at": "2026-01-01 00:00:00 +0000",
        "duration_s": 600,
        "upstream": "ssechat.fake_upstream on uvloop (bench.upstream)",
        "machine": {
            "cpu_model": "Test CPU",
            "cpus": 2,
            "memory_gib": 8,
            "os": "Linux",
            "kernel": "6",
            "python": "3.11",
            "node": "v20",
            "pinning": "none",
            "nofile_limit": {"soft": 1024, "hard": 4096},
            "loadavg_at_start": ["0.1", "0.1", "0.1"],
            "loadavg_at_end": ["0.2", "0.2", "0.2"],
        },
        "paced": {
            "model": "fake-tokens-200@20",
            "behind_limit_s": 0.5,
            "peers": {
                "direct": {
                    "max_held": 2000,
                    "levels": [
                        level(500, ttft=(51.0, 53.0), gap99=50.5, cpu=None, rss=None),
                        level(1000, ttft=(52.0, 55.0), gap99=51.0, cpu=None, rss=None),
                        level(2000, ttft=(58.0, 90.0), gap99=60.0, cpu=None, rss=None),
                    ],
                },
                "ssechat": {
                    "max_held": 1000,
                    "levels": [
                        level(500, ttft=(52.0, 56.0), gap99=51.5, cpu=35.0, rss=15.0),
                        level(1000, ttft=(52.5, 59.5), gap99=52.5, cpu=38.5, rss=18.0),
                        level(2000, ttft=(300.0, 900.0), gap99=200.0, cpu=45.0, held=False),
                    ],
                },
            },
        },
        "saturated": {
            "direct": saturated(300_000.0, None, None),
            "ssechat": saturated(120_000.0, 8.0, 1.0),
        },
        "starts": {"direct": starts(1.0), "ssechat": starts(1.5)},
        "idle": {
            "streams": 10_000,
            "runs": 4000,
            "followers": 6000,
            "all_open": True,
            "rss_kib_per_stream": 19.5,
            "rss_kib_per_run_with_stream": 25.0,
            "rss_kib_per_follower": 15.0,
            "rss_base_mib": 70.0,
            "rss_all_open_mib": 260.0,
            "runs_open_after_s": 8.0,
            "hold_s": 6.5,
            "heartbeat_s": 3.0,
            "streams_without_heartbeat": 0,
            "idle_server_cpu_util": 0.1,
            "cpu_us_per_heartbeat": 30.0,
            "errors": 0,
        },
        "resume": {
            "model": "fake-tokens-60@30",
            "reconnects": 1000,
            "ok": 1000,
            "passed": True,
            "missing_ids": 0,
            "duplicate_ids": 0,
            "resumed_while_live": 1000,
            "resume_first_token_ms": {"p50": 90.0, "p99": 300.0},
            "cancels": 200,
            "cancel_ms": {"p50": 2.5, "p99": 9.25},
            "cancel_errors": 3,
        },
        "tools": tools_result(),
        "profile": {
            "paced": {
                "unit": "token",
                "streams": 1000,
                "cpu_us_per_unit": 38.5,
                "server_cpu_util": 0.77,
                "samples": 900,
                "raw": "profile/ssechat-paced-1000.txt",
                "self_by_component": [
                    {"name": "ssechat.runs.log", "share": 0.25, "us_per_unit": 9.6}
                ],
                "inclusive_functions": [
                    {"name": "read_deltas", "share": 0.125, "us_per_unit": 4.8},
                    {"name": "never_sampled", "share": 0.0, "us_per_unit": 0.0},
                ],
            }
        },
    }


def goals_of(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {goal["goal"]: goal for goal in report.goals(results)}


def goals_row(markdown: str, name: str) -> str:
    return next(line for line in markdown.splitlines() if line.startswith(f"| {name} |"))


# --- goals ----------------------------------------------------------------------------------


def test_goals_read_ssechat_at_the_level_it_held_against_direct_at_that_level() -> None:
    goals = goals_of(made_up())
    assert goals["paced streams held, none behind"]["measured"] == 1000
    at_1000 = "paced, 1000 streams"
    assert goals["CPU per relayed token, paced"] == {
        "goal": "CPU per relayed token, paced",
        "target": "<= 40 µs",
        "measured": 38.5,
        "where": at_1000,
        "met": True,
    }
    # 52.5 - 52.0, 59.5 - 55.0, 52.5 - 51.0: never against direct at 500 or 2 000 streams.
    assert goals["added TTFT p50"]["measured"] == 0.5
    assert goals["added TTFT p99"]["measured"] == 4.5
    assert goals["added inter-token gap p99"]["measured"] == 1.5
    assert goals["RSS per open stream, paced"]["measured"] == 18.0
    assert {goals[n]["where"] for n in ("added TTFT p50", "RSS per open stream, paced")} == {
        at_1000
    }
    assert goals["CPU per relayed token, saturated"]["measured"] == 8.0
    assert goals["relayed tokens/s, saturated"]["measured"] == 120_000.0
    assert goals["RSS per open stream, idle"]["measured"] == 19.5
    assert goals["reconnects gap-free and duplicate-free"]["measured"] == "1000/1000"
    assert all(goal["met"] is True for goal in goals.values()), goals


@pytest.mark.parametrize(
    ("path", "value", "goal", "met"),
    [
        (("paced", "peers", "ssechat", "max_held"), 999, "paced streams held, none behind", False),
        (("paced", "peers", "ssechat", "levels", 1, "window", "cpu_us_per_token"), 40.0,
         "CPU per relayed token, paced", True),
        (("paced", "peers", "ssechat", "levels", 1, "window", "cpu_us_per_token"), 40.1,
         "CPU per relayed token, paced", False),
        (("paced", "peers", "ssechat", "levels", 1, "ttft_ms", "p50"), 53.0, "added TTFT p50",
         True),
        (("paced", "peers", "ssechat", "levels", 1, "ttft_ms", "p50"), 53.1, "added TTFT p50",
         False),
        (("saturated", "ssechat", "window", "tokens_per_s"), 99_999.0,
         "relayed tokens/s, saturated", False),
        (("idle", "rss_kib_per_stream"), 20.5, "RSS per open stream, idle", False),
        (("resume", "passed"), False, "reconnects gap-free and duplicate-free", False),
    ],
)  # fmt: skip
def test_each_goal_is_judged_against_its_target(
    path: tuple[Any, ...], value: Any, goal: str, met: bool
) -> None:
    results = made_up()
    holder = results
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = value
    assert goals_of(results)[goal]["met"] is met


def test_with_nothing_held_the_goals_read_the_lowest_level() -> None:
    results = made_up()
    results["paced"]["peers"]["ssechat"]["max_held"] = 0
    goals = goals_of(results)
    held = goals["paced streams held, none behind"]
    assert (held["measured"], held["met"]) == (0, False)
    assert goals["CPU per relayed token, paced"]["measured"] == 35.0
    assert goals["CPU per relayed token, paced"]["where"] == "paced, 500 streams"
    assert goals["added TTFT p50"]["measured"] == 1.0  # 52.0 - 51.0, both at 500 streams


def test_a_scenario_not_run_has_no_figure_and_no_verdict() -> None:
    results = made_up()
    for section in ("saturated", "idle", "resume"):
        del results[section]
    goals = goals_of(results)
    for name in (
        "CPU per relayed token, saturated",
        "relayed tokens/s, saturated",
        "RSS per open stream, idle",
        "reconnects gap-free and duplicate-free",
    ):
        assert (goals[name]["measured"], goals[name]["met"]) == (None, None), name
    results["goals"] = report.goals(results)
    markdown = report.markdown(results)
    assert goals_row(markdown, "relayed tokens/s, saturated").endswith("| – |  | – |")
    assert "## 2. Saturated" not in markdown
    assert "## 4. Idle" not in markdown


# --- RESULTS.md -------------------------------------------------------------------------------


def test_every_section_and_every_peer_is_in_the_report() -> None:
    results = made_up()
    results["goals"] = report.goals(results)
    markdown = report.markdown(results)
    sections = [line for line in markdown.splitlines() if line.startswith("## ")]
    assert sections == [
        "## Machine",
        "## ssechat against its goals (server on one CPU)",
        "## 1. Paced: `fake-tokens-200@20` per stream",
        "## 2. Saturated: tokens as fast as the upstream sends them",
        "## 3. Starting streams",
        "## 4. Idle streams and resume (ssechat)",
        "## 5. Tools (MCP)",
        "## 8. Where ssechat's CPU goes (py-spy)",
        "## Disturbance",
    ]
    cancel_row = next(line for line in markdown.splitlines() if "| cancel of a live run" in line)
    assert cancel_row.endswith("200 runs, p50 / p99 | 2.5 / 9.25 ms (3 failed) |")
    for section in markdown.split("\n## ")[3:6]:  # paced, saturated, starts
        for peer in ("direct", "ssechat"):
            assert f"| {LABELS[peer]} |" in section, (peer, section[:40])
    assert "| **1,000** (of 2,000 tried) |" in markdown
    # Added TTFT against direct at the level held: (+0.5 / +4.5).
    assert "52.5 / 59.5 (+0.5 / +4.5)" in markdown
    assert "| `read_deltas` | 12.5 % | 4.8 |" in markdown
    assert "never_sampled" not in markdown  # functions with no samples are left out
    assert "Still disturbed (⚠): none." in markdown


def test_a_missed_goal_is_bold_and_a_disturbed_measurement_is_flagged() -> None:
    results = made_up()
    ssechat = results["paced"]["peers"]["ssechat"]
    ssechat["levels"][1]["window"]["cpu_us_per_token"] = 41.0
    ssechat["levels"][1]["disturbed"] = True
    results["saturated"]["direct"]["disturbed"] = True
    results["goals"] = report.goals(results)
    markdown = report.markdown(results)
    assert goals_row(markdown, "CPU per relayed token, paced").endswith("| **not met** |")
    assert goals_row(markdown, "CPU per relayed token, saturated").endswith("| met |")
    assert f"| {LABELS['ssechat']} ⚠ |" in markdown
    assert "| ssechat ⚠ | 1,000 |" in markdown  # its row in the table of every level
    assert "| ssechat | 500 |" in markdown
    assert "Still disturbed (⚠): paced ssechat 1000, saturated direct." in markdown


@pytest.mark.parametrize(
    ("direct", "server", "loadgen", "verdict"),
    [
        (300_000.0, 0.5, 0.1, "2.5x the fastest relay under test (120,000 tokens/s): not the "
         "bottleneck."),
        (150_000.0, 1.0, 0.1, "1.2x the fastest relay under test (120,000 tokens/s): not the "
         "bottleneck: in that window the server was saturated (1 CPU)"),
        (150_000.0, 0.9, 0.1, "**too close: it may be the bottleneck**"),
        (150_000.0, 1.0, 0.5, "**too close: it may be the bottleneck**"),
    ],
)  # fmt: skip
def test_the_load_generator_check(
    direct: float, server: float, loadgen: float, verdict: str
) -> None:
    results = made_up()
    sat = results["saturated"]
    sat["direct"]["window"]["tokens_per_s"] = direct
    sat["ssechat"]["window"] |= {"server_cpu_util": server, "loadgen_cpu_util": loadgen}
    # The bare Python relay is a floor of the rig, not a relay under test: never "the fastest".
    sat["rawpy"] = copy.deepcopy(sat["ssechat"])
    sat["rawpy"]["window"]["tokens_per_s"] = 1_000_000.0
    markdown = report.markdown(results)
    assert verdict in markdown


def test_a_starved_server_figure_is_called_a_floor() -> None:
    results = made_up()
    results["saturated"]["ssechat"]["window"] |= {
        "server_cpu_util": 0.6,
        "upstream_cpu_util": 0.9,
        "loadgen_cpu_util": 0.1,
    }
    markdown = report.markdown(results)
    assert "**Warning**: for ssechat the CPU of the upstream and the load generator was full" in (
        markdown
    )
    assert "**Warning**: for direct" not in markdown


# --- ssechat on PostgreSQL + Redis ------------------------------------------------------------


def with_shared_peers() -> dict[str, Any]:
    """made_up() plus ssechat-pg (held 500 of 1 000) and ssechat-pg2 (held only 500 too)."""
    results = made_up()
    paced = results["paced"]["peers"]
    services = {"redis_cpu_us_per_token": 20.0, "pg_cpu_us_per_token": 5.5}
    for name, server in (("ssechat-pg", 100.0), ("ssechat-pg2", 120.0)):
        levels = [
            level(500, cpu=server, rss=30.0, total_cpu_us_per_token=server + 25.5, **services),
            level(1000, held=False, cpu=server + 10, total_cpu_us_per_token=1.0, **services),
        ]
        paced[name] = {"max_held": 500, "levels": levels}
        results["saturated"][name] = saturated(250_000.0, 4.0, 1.0)
        results["saturated"][name]["window"] |= {
            "redis_cpu_us_per_token": 0.1,
            "pg_cpu_us_per_token": 0.2,
            "total_cpu_us_per_token": 4.3,
        }
        results["starts"][name] = starts(4.0) | {
            "cpu_ms_per_start": 3.0,
            "redis_ms_per_start": 0.25,
            "pg_ms_per_start": 0.5,
            "total_ms_per_start": 3.75,
        }
    results["goals"] = report.goals(results)
    return results


def row(markdown: str, section: str, label: str) -> list[str]:
    """The cells of ``label``'s row in the section whose heading starts with ``section``."""
    part = markdown.split(f"\n## {section}", 1)[1].split("\n## ", 1)[0]
    line = next(x for x in part.splitlines() if x.startswith(f"| {label} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_the_shared_rows_show_redis_and_postgres_next_to_the_server() -> None:
    markdown = report.markdown(with_shared_peers())
    # Read at 500 streams, the most every row held (ssechat held 1 000, the others 500).
    assert "at 500 streams (the most streams every row held" in markdown
    pg = row(markdown, "ssechat on PostgreSQL", LABELS["ssechat-pg"])
    assert pg[1:6] == ["500", "100", "20", "5.5", "125.5"]
    assert pg[6:9] == ["4.3 (250,000/s)", "600", "3.75"]
    embedded = row(markdown, "ssechat on PostgreSQL", LABELS["ssechat"])
    assert embedded[1:6] == ["1,000", "35", "–", "–", "35"]  # its total is the server's
    paced = row(markdown, "1. Paced", LABELS["ssechat-pg2"])
    assert paced[5:9] == ["120", "20", "5.5", "145.5"]
    assert row(markdown, "2. Saturated", LABELS["ssechat-pg"])[2:6] == ["4", "0.1", "0.2", "4.3"]
    assert row(markdown, "3. Starting", LABELS["ssechat-pg"])[3:7] == ["3", "0.25", "0.5", "3.75"]
    assert row(markdown, "3. Starting", LABELS["ssechat"])[3:7] == ["1.5", "–", "–", "1.5"]
    every_level = markdown.split("Every level tried", 1)[1].split("\n## ", 1)[0]
    assert "| ssechat-pg2 | 1,000 | no |" in every_level
    assert "| 130 | 20 + 5.5 |" in every_level


def test_the_shared_section_is_left_out_without_the_shared_peers() -> None:
    results = made_up()
    results["goals"] = report.goals(results)
    assert "## ssechat on PostgreSQL" not in report.markdown(results)


def test_goals_stay_the_embedded_rows() -> None:
    # The goals are ssechat's as it ships (SQLite, one process): the shared rows never feed them.
    assert report.goals(with_shared_peers()) == report.goals(made_up())


def test_a_starved_shared_server_counts_redis_and_postgres_as_its_cpu() -> None:
    results = with_shared_peers()
    # The server process itself had 0.7 of the CPU, Redis and PostgreSQL the rest: not starved.
    results["saturated"]["ssechat-pg"]["window"] |= {
        "server_cpu_util": 0.7,
        "total_cpu_util": 0.98,
        "upstream_cpu_util": 0.9,
        "loadgen_cpu_util": 0.1,
    }
    assert "**Warning**: for ssechat-pg " not in report.markdown(results)
    results["saturated"]["ssechat-pg"]["window"]["total_cpu_util"] = 0.8
    assert "**Warning**: for ssechat-pg " in report.markdown(results)


# --- tools (MCP) ------------------------------------------------------------------------------


def test_a_tool_step_is_tool_runs_minus_plain_runs() -> None:
    # CPU from the phases in flight (the steadier figure), latency from those one at a time.
    assert tools_result()["tool_step"] == {
        "server_cpu_ms": 1.5,
        "mcp_cpu_ms_per_call": 1.5,
        "latency_ms_p50": 3.25,
        "latency_ms_p99": 6.5,
    }


def test_the_tools_section_shows_each_phase_and_what_a_tool_step_costs() -> None:
    markdown = report.markdown(made_up())
    section = markdown.split("## 5. Tools (MCP)\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")][2:]
    assert rows == [
        "| plain, one at a time | `fake-tokens-6` | 300 | 100 | 1.75 / 2.5 | 2 | – | 0 |",
        "| with a tool step, one at a time | `fake-agent` | 300 | 100 | 5 / 9 | 3.75 | 1.25 | 0 |",
        "| plain, 20 in flight | `fake-tokens-6` | 1,000 | 100 | 10 / 20 | 2.5 | – | 0 |",
        "| with a tool step, 20 in flight | `fake-agent` | 1,000 | 100 | 30 / 60 | 4 | 1.5 | 0 |",
    ]
    assert "**A tool step costs 1.5 ms of server CPU** (plus 1.5 ms in the MCP server" in section
    assert "**and 3.25 ms of latency** (p50, one at a time; +6.5 ms at p99)" in section
    assert "logged 1,304 echo calls of 1,304 expected; a stored answer read back holds" in section
    assert "errors**" not in section


def test_a_failed_or_disturbed_tools_measurement_says_so() -> None:
    results = made_up()
    tools = results["tools"]
    tools["disturbed"] = True
    tools["errors"] = 2
    tools["error_examples"] = ["the MCP server saw 1303 echo calls, not 1304"]
    tools["checks"]["stored_call_ok"] = False
    markdown = report.markdown(results)
    assert "## 5. Tools (MCP) ⚠" in markdown
    assert (
        "**does not hold** its call and result. **2 errors**: the MCP server saw 1303" in markdown
    )
    assert "Still disturbed (⚠): tools." in markdown


def test_the_tools_section_is_left_out_when_not_run() -> None:
    results = made_up()
    del results["tools"]
    assert "Tools (MCP)" not in report.markdown(results)
