"""Helpers for tests that use the real MCP test server (``tests/mcp_test_server.py``).

``stdio_entry`` is the ``mcpServers`` entry that runs it over stdio; ``running_http_mcp_server``
serves it over Streamable HTTP on a free loopback port (kill-able and restartable on the same port
mid-test) and ends it by pid. ``wait_for_mark`` and ``until`` await what the server did, with a
deadline, instead of sleeping and hoping.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx

from .e2e.harness import eventually
from .fixtures import XSS

SERVER = Path(__file__).resolve().with_name("mcp_test_server.py")
TOOL_NAMES = frozenset({"echo", "slow", "fail", "xss", "crash"})
DEADLINE = 20.0


def server_env(marks_dir: Path) -> dict[str, str]:
    return {"SSECHAT_TEST_MCP_MARKS": str(marks_dir), "SSECHAT_TEST_XSS_DIR": str(XSS)}


def stdio_entry(marks_dir: Path) -> dict[str, Any]:
    """The ``mcpServers`` entry that runs the test server over stdio with this venv's python."""
    return {
        "command": sys.executable,
        "args": [str(SERVER), "stdio"],
        "env": server_env(marks_dir),
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def pid_alive(pid: int) -> bool:
    """Whether the process runs (an exited, unreaped one counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


class HttpMCPServer:
    """The test server over Streamable HTTP, on a port that stays the same across restarts."""

    def __init__(self, marks_dir: Path) -> None:
        self.marks_dir = marks_dir
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self) -> None:
        """Start the server and return once it accepts connections (deadline: 20 s)."""
        self.kill()
        self._process = subprocess.Popen(
            [sys.executable, str(SERVER), "http", "--port", str(self.port)],
            env={**os.environ, **server_env(self.marks_dir)},
        )
        deadline = time.monotonic() + DEADLINE
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"the MCP test server exited with {self._process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.kill()
                    raise TimeoutError("the MCP test server did not start listening") from None
                time.sleep(0.05)

    def kill(self) -> None:
        """End the server now (SIGKILL, by pid) and reap it."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=DEADLINE)


@contextmanager
def running_http_mcp_server(marks_dir: Path) -> Iterator[HttpMCPServer]:
    """The test server over Streamable HTTP (``.url``, ``.pid``, ``.kill()``, ``.start()``)."""
    server = HttpMCPServer(marks_dir)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def marks(marks_dir: Path, prefix: str) -> list[str]:
    return sorted(p.name for p in marks_dir.iterdir() if p.name.startswith(prefix))


async def wait_for_mark(marks_dir: Path, prefix: str, *, count: int = 1) -> list[str]:
    """Await that the server left ``count`` marks named ``prefix…``; returns them."""
    with anyio.fail_after(DEADLINE):
        # Polling: the marks are files another process writes.
        while len(found := marks(marks_dir, prefix)) < count:  # noqa: ASYNC110
            await anyio.sleep(0.02)
    return found


def mark_pid(mark: str) -> int:
    """The pid of the server process that left a mark (``<tool>-started-<pid>-<n>``)."""
    return int(mark.rsplit("-", 2)[1])


async def until(predicate: Callable[[], bool], what: str) -> None:
    """Await that ``predicate()`` holds (deadline: 20 s; the failure says ``what``)."""
    try:
        with anyio.fail_after(DEADLINE):
            # Polling, with a deadline: the condition is read off objects that have no event.
            while not predicate():  # noqa: ASYNC110
                await anyio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"never happened: {what}") from None


def tools_ready(client: httpx.Client, *keys: str) -> bool:
    """Whether a server's ``GET /api/tools`` lists each of ``keys`` as available."""
    listed = {t["key"]: t["available"] for t in client.get("/api/tools").json()["tools"]}
    return all(listed.get(key) for key in keys)


def wait_tools(client: httpx.Client, *keys: str) -> None:
    """Await that the server's MCP servers (started in the background) offer ``keys``."""
    eventually(lambda: tools_ready(client, *keys), f"the MCP server lists {keys}", DEADLINE)
