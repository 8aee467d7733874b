"""Redis or PostgreSQL down under two ``ssechat serve`` processes, and back (issue 12, §3).

Redis stopped mid-run: the run goes on for the clients of its own process; a new run fails with
a clear ``error`` event (``unavailable``) and ``done`` ``error``; every other request still
answers. Redis started again (empty: no persistence): the live run is found from the other
process again, whole, and stopped from there; new runs work and are followed across processes.

PostgreSQL stopped: requests that need it get 503 ``unavailable``, never a 500; the health check
answers; started again, the same requests work, with no restart of ssechat.

These tests stop and start their own Redis and PostgreSQL, never the other modules'. Waits are
for events; a recovery is polled (another process's state, which no event announces here).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ssechat.fake_upstream import FakeUpstream, Scenario
from ssechat.fake_upstream.wire import word_tokens

from .cluster_support import (
    api_key,
    client_for,
    cluster_env,
    data,
    ids,
    reading,
    serve_nodes,
    texts,
)
from .server_process import ServerProcess, poll_until
from .services import PostgresServer, RedisServer, running_postgres, running_redis

pytestmark = pytest.mark.real_server

ANSWER = " ".join(f"word{i}" for i in range(40))
SENT = 8
STALLED = Scenario(text=ANSWER, stall_after=SENT)
PARTIAL = "".join(word_tokens(ANSWER)[:SENT])
RUN_EVENTS = ("run", "delta", "reasoning", "error", "done")


@pytest.fixture
def services(tmp_path: Path) -> Iterator[tuple[PostgresServer, RedisServer]]:
    with running_postgres() as pg, running_redis() as redis_server:
        yield pg, redis_server


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream.running_in_thread(Scenario(text=ANSWER)) as fake:
        yield fake


@pytest.fixture
def nodes(
    tmp_path: Path, services: tuple[PostgresServer, RedisServer], upstream: FakeUpstream
) -> Iterator[tuple[list[ServerProcess], str]]:
    pg, redis_server = services
    env = cluster_env(pg, "postgres", redis_server, upstream.base_url, SSECHAT_RUN_LEASE="2")
    with serve_nodes(env, tmp_path) as running:
        yield running, api_key(running[0].base_url)


def run_events(events: list) -> list:
    return [e for e in events if e.type in RUN_EVENTS]


def new_run(client: httpx.Client) -> dict:
    cid = client.post("/api/conversations", json={}).json()["id"]
    response = client.post(f"/api/conversations/{cid}/messages", json={"content": "go"})
    assert response.status_code in (200, 201, 202), response.text
    return {**response.json(), "conversation_id": cid}


def test_redis_stopped_and_started_mid_run(
    nodes: tuple[list[ServerProcess], str],
    services: tuple[PostgresServer, RedisServer],
    upstream: FakeUpstream,
) -> None:
    (a, b), key = nodes
    _, redis_server = services
    upstream.enqueue(STALLED)
    with client_for(a, key) as on_a, client_for(b, key) as on_b:
        live = new_run(on_a)
        with reading(on_b, live["events_url"]) as stream:
            stream.until_text(PARTIAL)

        redis_server.stop()
        # The live run goes on for its own process's clients.
        with reading(on_a, live["events_url"]) as stream:
            assert texts(run_events(stream.until_text(PARTIAL))) == PARTIAL
        # A new run fails with a clear error event, and says it is over.
        failed = new_run(on_a)
        with reading(on_a, failed["events_url"]) as stream:
            events = run_events(stream.to_end())
        assert [e.type for e in events][-2:] == ["error", "done"]
        assert data(events[-2])["code"] == "unavailable"
        assert data(events[-1])["status"] == "error"
        # Everything else answers, on both processes.
        for client in (on_a, on_b):
            assert client.get("/api/conversations").status_code == 200
            shown = client.get(f"/api/conversations/{live['conversation_id']}")
            assert shown.status_code == 200, shown.text
            assert client.get("/api/health").status_code == 200

        redis_server.start()  # empty: it kept nothing
        # The run's process registers it again and writes its whole log back: B finds it.
        poll_until(
            lambda: on_b.get(f"/api/runs/{live['run_id']}").status_code == 200,
            "the live run known to B again",
        )
        with reading(on_b, live["events_url"]) as stream:
            events = run_events(stream.until_text(PARTIAL))
            assert ids(events) == list(range(len(events)))
            stopped = on_b.post(f"/api/runs/{live['run_id']}/cancel")
            assert stopped.status_code == 200, stopped.text
            assert stopped.json()["status"] == "stopped"
            rest = run_events(stream.to_end())
        assert data(rest[-1])["status"] == "stopped"
        upstream.run(upstream.wait_closed(0), timeout=30)
        assert upstream.connections[0].closed_by == "client"

        # New runs work again, followed from the other process.
        fresh = new_run(on_b)
        with reading(on_a, fresh["events_url"]) as stream:
            events = run_events(stream.to_end())
        assert data(events[-1])["status"] == "complete"
        assert texts(events) == ANSWER


def test_postgres_stopped_gives_503_and_comes_back(
    nodes: tuple[list[ServerProcess], str], services: tuple[PostgresServer, RedisServer]
) -> None:
    (a, b), key = nodes
    pg, _ = services
    with client_for(a, key) as on_a, client_for(b, key) as on_b:
        assert on_a.get("/api/conversations").status_code == 200
        pg.stop()
        for client in (on_a, on_b):
            response = client.get("/api/conversations")
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "unavailable"
            assert "postgres" not in response.text.lower() or "password" not in response.text
            made = client.post("/api/conversations", json={})
            assert made.status_code == 503, made.text
            assert client.get("/api/health").status_code == 200
        pg.start()
        for client in (on_a, on_b):
            poll_until(
                lambda client=client: client.get("/api/conversations").status_code == 200,
                "the database reachable again",
            )
            assert client.post("/api/conversations", json={}).status_code == 201
