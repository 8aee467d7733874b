"""The benchmark keeps working: ``python -m bench.run --quick`` across direct + ssechat.

A few seconds of tiny sizes through the real harness (fake upstream, ``ssechat serve``, the raw
load generator), then the shape of what it wrote. Timings are never asserted: this machine may
be busy; only that every stream completed, none failed, every resume was exact and every
tool run answered with its MCP tool's result, every search answer was right (the owner's hits
only, the expected hits for the words the fill counted) and every import brought every
conversation. A second, shorter run takes ssechat on PostgreSQL + Redis in two processes through
paced streams and starts, and checks that Redis's and PostgreSQL's CPU was read next to the
server's; a third runs search and import on PostgreSQL.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.services import postgres_binaries, redis_binary

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.real_server


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--peers=direct,ssechat", f"--out={out}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads((out / "results.json").read_text())
    return data, (out / "RESULTS.md").read_text()


def test_results_have_every_section(results: tuple[dict[str, Any], str]) -> None:
    data, markdown = results
    assert data["mode"] == "quick"
    for key in ("machine", "paced", "saturated", "starts", "idle", "resume", "tools", "goals"):
        assert key in data, key
    assert set(data["paced"]["peers"]) == {"direct", "ssechat"}
    assert set(data["saturated"]) == {"direct", "ssechat"}
    assert "cpu_model" in data["machine"]
    for heading in ("## Machine", "## 1. Paced", "## 2. Saturated", "## 3. Starting", "## 4. Idle"):
        assert heading in markdown


def test_paced_streams_all_complete(results: tuple[dict[str, Any], str]) -> None:
    data, _ = results
    for name, peer in data["paced"]["peers"].items():
        for level in peer["levels"]:
            assert level["errors"] == 0, (name, level["error_examples"])
            assert level["warmup_failures"] == 0, name
            assert level["tokens_received"] == level["streams"] * 20, name
            assert level["ttft_ms"]["p50"] is not None, name


def test_saturated_streams_flow_without_errors(results: tuple[dict[str, Any], str]) -> None:
    data, _ = results
    for name, run in data["saturated"].items():
        assert run["errors"] == 0, (name, run["error_examples"])
        assert run["warmup_failures"] == 0, name
        assert isinstance(run["window"], dict), name


def test_stream_starts_without_errors(results: tuple[dict[str, Any], str]) -> None:
    for name, run in results[0]["starts"].items():
        assert run["errors"] == 0, (name, run["error_examples"])
        assert run["lone_ttft_ms"]["p50"] is not None, name


def test_idle_streams_get_heartbeats(results: tuple[dict[str, Any], str]) -> None:
    idle = results[0]["idle"]
    assert isinstance(idle, dict)
    assert idle["all_open"] is True
    assert idle["errors"] == 0, idle["error_examples"]
    assert idle["streams_without_heartbeat"] == 0
    assert idle["rss_kib_per_stream"] is not None


def test_every_resume_is_gap_free_and_duplicate_free(
    results: tuple[dict[str, Any], str],
) -> None:
    resume = results[0]["resume"]
    assert isinstance(resume, dict)
    assert resume["passed"] is True, resume["error_examples"]
    assert resume["ok"] == resume["reconnects"] > 0
    assert resume["missing_ids"] == 0
    assert resume["duplicate_ids"] == 0


def test_every_cancel_stops_its_live_run(results: tuple[dict[str, Any], str]) -> None:
    # How fast is the full run's figure; here only that each cancel answered, the run's own
    # stream ended with done "stopped", and a time was taken for each.
    resume = results[0]["resume"]
    assert resume["cancels"] > 0
    assert resume["cancel_errors"] == 0, resume["cancel_error_examples"]
    assert resume["cancel_ms"]["p50"] is not None
    assert "| cancel of a live run" in results[1]


def test_tool_runs_call_the_mcp_server_and_answer_with_its_result(
    results: tuple[dict[str, Any], str],
) -> None:
    # The figures are the full run's; here only that every tool run's answer used the tool's
    # result, the MCP server saw each call, and each phase has its numbers.
    tools = results[0]["tools"]
    assert tools["errors"] == 0, tools["error_examples"]
    checks = tools["checks"]
    assert checks["echo_calls_at_mcp_server"] == checks["echo_calls_expected"] > 0
    assert checks["stored_call_ok"] is True
    assert checks["mcp_server_restarted"] is False
    for phase in ("plain_sequential", "tools_sequential", "plain_concurrent", "tools_concurrent"):
        assert tools[phase]["runs"] > 0, phase
        assert tools[phase]["latency_ms"]["p50"] is not None, phase
    assert tools["tools_concurrent"]["mcp_cpu_ms_per_call"] is not None
    assert "## 5. Tools (MCP)" in results[1]


def _search_checked(search: dict[str, Any]) -> None:
    assert search["errors"] == 0, search["error_examples"]
    fill = search["fill"]
    assert fill["messages"] == fill["conversations"] * search["sizes"]["messages"] > 0
    kinds = search["kinds"]
    assert set(kinds) == {"rare word", "common word", "two words", "phrase", "prefix",
                          "title word", "no match"}  # fmt: skip
    for kind in kinds.values():
        assert kind["requests"] > 0
        assert kind["p95_ms"] is not None
    # Each answer was checked against the fill (see bench.search); these two are exact.
    assert kinds["no match"]["hits_on_first_page"] == 0
    assert kinds["title word"]["hits_on_first_page"] == min(20, fill["title_word_titles"]) > 0
    assert search["overall"]["requests"] == sum(k["requests"] for k in kinds.values())


def _imports_checked(found: dict[str, Any], peer: str) -> None:
    assert found["errors"] == 0, [r["error_examples"] for r in found["runs"].values()]
    for form in ("json", "zip"):
        run = found["runs"][f"{peer} {form}"]
        assert run["errors"] == 0, run["error_examples"]
        assert run["bytes"] == found["files"][form]["bytes"] > 0
        assert run["seconds"] is not None
        assert run["rss_before_mib"] is not None


def test_search_answers_every_query_kind(results: tuple[dict[str, Any], str]) -> None:
    _search_checked(results[0]["search"]["ssechat"])
    assert "## 6. Search" in results[1]
    assert "search p95, worst query kind (SQLite)" in results[1]


def test_import_brings_every_conversation(results: tuple[dict[str, Any], str]) -> None:
    _imports_checked(results[0]["import"], "ssechat")
    assert "## 7. Import of a big export" in results[1]


# --- ssechat on PostgreSQL + Redis, two processes ---------------------------------------------


@pytest.fixture(scope="module")
def shared_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    # About 12 s more: a PostgreSQL cluster and a redis-server started for it, then two servers
    # of two processes each (paced, then starts).
    if postgres_binaries() is None or redis_binary() is None:
        pytest.skip("PostgreSQL or Redis is not installed (make test installs them)")
    out = tmp_path_factory.mktemp("bench-shared")
    argv = [sys.executable, "-m", "bench.run", "--quick", "--peers=ssechat-pg2"]
    done = subprocess.run(
        [*argv, "--scenarios=paced,starts", f"--out={out}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data: dict[str, Any] = json.loads((out / "results.json").read_text())
    return data


def test_two_processes_on_postgres_and_redis_stream_and_start(
    shared_results: dict[str, Any],
) -> None:
    (level,) = shared_results["paced"]["peers"]["ssechat-pg2"]["levels"]
    assert level["errors"] == 0, level["error_examples"]
    assert level["warmup_failures"] == 0
    assert level["tokens_received"] == level["streams"] * 20
    start = shared_results["starts"]["ssechat-pg2"]
    assert start["errors"] == 0, start["error_examples"]
    # Redis's and PostgreSQL's CPU was read (their processes were found), next to the server's.
    for key in ("cpu_ms_per_start", "redis_ms_per_start", "pg_ms_per_start", "total_ms_per_start"):
        assert start[key] is not None, key
    assert start["total_ms_per_start"] >= start["cpu_ms_per_start"] > 0


# --- search and import on PostgreSQL -----------------------------------------------------------


def test_search_and_import_on_postgres(tmp_path: Path) -> None:
    # About 10 s: a PostgreSQL cluster and a redis-server, a server per measurement.
    if postgres_binaries() is None or redis_binary() is None:
        pytest.skip("PostgreSQL or Redis is not installed (make test installs them)")
    argv = [sys.executable, "-m", "bench.run", "--quick", "--peers=ssechat-pg"]
    done = subprocess.run(
        [*argv, "--scenarios=search,import", f"--out={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads((tmp_path / "results.json").read_text())
    _search_checked(data["search"]["ssechat-pg"])
    _imports_checked(data["import"], "ssechat-pg")
