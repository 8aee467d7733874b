"""Run `ssechat serve` as a real process on a free loopback port, and stop it by pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent / "ssechat"


def poll_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Wait until ``condition()`` holds, looking every 20 ms: for a state another process
    writes (a file, a database), which no event announces. ``timeout`` only turns a hang into
    a failure that names ``what``; it bounds nothing the test asserts."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not seen within {timeout:g} s")
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without ssechat's or OpenAI's settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SSECHAT_", "OPENAI_"))}
    env.update(extra)
    return env


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 15 s; only this test's own child, by pid."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class ServerProcess:
    def __init__(self, proc: subprocess.Popen[bytes], port: int) -> None:
        self.proc = proc
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"

    def wait_healthy(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.base_url}/api/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"ssechat serve exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("ssechat serve did not become healthy")
            time.sleep(0.05)

    def kill(self) -> None:
        """kill -9: no shutdown code runs."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


@contextmanager
def ssechat_serve(
    env: Mapping[str, str], cwd: Path, args: tuple[str, ...] = ()
) -> Iterator[ServerProcess]:
    port = free_port()
    log = (cwd / "server.log").open("ab")  # kept beside the test's files for a post-mortem
    proc = subprocess.Popen(
        [str(BIN), "serve", "--port", str(port), *args],
        env={**clean_env(SSECHAT_LOG_LEVEL="warning"), **env},
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    server = ServerProcess(proc, port)
    try:
        server.wait_healthy()
        yield server
    finally:
        stop(proc)
