"""``ssechat serve --workers N``: uvicorn's worker processes on one port, on PostgreSQL and Redis
started by the tests (``tests.services``), the first-run setup link printed once, not once per
worker; and ``--workers 2`` refused on the embedded SQLite file and memory log.

The server is a real process group of our own (``start_new_session``): it is stopped by its pid,
and its group is killed only if it does not stop.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .server_process import BIN, ServerProcess, clean_env, free_port, poll_until
from .services import PostgresServer, RedisServer, running_postgres, running_redis

pytestmark = pytest.mark.real_server

SETUP_LINK = re.compile(r"http://\S+/setup#token=\S+")


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the parent (uvicorn's supervisor stops its workers); if the group is still
    there after 15 s, SIGKILL to the group we started, and only to it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
            return
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    proc.wait()


def test_two_workers_on_postgres_and_redis_serve_and_print_one_setup_link(
    tmp_path: Path, postgres: PostgresServer, redis: RedisServer
) -> None:
    database = postgres.create_database("workers")
    port = free_port()
    log_path = tmp_path / "server.log"
    env = clean_env(SSECHAT_REDIS_URL=redis.url, SSECHAT_LOG_LEVEL="info")
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [str(BIN), "serve", "--workers", "2", "--port", str(port),
             "--db", postgres.url(database)],
            env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        server = ServerProcess(proc, port)
        server.wait_healthy(timeout=60)
        # Both workers have run their lifespan (each prints uvicorn's line at info level).
        poll_until(
            lambda: log_path.read_text().count("Application startup complete") == 2,
            "both workers' start-up",
            timeout=60,
        )
        output = log_path.read_text()
        links = SETUP_LINK.findall(output)
        assert len(links) == 1, output
        assert links[0].startswith(f"http://127.0.0.1:{port}/setup#token=")
        assert "in 2 processes" in output
        token = links[0].split("#token=", 1)[1]
        origin = {"Origin": server.base_url}
        setup = httpx.post(
            f"{server.base_url}/api/auth/setup",
            json={"token": token, "email": "a@b.example", "password": "x" * 12},
            headers=origin,
        )
        assert setup.status_code == 201, setup.text
        # The session is in PostgreSQL: whichever worker answers knows it.
        for _ in range(6):
            me = httpx.get(f"{server.base_url}/api/auth/me", cookies=setup.cookies)
            assert me.status_code == 200, me.text
            assert me.json()["email"] == "a@b.example"
        again = httpx.post(
            f"{server.base_url}/api/auth/setup",
            json={"token": token, "email": "c@d.example", "password": "x" * 12},
            headers=origin,
        )
        assert again.status_code == 401  # the link worked once
    finally:
        stop_group(proc)
        postgres.drop_database(database)
    assert proc.returncode == 0, log_path.read_text()


def test_two_workers_on_the_embedded_defaults_are_refused(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(BIN), "serve", "--workers", "2", "--db", str(tmp_path / "chat.db")],
        env=clean_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "SSECHAT_DATABASE_URL" in done.stderr
    assert "SSECHAT_REDIS_URL" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""  # nothing started
