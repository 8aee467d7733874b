"""PostgreSQL and Redis for the ``ssechat-pg`` and ``ssechat-pg2`` peers.

They are started once per benchmark, when the first of those peers is measured, by the same few
lines that start them for the tests (``tests.services``: a cluster and a redis-server in
temporary folders on free loopback ports, never a system service), and pinned to the server's
CPU set, because on a real deployment they take CPU next to the server and the benchmark counts
their CPU next to the server's. Each measurement gets a new empty database and an empty Redis
(``FLUSHALL``), so no run, conversation or stream of one measurement is seen by the next; an
``initdb`` per measurement would add seconds to each of the dozens of measurements and change
nothing the windows measure.

This module never touches a server it did not start, and both are stopped when the benchmark
ends (``Services.close``, and ``Procs.stop_all`` if it is cut).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from tests.services import PostgresServer, RedisServer, running_postgres, running_redis

from bench.procs import Procs, ProcStat, ProcTree, pin_tree

__all__ = ["Services", "Shared"]


@dataclass(frozen=True, slots=True)
class Shared:
    """What one measurement of a peer on PostgreSQL + Redis is given."""

    database_url: str
    redis_url: str
    redis: ProcStat
    postgres: ProcTree


class Services:
    """The benchmark's PostgreSQL and Redis, started on first use, stopped by ``close``."""

    def __init__(self, procs: Procs, cpus: frozenset[int]) -> None:
        self.procs = procs
        self.cpus = cpus
        self._stack = ExitStack()
        self._servers: tuple[PostgresServer, RedisServer] | None = None

    def _start(self) -> tuple[PostgresServer, RedisServer]:
        if self._servers is None:
            postgres = self._stack.enter_context(running_postgres())
            redis = self._stack.enter_context(running_redis())
            for name, server in (("postgres", postgres), ("redis-server", redis)):
                assert server.process is not None
                self.procs.adopt(name, server.process)
            self._servers = postgres, redis
        return self._servers

    @contextmanager
    def fresh(self) -> Iterator[Shared]:
        """A new empty database and an empty Redis for one measurement; the database is dropped
        afterwards (the server using it must be stopped first: this block is the outer one)."""
        postgres, redis = self._start()
        assert postgres.process is not None
        assert redis.process is not None
        name = postgres.create_database("bench")
        _flushall(redis.port)
        # Pinned at every measurement: the postmaster's children that predate the first pinning
        # (checkpointer, writer, autovacuum launcher) are caught too; backends inherit it.
        pin_tree(postgres.process.pid, self.cpus)
        pin_tree(redis.process.pid, self.cpus)
        try:
            yield Shared(
                database_url=postgres.url(name),
                redis_url=redis.url,
                redis=ProcStat(redis.process.pid),
                postgres=ProcTree(postgres.process.pid),
            )
        finally:
            postgres.drop_database(name)

    def close(self) -> None:
        self._stack.close()
        self._servers = None


def _flushall(port: int) -> None:
    """``FLUSHALL`` in RESP by hand: one command, no client library needed here."""
    with socket.create_connection(("127.0.0.1", port), 10) as sock:
        sock.sendall(b"*1\r\n$8\r\nFLUSHALL\r\n")
        answer = sock.recv(64)
    if not answer.startswith(b"+OK"):
        raise RuntimeError(f"redis FLUSHALL answered {answer!r}")
