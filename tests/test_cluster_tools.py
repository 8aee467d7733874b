"""A tool call across two ``ssechat serve`` processes on one PostgreSQL and one Redis.

A run started on A waits for approval of its tool call; a client on B sees the call (its
stream, and the conversation's page), approves it through B, and follows the rest there: the
decision, the result of the tool (run by A's own connection to the MCP test server), and the
answer that uses it. Denying through B, and a call that is not waiting, are answered there too.
A change to the MCP servers made through B reaches A (``tools-changed``).

Each process runs its own connection to the MCP test server (stdio), from the same
``SSECHAT_MCP_CONFIG`` file. Every wait is for an event; the deadlines only turn a hang into a
failure.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ssechat.fake_upstream import FakeUpstream
from ssechat.runs.tools import DENIED

from .cluster_support import (
    api_key,
    client_for,
    cluster_env,
    data,
    flush_redis,
    reading,
    serve_nodes,
    texts,
)
from .e2e.harness import eventually
from .mcp_support import marks, stdio_entry, wait_tools
from .server_process import ServerProcess
from .services import PostgresServer, RedisServer, running_postgres, running_redis

pytestmark = pytest.mark.real_server

DEADLINE = 30.0


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream.running_in_thread() as fake:
        yield fake


@pytest.fixture
def nodes(
    tmp_path: Path,
    pg: PostgresServer,
    redis_server: RedisServer,
    upstream: FakeUpstream,
    marks_dir: Path,
) -> Iterator[tuple[list[ServerProcess], str]]:
    database = pg.create_database("tools")
    flush_redis(redis_server)
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"test": stdio_entry(marks_dir)}}))
    env = cluster_env(
        pg,
        database,
        redis_server,
        upstream.base_url,
        SSECHAT_MODEL="fake-agent",
        SSECHAT_MCP_CONFIG=str(config),
        SSECHAT_RUN_LEASE="2",
    )
    try:
        with serve_nodes(env, tmp_path) as running:
            yield running, api_key(running[0].base_url)
    finally:
        pg.drop_database(database)


def start(client: httpx.Client, content: str) -> dict[str, Any]:
    created = client.post("/api/conversations", json={"tools": ["test/echo"]})
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    sent = client.post(f"/api/conversations/{cid}/messages", json={"content": content})
    assert sent.status_code == 202, sent.text
    started: dict[str, Any] = sent.json()
    return started


def test_a_call_waiting_on_a_is_approved_through_b(
    nodes: tuple[list[ServerProcess], str], marks_dir: Path
) -> None:
    (a, b), key = nodes
    with client_for(a, key) as on_a, client_for(b, key) as on_b:
        wait_tools(on_a, "test/echo")
        started = start(on_a, "from A")
        run_id = started["run_id"]
        with reading(on_b, started["events_url"]) as stream:
            call = data(stream.until("tool_call")[-1])
            assert (call["tool"], call["approval"]) == ("echo", "ask")
            # B's page shows the call waiting, as A's run holds it.
            page = on_b.get(f"/api/conversations/{started['conversation_id']}").json()
            answer = next(m for m in page["messages"] if m["id"] == started["message_id"])
            assert answer["tool_calls"][0]["id"] == call["id"]
            assert answer["tool_calls"][0]["decision"] is None
            assert marks(marks_dir, "echo-started") == []

            unknown = on_b.post(f"/api/runs/{run_id}/tool_calls/call_nope/approve")
            assert unknown.status_code == 404
            approved = on_b.post(f"/api/runs/{run_id}/tool_calls/{call['id']}/approve")
            assert approved.status_code == 200, approved.text
            assert approved.json() == {"id": call["id"], "decision": "approved"}
            again = on_b.post(f"/api/runs/{run_id}/tool_calls/{call['id']}/deny")
            assert again.status_code == 409

            events = stream.to_end()
        kinds = [e.type for e in events]
        assert kinds[:4] == ["run", "tool_call", "tool_decision", "tool_result"], kinds
        rest = events[2:]
        assert data(rest[1]) == {"id": call["id"], "content": "from A", "is_error": False}
        assert data(rest[-1])["status"] == "complete"
        assert texts(rest) == "Tool said: from A"
    assert len(marks(marks_dir, "echo-started")) == 1  # run once, by A's server


def test_a_deny_through_b_reaches_a_and_a_change_of_the_servers_too(
    nodes: tuple[list[ServerProcess], str], marks_dir: Path
) -> None:
    (a, b), key = nodes
    with client_for(a, key) as on_a, client_for(b, key) as on_b:
        wait_tools(on_a, "test/echo")
        started = start(on_a, "deny me")
        with reading(on_b, started["events_url"]) as stream:
            call = data(stream.until("tool_call")[-1])
            denied = on_b.post(f"/api/runs/{started['run_id']}/tool_calls/{call['id']}/deny")
            assert denied.json() == {"id": call["id"], "decision": "denied"}
            rest = stream.to_end()[2:]
        assert data(rest[1]) == {"id": call["id"], "content": DENIED, "is_error": True}
        assert marks(marks_dir, "echo-started") == []

        # Turned off through B: A stops offering its tools (and its process stops).
        off = on_b.patch("/api/admin/mcp/test", json={"enabled": False})
        assert off.status_code == 200, off.text
        eventually(
            lambda: not on_a.get("/api/tools").json()["tools"], "A drops the tools", DEADLINE
        )
        on = on_b.patch("/api/admin/mcp/test", json={"enabled": True})
        assert on.json()["enabled"] is True
        wait_tools(on_a, "test/echo")  # A offers them again


def test_kill_9_of_the_runs_process_while_a_call_waits_keeps_the_call(
    nodes: tuple[list[ServerProcess], str], marks_dir: Path
) -> None:
    (a, b), key = nodes
    with client_for(a, key) as on_a:
        wait_tools(on_a, "test/echo")
        started = start(on_a, "before the crash")
    with client_for(b, key) as on_b, reading(on_b, started["events_url"]) as stream:
        call = data(stream.until("tool_call")[-1])
        a.kill()  # no shutdown code runs on A
        events = stream.to_end()
        kinds = [e.type for e in events]
        assert kinds[-2:] == ["error", "done"], kinds
        assert data(events[-2])["code"] == "run_lost"
        assert data(events[-1])["status"] == "interrupted"
        # B's sweeper saved the answer with the call its log held: asked for, never decided.
        page = on_b.get(f"/api/conversations/{started['conversation_id']}").json()
    answer = next(m for m in page["messages"] if m["id"] == started["message_id"])
    assert answer["status"] == "interrupted"
    assert answer["tool_calls"] == [{**call, "decision": None, "result": None}]
    assert marks(marks_dir, "echo-started") == []
