"""Real PostgreSQL and Redis servers for the tests and the benchmark, started in temporary folders
on free loopback ports, never a system service, and stopped by pid afterwards.

Debian's ``postgresql`` and ``redis-server`` packages provide the binaries (``make test``
installs them when missing). PostgreSQL refuses to run as root, and these machines run as root:
its server runs as the ``postgres`` account the package makes, in a folder given to it. That is
why this is not ``pytest-postgresql`` (whose executor runs ``initdb`` and ``pg_ctl`` as the
calling user) and, to keep one way of doing it, not ``pytest-redis`` either: both servers are
started the same way here, by a few lines of ``subprocess``, and the benchmark uses them too.

``PostgresServer.stop()``/``start()`` and ``RedisServer.stop()``/``start()`` stop a running server
and start it again on the same port and data (the outage tests use them).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "PostgresServer",
    "RedisServer",
    "free_port",
    "postgres_binaries",
    "redis_binary",
    "running_postgres",
    "running_redis",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def postgres_binaries() -> Path | None:
    """The folder of Debian's PostgreSQL server binaries (the newest version), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return Path(found[-1]).parent if found else None


def redis_binary() -> str | None:
    return shutil.which("redis-server")


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, log: Path) -> None:
    # A start-up wait, not a timing assertion: the loop ends as soon as the port answers.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited at start:\n{log.read_text(errors='replace')}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"{what} did not listen on port {port}:\n{log.read_text(errors='replace')}")


def _stop(process: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class PostgresServer:
    """A PostgreSQL cluster in ``folder`` on ``port``, run as the ``postgres`` account when this
    process is root. ``url(database)`` is a ``postgresql://`` URL; ``create_database`` makes a
    fresh database for one test."""

    USER = "ssechat"
    PASSWORD = "ssechat-test"

    def __init__(self, folder: Path, port: int | None = None) -> None:
        binaries = postgres_binaries()
        if binaries is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install -y postgresql)")
        self.bin = binaries
        self.folder = folder
        self.data = folder / "data"
        self.log = folder / "postgres.log"
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._as: dict[str, object] = {}
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            self._as = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        self._databases = 0

    def _own(self, path: Path) -> None:
        if self._as:
            os.chown(path, int(str(self._as["user"])), int(str(self._as["group"])))

    def init(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._own(self.folder)
        password_file = self.folder / "password"
        password_file.write_text(self.PASSWORD)
        self._own(password_file)
        subprocess.run(
            [str(self.bin / "initdb"), "-D", str(self.data), "-U", self.USER, "-A",
             "scram-sha-256", "--pwfile", str(password_file), "-E", "UTF8", "--no-sync"],
            check=True, capture_output=True, cwd=self.folder, **self._as,  # type: ignore[call-overload]
        )  # fmt: skip

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(  # type: ignore[call-overload]
                [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
                 "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.folder}",
                 "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=200"],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.folder, **self._as,
            )  # fmt: skip
        _wait_for_port(self.port, self.process, "postgres", self.log)
        self._wait_ready()

    def _wait_ready(self) -> None:
        # The port opens before the server takes connections ("the database system is starting
        # up"): pg_isready says when it does.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = subprocess.run(
                [str(self.bin.parent / "bin" / "pg_isready"), "-h", "127.0.0.1", "-p",
                 str(self.port), "-U", self.USER, "-d", "postgres", "-q"],
                check=False,
            )  # fmt: skip
            if done.returncode == 0:
                return
            time.sleep(0.05)
        raise RuntimeError(f"postgres did not get ready:\n{self.log.read_text(errors='replace')}")

    def stop(self) -> None:
        """A fast shutdown (SIGINT: open sessions are ended)."""
        _stop(self.process, signal.SIGINT)

    def kill(self) -> None:
        _stop(self.process, signal.SIGKILL)

    def url(self, database: str = "postgres", driver: str = "postgresql") -> str:
        return f"{driver}://{self.USER}:{self.PASSWORD}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        done = subprocess.run(
            [str(self.bin.parent / "bin" / "psql"), "-X", "-q", "-t", "-A", "-v",
             "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.USER,
             "-d", database, "-c", sql],
            check=True, capture_output=True, text=True,
            env={**os.environ, "PGPASSWORD": self.PASSWORD},
        )  # fmt: skip
        return done.stdout

    def create_database(self, prefix: str = "test") -> str:
        """A new empty database; its name."""
        self._databases += 1
        name = f"{prefix}_{os.getpid()}_{self._databases}"
        self.psql(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class RedisServer:
    """A Redis server in ``folder`` on ``port``, with no persistence unless ``appendonly``."""

    def __init__(self, folder: Path, port: int | None = None, *, appendonly: bool = False) -> None:
        binary = redis_binary()
        if binary is None:
            raise RuntimeError("Redis is not installed (apt-get install -y redis-server)")
        self.binary = binary
        self.folder = folder
        self.port = port or free_port()
        self.appendonly = appendonly
        self.log = folder / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
                 str(self.folder), "--save", "", "--appendonly",
                 "yes" if self.appendonly else "no", "--daemonize", "no", "--protected-mode", "no"],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.folder,
            )  # fmt: skip
        _wait_for_port(self.port, self.process, "redis-server", self.log)

    def stop(self) -> None:
        _stop(self.process, signal.SIGTERM)

    def kill(self) -> None:
        _stop(self.process, signal.SIGKILL)


@contextlib.contextmanager
def running_postgres(folder: Path | None = None) -> Iterator[PostgresServer]:
    """A fresh PostgreSQL cluster for the duration of the block."""
    with contextlib.ExitStack() as stack:
        if folder is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ssechat-pg-")))
            folder.chmod(0o755)  # the postgres account must reach its folder inside
        server = PostgresServer(folder / "pg")
        server.init()
        server.start()
        try:
            yield server
        finally:
            server.stop()


@contextlib.contextmanager
def running_redis(folder: Path | None = None) -> Iterator[RedisServer]:
    with contextlib.ExitStack() as stack:
        if folder is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ssechat-redis-")))
        server = RedisServer(folder / "redis")
        server.start()
        try:
            yield server
        finally:
            server.stop()
