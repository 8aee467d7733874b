"""Shared fixtures: the anyio backend, a store on a fresh database, a TLS certificate, and a
real uvicorn on a loopback port.

The store's own test modules (``test_store*.py``) run each test that takes ``database`` (or
``store``) on both backends, ``[sqlite]`` and ``[postgresql]`` (one PostgreSQL server for the
session, a fresh database per test); a test marked ``sqlite_only`` runs on SQLite alone. Every
other module stays on SQLite, so the whole suite stays affordable."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from starlette.types import ASGIApp

from ssechat.store import Store, open_store

from .services import PostgresServer, running_postgres
from .store_support import Database, Ticker

BACKENDS = ("sqlite", "postgresql")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sqlite_only(reason): a store test about SQLite alone (files, pragmas)"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Only the store's modules run on both backends; the rest of the suite stays on SQLite.
    if "backend" not in metafunc.fixturenames:
        return
    if not metafunc.definition.path.name.startswith("test_store"):
        return
    only_sqlite = metafunc.definition.get_closest_marker("sqlite_only") is not None
    backends = BACKENDS[:1] if only_sqlite else BACKENDS
    metafunc.parametrize("backend", backends, indirect=True)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "ssechat.db"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session (started only if a test needs it)."""
    with running_postgres() as server:
        yield server


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The store's database: "sqlite" unless the test is parametrized (see above)."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def database(backend: str, db_path: Path, request: pytest.FixtureRequest) -> Iterator[Database]:
    """A fresh empty database: a SQLite file's path, or a PostgreSQL URL (of a new database,
    dropped after the test)."""
    if backend == "sqlite":
        yield db_path
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.create_database()
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)


@pytest.fixture
async def store(database: Database) -> AsyncIterator[Store]:
    """A store on a fresh database, its clock a ``Ticker`` (each reading a second later)."""
    async with await open_store(database, clock=Ticker()) as opened:
        yield opened


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, and its key."""
    if shutil.which("openssl") is None:
        pytest.fail("the TLS tests need the openssl command (apt-get install openssl)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


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
    # proxy_headers off, as `ssechat serve` runs it: X-Forwarded-* count only from
    # SSECHAT_TRUSTED_PROXIES (the app applies them), never from any 127.0.0.1 client.
    options: dict[str, object] = {
        "log_level": "warning",
        "lifespan": "off",
        "proxy_headers": False,
        **config,
    }
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


@pytest.fixture
def marks_dir(tmp_path: Path) -> Path:
    """Where the MCP test server (tests/mcp_test_server.py) leaves a mark for each call it
    starts and each it sees cancelled (tests/mcp_support.py reads them)."""
    folder = tmp_path / "marks"
    folder.mkdir()
    return folder
