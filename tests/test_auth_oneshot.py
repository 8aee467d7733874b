"""The stateless ``/api/chat`` stream spends the upstream key like a run: it counts against the
user's live runs while it is open, and a server with accounts off refuses a request that reached
it on an address that is not loopback, however it was started.

Against a real uvicorn (the one-shot stream stays open on a stalled upstream).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.types import Message, Scope

from ssechat.api import create_app
from ssechat.api.guard import RequestGuard
from ssechat.config import Settings
from ssechat.fake_upstream import FakeUpstream

from .conftest import RealServer, run_uvicorn
from .server_process import poll_until

pytestmark = pytest.mark.real_server

ADMIN = {"email": "oneshot@example.com", "password": "one-shot-password"}
STALLED = "fake-tokens-3+stall-2"  # two tokens, then silence until the request is closed


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[RealServer, FakeUpstream, dict[str, str]]]:
    with FakeUpstream.running_in_thread() as upstream:
        settings = Settings(
            database_url=str(tmp_path / "chat.db"),
            web_dir=str(tmp_path / "no-web"),
            openai_base_url=upstream.base_url,
            openai_api_key="sk-one-shot-upstream",
            model=STALLED,
            upstream_max_retries=0,
            max_live_runs_per_user=1,
            admin_email=ADMIN["email"],
            admin_password=ADMIN["password"],
        )
        with run_uvicorn(create_app(settings), lifespan="on") as server:
            with httpx.Client(base_url=server.base_url) as client:
                assert client.post("/api/auth/login", json=ADMIN).status_code == 200
                key = client.post("/api/keys", json={"name": "t"}).json()["key"]
            yield server, upstream, {"Authorization": f"Bearer {key}"}


def test_an_open_chat_stream_holds_one_of_the_users_live_runs(
    served: tuple[RealServer, FakeUpstream, dict[str, str]],
) -> None:
    server, upstream, auth = served
    with httpx.Client(base_url=server.base_url, headers=auth, timeout=30) as client:
        conversation = client.post("/api/conversations", json={}).json()["id"]
        with client.stream("GET", "/api/chat", params={"message": "hold on"}) as held:
            assert held.status_code == 200
            chunks = held.iter_raw()  # kept: a dropped iterator would close the stream
            first = next(chunks)  # the upstream has answered: the stream is live
            assert first.startswith(b"data: ")
            asked = len(upstream.requests)
            refused = client.post(
                f"/api/conversations/{conversation}/messages", json={"content": "and this?"}
            )
            assert refused.status_code == 429
            assert refused.json()["error"]["code"] == "too_many_runs"
            second = client.get("/api/chat", params={"message": "and another"})
            assert second.status_code == 429
            assert len(upstream.requests) == asked  # nothing more went upstream
        # The stream closed: its place is free again once the response has ended (after the
        # upstream request is closed). A refused start changes nothing, so it may be retried.
        upstream.run(upstream.wait_closed(0), timeout=10)
        started: list[httpx.Response] = []

        def a_start_is_accepted() -> bool:
            answer = client.post(
                f"/api/conversations/{conversation}/messages", json={"content": "now"}
            )
            assert answer.status_code in (202, 429), answer.text
            started.append(answer)
            return answer.status_code == 202

        poll_until(a_start_is_accepted, "a start once the chat stream had closed")
        client.post(f"/api/runs/{started[-1].json()['run_id']}/cancel")


@pytest.mark.anyio
async def test_accounts_off_refuses_a_request_that_came_in_on_another_address() -> None:
    answered: list[str] = []

    async def app(scope: Scope, receive: object, send: object) -> None:
        answered.append(scope["path"])

    guard = RequestGuard(app, Settings(auth="off"))
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    def scope(server: tuple[str, int]) -> Scope:
        return {
            "type": "http",
            "method": "GET",
            "path": "/api/conversations",
            "headers": [(b"host", b"127.0.0.1:8000")],
            "server": server,
            "scheme": "http",
        }

    await guard(scope(("10.1.2.3", 8000)), receive, send)
    assert answered == []
    assert sent[0]["status"] == 403
    await guard(scope(("127.0.0.1", 8000)), receive, send)
    await guard(scope(("::1", 8000)), receive, send)
    assert answered == ["/api/conversations", "/api/conversations"]
