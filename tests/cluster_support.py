"""Two (or more) real ``ssechat serve`` processes on one PostgreSQL and one Redis, and a client
that reads their event streams: what the multi-process tests share.

The servers, PostgreSQL and Redis are real processes on loopback ports, started here (see
``tests.services``) and stopped by pid; only the upstream is the fake, in a thread of the test's
process, so that the test sees its requests and its connections close.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from ssechat.sse import Event, EventDecoder

from .server_process import ServerProcess, ssechat_serve
from .services import PostgresServer, RedisServer

ADMIN_EMAIL, ADMIN_PASSWORD = "admin@cluster.example", "the cluster admin's password"


def cluster_env(
    pg: PostgresServer, database: str, redis_server: RedisServer, upstream_url: str, **extra: str
) -> dict[str, str]:
    return {
        "SSECHAT_DATABASE_URL": pg.url(database),
        "SSECHAT_REDIS_URL": redis_server.url,
        "OPENAI_BASE_URL": upstream_url,
        "SSECHAT_MODEL": "gpt-test",
        "SSECHAT_ADMIN_EMAIL": ADMIN_EMAIL,
        "SSECHAT_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "SSECHAT_MAX_LIVE_RUNS_PER_USER": "0",
        **extra,
    }


@contextmanager
def serve_nodes(env: dict[str, str], folder: Path, count: int = 2) -> Iterator[list[ServerProcess]]:
    """``count`` servers on the same settings, each in a folder of its own (its log there)."""
    with ExitStack() as stack:
        nodes = []
        for index in range(count):
            where = folder / f"node{index}"
            where.mkdir(parents=True, exist_ok=True)
            nodes.append(stack.enter_context(ssechat_serve(env, where)))
        yield nodes


def api_key(base_url: str) -> str:
    """Sign the admin in on one node and make an API key (valid on every node: one database)."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        response = client.post(
            "/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        assert response.status_code == 200, response.text
        response = client.post("/api/keys", json={"name": "cluster test"})
        assert response.status_code == 201, response.text
        return str(response.json()["key"])


def client_for(node: ServerProcess, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=node.base_url, timeout=30, headers={"Authorization": f"Bearer {key}"}
    )


@dataclass
class Reading:
    """An event stream being read, event by event."""

    response: httpx.Response
    events: list[Event] = field(default_factory=list)
    _decoder: EventDecoder = field(default_factory=EventDecoder)
    _chunks: Iterator[bytes] | None = None

    def next_events(self) -> list[Event]:
        if self._chunks is None:
            self._chunks = self.response.iter_raw()
        while True:
            chunk = next(self._chunks)  # StopIteration: the server ended the stream
            got = self._decoder.feed(chunk)
            if got:
                self.events.extend(got)
                return got

    def until(self, kind: str, count: int = 1) -> list[Event]:
        """Read until ``count`` events of type ``kind`` have arrived in all."""
        while sum(1 for e in self.events if e.type == kind) < count:
            self.next_events()
        return self.events

    def until_text(self, wanted: str) -> list[Event]:
        """Read until the deltas so far spell ``wanted`` (several words may come in one)."""
        while texts(self.events) != wanted:
            assert wanted.startswith(texts(self.events)), texts(self.events)
            self.next_events()
        return self.events

    def to_end(self) -> list[Event]:
        try:
            while True:
                self.next_events()
        except StopIteration:
            return self.events

    def close(self) -> None:
        self.response.close()


@contextmanager
def reading(
    client: httpx.Client, url: str, *, last_event_id: int | None = None
) -> Iterator[Reading]:
    headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
    response = client.send(client.build_request("GET", url, headers=headers), stream=True)
    try:
        assert response.status_code == 200, response.read()
        yield Reading(response)
    finally:
        response.close()


def texts(events: list[Event]) -> str:
    return "".join(json.loads(e.data)["text"] for e in events if e.type == "delta")


def ids(events: list[Event]) -> list[int]:
    """The ids of the run's events (each carries its own: ``last_event_id`` is it)."""
    return [int(e.last_event_id) for e in events]


def data(event: Event) -> Any:
    return json.loads(event.data)


def flush_redis(server: RedisServer) -> None:
    with redis.Redis.from_url(server.url) as client:
        client.flushall()
