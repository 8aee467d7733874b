"""Shared fixtures: the anyio backend and a real uvicorn on a loopback port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import uvicorn
from starlette.types import ASGIApp


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class RealServer:
    server: uvicorn.Server
    host: str
    port: int

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def connect(self, timeout: float = 5.0) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout=timeout)


@contextmanager
def run_uvicorn(app: ASGIApp, **config: object) -> Iterator[RealServer]:
    """Serve ``app`` with uvicorn in a thread on a free loopback port; stop it afterwards."""
    options: dict[str, object] = {"log_level": "warning", "lifespan": "off", **config}
    cfg = uvicorn.Config(app, host="127.0.0.1", port=0, **options)  # type: ignore[arg-type]
    server = uvicorn.Server(cfg)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield RealServer(server, "127.0.0.1", port)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def real_server() -> Iterator[Callable[..., RealServer]]:
    """Start any number of real servers in a test; all are stopped when it ends."""
    stack: list[Iterator[RealServer]] = []

    def start(app: ASGIApp, **config: object) -> RealServer:
        cm = run_uvicorn(app, **config)
        stack.append(cm)  # type: ignore[arg-type]
        return cm.__enter__()

    yield start
    for cm in reversed(stack):
        cm.__exit__(None, None, None)  # type: ignore[attr-defined]
