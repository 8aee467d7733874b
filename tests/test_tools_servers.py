"""MCPServers against the real MCP test server, over stdio and over Streamable HTTP.

Every wait is an awaited condition with a deadline (a mark the server left, a status reached);
nothing asserts elapsed time. Every process a test starts is ended by pid.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from ssechat.tools import MCPServers, ServerState, parse_entry

from .mcp_support import (
    DEADLINE,
    TOOL_NAMES,
    HttpMCPServer,
    mark_pid,
    pid_alive,
    running_http_mcp_server,
    stdio_entry,
    until,
    wait_for_mark,
)

pytestmark = pytest.mark.anyio

NAME = "test"


@dataclass
class Target:
    transport: str
    entry: dict[str, Any]
    marks: Path
    http: HttpMCPServer | None


@pytest.fixture(params=["stdio", "http"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    marks = tmp_path / "marks"
    marks.mkdir()
    if request.param == "stdio":
        yield Target("stdio", stdio_entry(marks), marks, None)
        return
    with running_http_mcp_server(marks) as http:
        yield Target("http", {"url": http.url}, marks, http)


@pytest.fixture
def stdio_target(tmp_path: Path) -> Target:
    marks = tmp_path / "marks"
    marks.mkdir()
    return Target("stdio", stdio_entry(marks), marks, None)


class Recorder:
    """Every state a server went through, as ``on_change`` reported them."""

    def __init__(self) -> None:
        self.states: list[ServerState] = []

    def __call__(self, state: ServerState) -> None:
        self.states.append(state)

    def statuses(self) -> list[str]:
        return [state.status for state in self.states]


@asynccontextmanager
async def running(
    *entries: tuple[str, dict[str, Any]], connect_timeout: float = DEADLINE
) -> AsyncIterator[tuple[MCPServers, Recorder]]:
    recorder = Recorder()
    # Quick checks and restarts, so that a test's awaits resolve soon.
    servers = MCPServers(
        connect_timeout=connect_timeout,
        probe_interval=0.3,
        backoff=(0.2, 1.0),
        on_change=recorder,
    )
    try:
        await servers.apply(parse_entry(name, entry, source="file") for name, entry in entries)
        yield servers, recorder
    finally:
        with anyio.fail_after(DEADLINE):
            await servers.close()


def status(servers: MCPServers, name: str = NAME) -> str:
    state = servers.state(name)
    return state.status if state is not None else "missing"


async def ready(servers: MCPServers, name: str = NAME) -> None:
    await until(lambda: status(servers, name) == "ready", f"{name} ready")


async def test_the_tools_are_listed_with_their_schemas(target: Target) -> None:
    async with running((NAME, target.entry)) as (servers, recorder):
        await ready(servers)
        tools = {tool.name: tool for tool in servers.tools()}
        assert set(tools) == TOOL_NAMES
        assert all(tool.server == NAME for tool in tools.values())
        echo = tools["echo"].input_schema
        assert echo["properties"]["text"]["type"] == "string"
        assert echo["required"] == ["text"]
        assert "seconds" in tools["slow"].input_schema["properties"]
        assert tools["echo"].description
        assert recorder.statuses()[0] == "starting"
        assert "ready" in recorder.statuses()


async def test_echo_round_trip(target: Target) -> None:
    async with running((NAME, target.entry)) as (servers, _):
        await ready(servers)
        text = "héllo <b>wörld</b> 🎉"
        outcome = await servers.call(NAME, "echo", {"text": text}, timeout=DEADLINE)
        assert outcome.content == text
        assert outcome.is_error is False
        # The env of the entry reached the child (stdio) / the server saw the call (both).
        await wait_for_mark(target.marks, "echo-started-")


async def test_a_failing_tool_is_an_error_outcome_with_its_message(target: Target) -> None:
    async with running((NAME, target.entry)) as (servers, _):
        await ready(servers)
        outcome = await servers.call(NAME, "fail", {"message": "boom-42"}, timeout=DEADLINE)
        assert outcome.is_error is True
        assert "boom-42" in outcome.content
        # The server stays usable.
        assert (await servers.call(NAME, "echo", {"text": "ok"}, timeout=DEADLINE)).content == "ok"


async def test_the_xss_tool_returns_every_payload_raw(target: Target) -> None:
    from .fixtures import XSS

    async with running((NAME, target.entry)) as (servers, _):
        await ready(servers)
        outcome = await servers.call(NAME, "xss", {"list": "XSS_Polyglots"}, timeout=DEADLINE)
        assert outcome.is_error is False
        payloads = [p for p in (XSS / "XSS_Polyglots.txt").read_text().splitlines() if p.strip()]
        lines = set(outcome.content.splitlines())
        assert payloads
        assert all(payload in lines for payload in payloads)


async def test_a_timeout_is_an_error_outcome_and_the_server_sees_the_cancel(
    target: Target,
) -> None:
    async with running((NAME, target.entry)) as (servers, _):
        await ready(servers)
        outcome = await servers.call(NAME, "slow", {"seconds": 120}, timeout=0.5)
        assert outcome.is_error is True
        assert "did not answer within 0.5 s" in outcome.content
        started = await wait_for_mark(target.marks, "slow-started-")
        cancelled = await wait_for_mark(target.marks, "slow-cancelled-")
        assert cancelled[0].removeprefix("slow-cancelled-") == started[0].removeprefix(
            "slow-started-"
        )


async def test_a_server_timeout_overrides_the_callers(stdio_target: Target) -> None:
    entry = {**stdio_target.entry, "timeout": 0.5}
    async with running((NAME, entry)) as (servers, _):
        await ready(servers)
        outcome = await servers.call(NAME, "slow", {"seconds": 120}, timeout=DEADLINE * 10)
        assert outcome.is_error is True
        assert "within 0.5 s" in outcome.content
        await wait_for_mark(stdio_target.marks, "slow-cancelled-")


async def test_a_cancelled_caller_gets_cancelled_and_the_server_sees_it(target: Target) -> None:
    async with running((NAME, target.entry)) as (servers, _):
        await ready(servers)
        task = asyncio.create_task(servers.call(NAME, "slow", {"seconds": 120}, timeout=600))
        await wait_for_mark(target.marks, "slow-started-")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await wait_for_mark(target.marks, "slow-cancelled-")
        # The connection is still good for the next call.
        assert (await servers.call(NAME, "echo", {"text": "on"}, timeout=DEADLINE)).content == "on"


async def test_a_crash_mid_call_is_an_error_then_the_server_comes_back(target: Target) -> None:
    async with running((NAME, target.entry)) as (servers, recorder):
        await ready(servers)
        await servers.call(NAME, "echo", {"text": "before"}, timeout=DEADLINE)
        first_pid = mark_pid((await wait_for_mark(target.marks, "echo-started-"))[0])

        outcome = await servers.call(NAME, "crash", {}, timeout=DEADLINE)

        assert outcome.is_error is True
        assert "crash" in outcome.content or "stopped" in outcome.content
        await until(lambda: "error" in recorder.statuses(), "status error")
        error = next(s.error for s in recorder.states if s.status == "error")
        assert error
        if target.http is not None:
            # An HTTP server is not ours to restart: its own supervisor would bring it back.
            target.http.start()
        await ready(servers)
        again = await servers.call(NAME, "echo", {"text": "after"}, timeout=DEADLINE)
        assert (again.content, again.is_error) == ("after", False)
        echoes = await wait_for_mark(target.marks, "echo-started-", count=2)
        assert {mark_pid(m) for m in echoes} - {first_pid}, "a new server process answered"


async def test_a_killed_http_server_is_an_error_then_ready_again(tmp_path: Path) -> None:
    with running_http_mcp_server(tmp_path) as http:
        async with running((NAME, {"url": http.url})) as (servers, _):
            await ready(servers)
            http.kill()
            await until(lambda: status(servers) == "error", "status error")
            state = servers.state(NAME)
            assert state is not None
            assert state.error
            assert "connect" in state.error or "closed" in state.error
            assert servers.tools() == []
            down = await servers.call(NAME, "echo", {"text": "x"}, timeout=DEADLINE)
            assert down.is_error is True
            assert "not running" in down.content

            http.start()
            await ready(servers)
            outcome = await servers.call(NAME, "echo", {"text": "back"}, timeout=DEADLINE)
            assert outcome.content == "back"


async def test_a_command_that_does_not_exist_is_a_clear_error(tmp_path: Path) -> None:
    entry = {"command": str(tmp_path / "no-such-mcp-server")}
    async with running((NAME, entry)) as (servers, _):
        await until(lambda: status(servers) == "error", "status error")
        state = servers.state(NAME)
        assert state is not None
        assert state.error is not None
        assert "not found" in state.error
        outcome = await servers.call(NAME, "echo", {"text": "x"}, timeout=DEADLINE)
        assert outcome.is_error is True
        assert "not running" in outcome.content
        assert "not found" in outcome.content


async def test_a_server_that_never_answers_times_out_and_its_child_is_ended(
    tmp_path: Path,
) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    # A child that says nothing: never an MCP handshake.
    script = (
        "import os, pathlib, sys, time; "
        "pathlib.Path(sys.argv[1], str(os.getpid())).write_text(''); time.sleep(300)"
    )
    entry = {"command": sys.executable, "args": ["-c", script, str(pids)]}
    async with running((NAME, entry), connect_timeout=1) as (servers, _):
        await until(lambda: status(servers) == "error", "status error")
        state = servers.state(NAME)
        assert state is not None
        assert state.error == "the server did not finish connecting within 1 s"
        first = int(next(pids.iterdir()).name)
        await until(lambda: not pid_alive(first), "the silent child ended")
    assert [p.name for p in pids.iterdir() if pid_alive(int(p.name))] == []


async def test_a_failing_change_listener_does_not_break_the_server(stdio_target: Target) -> None:
    def explode(state: ServerState) -> None:
        raise RuntimeError("listener bug")

    servers = MCPServers(on_change=explode)
    try:
        await servers.apply([parse_entry(NAME, stdio_target.entry, source="file")])
        await ready(servers)
        assert (await servers.call(NAME, "echo", {"text": "x"}, timeout=DEADLINE)).content == "x"
    finally:
        with anyio.fail_after(DEADLINE):
            await servers.close()


async def test_an_unknown_server_is_an_error_outcome() -> None:
    async with running() as (servers, _):
        outcome = await servers.call("nope", "echo", {"text": "x"}, timeout=DEADLINE)
        assert outcome.is_error is True
        assert "not configured" in outcome.content


async def test_disabling_stops_the_child_and_enabling_starts_it_again(
    stdio_target: Target,
) -> None:
    async with running((NAME, stdio_target.entry)) as (servers, _):
        await ready(servers)
        await servers.call(NAME, "echo", {"text": "x"}, timeout=DEADLINE)
        pid = mark_pid((await wait_for_mark(stdio_target.marks, "echo-started-"))[0])
        assert pid_alive(pid)

        off = {**stdio_target.entry, "disabled": True}
        await servers.apply([parse_entry(NAME, off, source="admin")])

        assert status(servers) == "off"
        await until(lambda: not pid_alive(pid), "the child process ended")
        outcome = await servers.call(NAME, "echo", {"text": "x"}, timeout=DEADLINE)
        assert outcome.is_error is True
        assert "turned off" in outcome.content

        await servers.apply([parse_entry(NAME, stdio_target.entry, source="admin")])
        await ready(servers)
        assert (await servers.call(NAME, "echo", {"text": "y"}, timeout=DEADLINE)).content == "y"


async def test_removing_a_server_stops_it_and_forgets_it(stdio_target: Target) -> None:
    async with running((NAME, stdio_target.entry)) as (servers, _):
        await ready(servers)
        await servers.call(NAME, "echo", {"text": "x"}, timeout=DEADLINE)
        pid = mark_pid((await wait_for_mark(stdio_target.marks, "echo-started-"))[0])
        await servers.apply([])
        assert servers.state(NAME) is None
        assert servers.states() == []
        await until(lambda: not pid_alive(pid), "the child process ended")


async def test_a_call_in_flight_ends_at_once_when_the_server_is_turned_off(
    stdio_target: Target,
) -> None:
    async with running((NAME, stdio_target.entry)) as (servers, _):
        await ready(servers)
        task = asyncio.create_task(servers.call(NAME, "slow", {"seconds": 120}, timeout=600))
        await wait_for_mark(stdio_target.marks, "slow-started-")
        off = {**stdio_target.entry, "enabled": False}
        await servers.apply([parse_entry(NAME, off, source="admin")])
        with anyio.fail_after(DEADLINE):
            outcome = await task
        assert outcome.is_error is True
        assert "turned off" in outcome.content


async def test_close_leaves_no_child_process(tmp_path: Path) -> None:
    entries = []
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        entries.append((name, stdio_entry(tmp_path / name)))
    servers = MCPServers()
    await servers.apply(parse_entry(name, entry, source="file") for name, entry in entries)
    pids = []
    for name, _entry in entries:
        await ready(servers, name)
        await servers.call(name, "echo", {"text": name}, timeout=DEADLINE)
        pids.append(mark_pid((await wait_for_mark(tmp_path / name, "echo-started-"))[0]))
    assert all(pid_alive(pid) for pid in pids)

    with anyio.fail_after(DEADLINE):
        await servers.close()

    assert [pid for pid in pids if pid_alive(pid)] == []
    assert servers.states() == []


async def test_secrets_never_reach_states_outcomes_or_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secrets = ["hdr-secret-9f2c", "url-pass-7a1e", "env-secret-3b8d"]
    with running_http_mcp_server(tmp_path) as http:
        dead = f"http://user:{secrets[1]}@127.0.0.1:1/mcp"
        entries = [
            ("web", {"url": http.url, "headers": {"X-Api-Key": secrets[0]}}),
            ("dead", {"url": dead, "headers": {"Authorization": f"Bearer {secrets[0]}"}}),
            ("local", {**stdio_entry(tmp_path), "env": {"TOKEN": secrets[2]}}),
            ("missing", {"command": str(tmp_path / "nope"), "env": {"TOKEN": secrets[2]}}),
        ]
        with caplog.at_level(logging.DEBUG):
            async with running(*entries) as (servers, recorder):
                await ready(servers, "web")
                await ready(servers, "local")
                await until(lambda: status(servers, "dead") == "error", "dead in error")
                await until(lambda: status(servers, "missing") == "error", "missing in error")
                outcomes = [
                    await servers.call(name, "echo", {"text": "x"}, timeout=DEADLINE)
                    for name, _ in entries
                ]
                http.kill()
                await until(lambda: status(servers, "web") == "error", "web in error")
                seen = repr(recorder.states) + repr(servers.states()) + repr(outcomes)
                seen += repr([servers.spec(name) for name, _ in entries])
    seen += caplog.text
    assert "error" in seen
    # The SDK's own debug log names the endpoint: it was given the URL without its password.
    assert "Connecting to StreamableHTTP endpoint: http://127.0.0.1:1/mcp" in caplog.text
    for secret in secrets:
        assert secret not in seen
