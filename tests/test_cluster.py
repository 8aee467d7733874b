"""Two ``ssechat serve`` processes on one PostgreSQL and one Redis (issue 12).

A run started through one process is followed live from the other, resumed there with
``Last-Event-ID`` (no gap, no duplicate, one upstream request), and stopped from the other (the
fake upstream sees its connection close). After ``kill -9`` of the run's process, a client
following on the other gets ``error`` then ``done`` (``interrupted``) once the lease runs out,
the stored answer holds every token the log had, and the conversation goes on.

Every wait is for an event (a frame read, a request or a closed connection at the fake upstream);
the timeouts only turn a hang into a failure. The lease is 2 s here, so that the kill test waits
little; the persist interval is long, so that "every token the log had" is more than the last
batch saved.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ssechat.fake_upstream import FakeUpstream, Scenario
from ssechat.fake_upstream.wire import word_tokens

from .cluster_support import (
    api_key,
    client_for,
    cluster_env,
    data,
    flush_redis,
    ids,
    reading,
    serve_nodes,
    texts,
)
from .server_process import ServerProcess
from .services import PostgresServer, RedisServer, running_postgres, running_redis

pytestmark = pytest.mark.real_server

ANSWER = " ".join(f"word{i}" for i in range(60))
WORDS = word_tokens(ANSWER)
SENT = 12
# SENT words, then silence until the client (the run's process) leaves.
STALLED = Scenario(text=ANSWER, stall_after=SENT)
PARTIAL = "".join(WORDS[:SENT])
RUN_EVENTS = ("run", "delta", "reasoning", "error", "done")


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream.running_in_thread(Scenario(text=ANSWER)) as fake:
        yield fake


@pytest.fixture
def nodes(
    tmp_path: Path, pg: PostgresServer, redis_server: RedisServer, upstream: FakeUpstream
) -> Iterator[tuple[list[ServerProcess], str]]:
    database = pg.create_database("cluster")
    flush_redis(redis_server)
    env = cluster_env(
        pg,
        database,
        redis_server,
        upstream.base_url,
        SSECHAT_RUN_LEASE="2",
        SSECHAT_PERSIST_INTERVAL="600",
    )
    try:
        with serve_nodes(env, tmp_path) as running:
            yield running, api_key(running[0].base_url)
    finally:
        pg.drop_database(database)


def run_events(events: list) -> list:
    return [e for e in events if e.type in RUN_EVENTS]


def start_run(node: ServerProcess, key: str, content: str = "go") -> dict:
    with client_for(node, key) as client:
        cid = client.post("/api/conversations", json={}).json()["id"]
        response = client.post(f"/api/conversations/{cid}/messages", json={"content": content})
        assert response.status_code in (200, 201, 202), response.text
        started = response.json()
        started["conversation_id"] = cid
        return started


def test_a_run_is_followed_resumed_and_stopped_from_the_other_process(
    nodes: tuple[list[ServerProcess], str], upstream: FakeUpstream
) -> None:
    (a, b), key = nodes
    upstream.enqueue(STALLED)
    started = start_run(a, key)
    url = started["events_url"]
    with client_for(b, key) as on_b, client_for(a, key) as on_a:
        # Followed live from B: the first words, as A relays them.
        with reading(on_b, url) as stream:
            stream.until("delta", 1)
            first = run_events(stream.events)
        # Cut, then resumed on A from the last id B saw, and back on B again from there.
        with reading(on_a, url, last_event_id=ids(first)[-1]) as stream:
            stream.until_text(PARTIAL[len(texts(first)) :])
            second = run_events(stream.events)
        seen = first + second
        assert texts(seen) == PARTIAL
        assert ids(seen) == list(range(len(seen)))  # no gap, no duplicate
        with reading(on_b, url, last_event_id=ids(seen)[-1]) as stream:
            # Stopped through B: A, which holds the upstream request, closes it.
            state = on_b.post(f"/api/runs/{started['run_id']}/cancel")
            assert state.status_code == 200, state.text
            assert state.json()["status"] == "stopped"
            assert state.json()["text"] == PARTIAL
            rest = run_events(stream.to_end())
        assert [e.type for e in rest] == ["done"]
        assert data(rest[0])["status"] == "stopped"
        assert ids(rest) == [len(seen)]
    closed_by = upstream.run(upstream.wait_closed(0), timeout=30)
    assert closed_by is not None
    assert upstream.connections[0].closed_by == "client"
    assert len(upstream.requests) == 1  # one upstream request for all of it
    # Saved by A, read through B.
    with client_for(b, key) as on_b:
        saved = on_b.get(f"/api/conversations/{started['conversation_id']}").json()
    answer = next(m for m in saved["messages"] if m["id"] == started["message_id"])
    assert (answer["status"], answer["content"], answer["run_id"]) == ("stopped", PARTIAL, None)


def test_a_finished_run_replays_whole_on_the_other_process(
    nodes: tuple[list[ServerProcess], str], upstream: FakeUpstream
) -> None:
    (a, b), key = nodes
    started = start_run(a, key)
    with client_for(a, key) as on_a, reading(on_a, started["events_url"]) as stream:
        on_a_events = run_events(stream.to_end())
    with client_for(b, key) as on_b, reading(on_b, started["events_url"]) as stream:
        on_b_events = run_events(stream.to_end())
    assert texts(on_b_events) == ANSWER
    assert [(e.type, e.data, e.last_event_id) for e in on_b_events] == [
        (e.type, e.data, e.last_event_id) for e in on_a_events
    ]
    with client_for(b, key) as on_b:
        state = on_b.get(f"/api/runs/{started['run_id']}").json()
    assert (state["status"], state["text"]) == ("complete", ANSWER)
    assert len(upstream.requests) == 1


def test_another_users_run_is_not_found_on_the_other_process(
    nodes: tuple[list[ServerProcess], str], upstream: FakeUpstream
) -> None:
    (a, b), key = nodes
    upstream.enqueue(STALLED)
    started = start_run(a, key)
    with client_for(b, key) as on_b:
        # Another user, made by the admin, with a key of their own.
        made = on_b.post(
            "/api/admin/users",
            json={"email": "other@cluster.example", "password": "another password"},
        )
        assert made.status_code == 201, made.text
    import httpx

    with httpx.Client(base_url=b.base_url, timeout=30) as other:
        login = other.post(
            "/api/auth/login",
            json={"email": "other@cluster.example", "password": "another password"},
        )
        assert login.status_code == 200, login.text
        for method, path in (
            ("GET", f"/api/runs/{started['run_id']}"),
            ("GET", f"/api/runs/{started['run_id']}/events"),
        ):
            response = other.request(method, path)
            assert response.status_code == 404, (path, response.text)
    with client_for(b, key) as on_b:
        assert on_b.post(f"/api/runs/{started['run_id']}/cancel").json()["status"] == "stopped"


def test_kill_9_of_the_runs_process_ends_the_run_on_the_other(
    nodes: tuple[list[ServerProcess], str], upstream: FakeUpstream
) -> None:
    (a, b), key = nodes
    upstream.enqueue(STALLED)
    started = start_run(a, key)
    with client_for(b, key) as on_b, reading(on_b, started["events_url"]) as stream:
        stream.until_text(PARTIAL)
        a.kill()  # no shutdown code runs on A
        events = run_events(stream.to_end())
    kinds = [e.type for e in events]
    assert kinds[-2:] == ["error", "done"]
    assert data(events[-2])["code"] == "run_lost"
    assert data(events[-1])["status"] == "interrupted"
    assert texts(events) == PARTIAL
    assert ids(events) == list(range(len(events)))
    with client_for(b, key) as on_b:
        conversation = started["conversation_id"]
        saved = on_b.get(f"/api/conversations/{conversation}").json()
        answer = next(m for m in saved["messages"] if m["id"] == started["message_id"])
        # Every token the log held, though no batch was saved (the persist interval is long).
        assert (answer["status"], answer["content"], answer["run_id"]) == (
            "interrupted",
            PARTIAL,
            None,
        )
        # The conversation goes on, on B.
        response = on_b.post(
            f"/api/conversations/{conversation}/messages", json={"content": "again"}
        )
        assert response.status_code in (200, 201, 202), response.text
        with reading(on_b, response.json()["events_url"]) as stream:
            next_events = run_events(stream.to_end())
    assert data(next_events[-1])["status"] == "complete"
    assert texts(next_events) == ANSWER
    sent = upstream.requests[-1].body["messages"]
    assert [m["content"] for m in sent if m["role"] != "system"][-3:] == ["go", PARTIAL, "again"]


def test_disabling_a_user_on_one_process_ends_their_streams_on_the_other(
    nodes: tuple[list[ServerProcess], str], upstream: FakeUpstream
) -> None:
    import httpx

    (a, b), key = nodes
    upstream.enqueue(STALLED)
    with client_for(b, key) as admin_on_b:
        made = admin_on_b.post(
            "/api/admin/users",
            json={"email": "user@cluster.example", "password": "a user's password"},
        )
        assert made.status_code == 201, made.text
        user_id = made.json()["id"]
    with httpx.Client(base_url=a.base_url, timeout=30) as user_on_a:
        login = user_on_a.post(
            "/api/auth/login",
            json={"email": "user@cluster.example", "password": "a user's password"},
        )
        assert login.status_code == 200, login.text
        cid = user_on_a.post("/api/conversations", json={}, headers={"Origin": a.base_url}).json()[
            "id"
        ]
        started = user_on_a.post(
            f"/api/conversations/{cid}/messages",
            json={"content": "go"},
            headers={"Origin": a.base_url},
        )
        assert started.status_code in (200, 201, 202), started.text
        with reading(user_on_a, started.json()["events_url"]) as stream:
            stream.until_text(PARTIAL)
            with client_for(b, key) as admin_on_b:
                disabled = admin_on_b.patch(
                    f"/api/admin/users/{user_id}", json={"status": "disabled"}
                )
                assert disabled.status_code == 200, disabled.text
            # A ends the stream it serves: the revocation reached it through Redis, before the
            # stop of the user's runs (published after it), so no `done` came first.
            events = stream.to_end()
        assert "done" not in [e.type for e in events]
        assert user_on_a.get(f"/api/conversations/{cid}").status_code == 401
    upstream.run(upstream.wait_closed(0), timeout=30)
    assert upstream.connections[0].closed_by == "client"


def test_two_workers_on_one_port_serve_a_run_from_either(
    tmp_path: Path, pg: PostgresServer, redis_server: RedisServer, upstream: FakeUpstream
) -> None:
    """`ssechat serve --workers 2`: each new connection may land on either worker; every one
    of them follows, resumes and stops the same run."""
    from .server_process import ssechat_serve

    database = pg.create_database("workers")
    flush_redis(redis_server)
    env = cluster_env(pg, database, redis_server, upstream.base_url, SSECHAT_RUN_LEASE="2")
    upstream.enqueue(STALLED)
    try:
        with ssechat_serve(env, tmp_path, ("--workers", "2")) as server:
            key = api_key(server.base_url)
            started = start_run(server, key)
            seen: list = []
            for _ in range(6):  # new connections: the kernel spreads them over the workers
                with (
                    client_for(server, key) as client,
                    reading(
                        client, started["events_url"], last_event_id=ids(seen)[-1] if seen else None
                    ) as stream,
                ):
                    stream.next_events()
                    seen += run_events(stream.events)
                    if texts(seen) == PARTIAL:
                        break
            with (
                client_for(server, key) as client,
                reading(client, started["events_url"], last_event_id=ids(seen)[-1]) as stream,
            ):
                stream.until_text(PARTIAL[len(texts(seen)) :])
                seen += run_events(stream.events)
            assert texts(seen) == PARTIAL
            assert ids(seen) == list(range(len(seen)))
            with client_for(server, key) as client:
                stopped = client.post(f"/api/runs/{started['run_id']}/cancel")
            assert stopped.json()["status"] == "stopped"
        upstream.run(upstream.wait_closed(0), timeout=30)
        assert len(upstream.requests) == 1
    finally:
        pg.drop_database(database)
