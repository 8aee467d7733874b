"""Tools through the API, with real parts: a real uvicorn, the fake upstream's scripted tool
turns (``fake-agent``), and the real MCP test server (``tests/mcp_test_server.py``) over stdio,
configured by an ``SSECHAT_MCP_CONFIG`` file.

What they show: a call that waits for Approve (also across a reload: the conversation and a
stream from the start show it waiting), runs, and whose result the answer uses; Deny; a server
that crashes mid-call gives an error result and the answer goes on; cancel during a slow tool
stops the call at the server and ends the run as ``stopped``; the next turn's context holds
the calls and results in order, as the fake upstream received it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ssechat.api import create_app
from ssechat.config import Settings
from ssechat.fake_upstream import FakeUpstream
from ssechat.runs.tools import DENIED

from .conftest import RealServer
from .mcp_support import marks, stdio_entry, wait_for_mark, wait_tools
from .test_api_live import Follower as LiveFollower

pytestmark = [pytest.mark.real_server, pytest.mark.anyio]

AGENT = "fake-agent"
DEADLINE = 20.0


class Follower(LiveFollower):
    """A run's event stream over a real connection, read event by event (test_api_live's),
    with the data of its events at hand."""

    def until_type(self, kind: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.until(lambda e: e.type == kind).data)
        return data

    def data(self, kind: str) -> list[dict[str, Any]]:
        return [json.loads(e.data) for e in self.events if e.type == kind]


@dataclass
class Stack:
    upstream: FakeUpstream
    server: RealServer
    client: httpx.Client
    marks_dir: Path

    def wait_tools(self, *keys: str) -> None:
        """Await that the MCP server is up and lists ``keys`` (it starts in the background)."""
        wait_tools(self.client, *keys)

    def conversation(self, *tools: str) -> str:
        created = self.client.post("/api/conversations", json={"model": AGENT, "tools": tools})
        assert created.status_code == 201, created.text
        assert created.json()["tools"] == list(tools)
        return str(created.json()["id"])

    def start(self, conversation_id: str, content: str, **body: Any) -> dict[str, Any]:
        sent = self.client.post(
            f"/api/conversations/{conversation_id}/messages", json={"content": content, **body}
        )
        assert sent.status_code == 202, sent.text
        started: dict[str, Any] = sent.json()
        return started

    def follow(self, run_id: str) -> Iterator[Follower]:
        with self.client.stream("GET", f"/api/runs/{run_id}/events") as response:
            assert response.status_code == 200
            yield Follower(response)

    def requests(self) -> list[dict[str, Any]]:
        return [r.body for r in self.upstream.requests if r.path.endswith("/chat/completions")]

    def always(self, tool: str) -> None:
        patched = self.client.patch("/api/admin/mcp/test", json={"approvals": {tool: "always"}})
        assert patched.status_code == 200, patched.text


@pytest.fixture
def stack(tmp_path: Path, real_server: Callable[..., RealServer]) -> Iterator[Stack]:
    marks_dir = tmp_path / "marks"
    marks_dir.mkdir()
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"test": stdio_entry(marks_dir)}}))
    with FakeUpstream.running_in_thread() as upstream:
        settings = Settings(
            database_url=str(tmp_path / "chat.db"),
            openai_base_url=upstream.base_url,
            openai_api_key="sk-test-secret-key-0123456789",
            model=AGENT,
            web_dir=str(tmp_path / "no-web"),
            upstream_max_retries=0,
            auth="off",  # accounts: the matrix (tests/test_auth_matrix.py) covers these routes
            mcp_config=str(config),
        )
        server = real_server(create_app(settings), lifespan="on")
        with httpx.Client(base_url=server.base_url, timeout=DEADLINE) as client:
            yield Stack(upstream, server, client, marks_dir)


def follow(stack: Stack, run_id: str) -> Iterator[Follower]:
    return stack.follow(run_id)


def test_approve_runs_the_tool_and_the_answer_uses_its_result(stack: Stack) -> None:
    stack.wait_tools("test/echo")
    conversation_id = stack.conversation("test/echo")
    started = stack.start(conversation_id, "hello tools")
    run_id = started["run_id"]
    for events in stack.follow(run_id):
        call = events.until_type("tool_call")
        assert call["name"] == "test__echo"
        assert (call["server"], call["tool"], call["approval"]) == ("test", "echo", "ask")
        assert json.loads(call["arguments"]) == {"text": "hello tools"}

        # A reload while it waits: the page and a stream from the start show the same call.
        detail = stack.client.get(f"/api/conversations/{conversation_id}").json()
        answer = next(m for m in detail["messages"] if m["id"] == started["message_id"])
        assert answer["status"] == "streaming"
        assert answer["run_id"] == run_id
        assert [c["id"] for c in answer["tool_calls"]] == [call["id"]]
        assert answer["tool_calls"][0]["decision"] is None
        for again in stack.follow(run_id):
            assert again.until_type("tool_call") == call
            break
        assert marks(stack.marks_dir, "echo-started") == []  # nothing ran yet

        approved = stack.client.post(f"/api/runs/{run_id}/tool_calls/{call['id']}/approve")
        assert approved.status_code == 200, approved.text
        assert approved.json() == {"id": call["id"], "decision": "approved"}
        twice = stack.client.post(f"/api/runs/{run_id}/tool_calls/{call['id']}/deny")
        assert twice.status_code == 409

        assert events.until_type("tool_decision") == {"id": call["id"], "decision": "approved"}
        result = events.until_type("tool_result")
        assert result == {"id": call["id"], "content": "hello tools", "is_error": False}
        done = events.until_type("done")
        assert done["status"] == "complete"
        assert events.text == "Tool said: hello tools"

    saved = stack.client.get(f"/api/conversations/{conversation_id}").json()
    answer = next(m for m in saved["messages"] if m["id"] == started["message_id"])
    assert answer["content"] == "Tool said: hello tools"
    assert answer["tool_calls"] == [
        {**call, "decision": "approved", "result": {"content": "hello tools", "is_error": False}}
    ]

    # The next turn (answered by the echo model): its context holds the call and its result,
    # in the order the upstream expects.
    nxt = stack.start(conversation_id, "thanks", model="fake-echo")
    for events in stack.follow(nxt["run_id"]):
        events.until_type("done")
    messages = stack.requests()[-1]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant", "user"]
    assert messages[1]["tool_calls"] == [
        {
            "id": call["id"],
            "type": "function",
            "function": {"name": "test__echo", "arguments": call["arguments"]},
        }
    ]
    assert messages[1]["content"] in (None, "")
    assert messages[2] == {"role": "tool", "tool_call_id": call["id"], "content": "hello tools"}
    assert messages[3] == {"role": "assistant", "content": "Tool said: hello tools"}
    # Every request of the conversation offers its tool, in OpenAI's format.
    for body in stack.requests():
        (tool,) = body["tools"]
        assert tool["type"] == "function"
        assert tool["function"]["name"] == "test__echo"
        assert tool["function"]["parameters"]["properties"]["text"]["type"] == "string"


def test_deny_tells_the_model_and_the_tool_never_runs(stack: Stack) -> None:
    stack.wait_tools("test/echo")
    conversation_id = stack.conversation("test/echo")
    run_id = stack.start(conversation_id, "secret")["run_id"]
    for events in stack.follow(run_id):
        call = events.until_type("tool_call")
        denied = stack.client.post(f"/api/runs/{run_id}/tool_calls/{call['id']}/deny")
        assert denied.json() == {"id": call["id"], "decision": "denied"}
        assert events.until_type("tool_result") == {
            "id": call["id"],
            "content": DENIED,
            "is_error": True,
        }
        assert events.until_type("done")["status"] == "complete"
        assert events.text == f"Tool said: {DENIED}"
    assert marks(stack.marks_dir, "echo-started") == []


def test_a_server_that_crashes_mid_call_gives_an_error_result_and_the_answer_goes_on(
    stack: Stack,
) -> None:
    stack.wait_tools("test/crash")
    stack.always("crash")
    conversation_id = stack.conversation("test/crash")
    run_id = stack.start(conversation_id, "crash please")["run_id"]
    for events in stack.follow(run_id):
        call = events.until_type("tool_call")
        assert call["approval"] == "always"
        result = events.until_type("tool_result")
        assert result["is_error"] is True
        assert result["content"]
        done = events.until_type("done")
        assert done["status"] == "complete"
        assert events.text == f"Tool said: {result['content']}"
    assert marks(stack.marks_dir, "crash-started")  # it did crash in the call
    stack.wait_tools("test/echo")  # and it is brought back


async def test_cancel_during_a_slow_tool_stops_the_call_and_the_run(stack: Stack) -> None:
    stack.wait_tools("test/slow")
    stack.always("slow")
    conversation_id = stack.conversation("test/slow")
    script = json.dumps({"calls": [{"name": "slow", "arguments": {"seconds": 120}}]})
    run_id = stack.start(conversation_id, script)["run_id"]
    await wait_for_mark(stack.marks_dir, "slow-started")
    asked = len(stack.requests())
    cancelled = stack.client.post(f"/api/runs/{run_id}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "stopped"
    await wait_for_mark(stack.marks_dir, "slow-cancelled")  # the server saw the cancel
    assert len(stack.requests()) == asked  # and nothing more went upstream
    for events in stack.follow(run_id):
        done = events.until_type("done")
        assert done["status"] == "stopped"
        assert done["tool_calls"][0]["result"] is None
