"""Disabling an account ends the event streams it has open, on a real server (issue 10).

``ssechat serve`` runs as a process against a fake upstream that sends a few words and then
stays silent until the server leaves, so every stream below is live and would stay open for as
long as the test let it: it ends only because the account was disabled. A stream of each kind
is held open: a run's events with the session cookie, the same with an API key, and a one-shot
``/api/chat`` stream (no run behind it: only the server's register of open streams can end it).
The test awaits each stream's end under a generous ``fail_after``; how fast that happens is the
benchmark's business, not this test's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import pytest

from ssechat.fake_upstream import FakeUpstream, Scenario
from ssechat.sse import Event, EventDecoder

from .server_process import ServerProcess, ssechat_serve

pytestmark = [pytest.mark.anyio, pytest.mark.real_server]

ADMIN_EMAIL, ADMIN_PASSWORD = "admin@streams.example", "the admin's password"
USER_EMAIL, USER_PASSWORD = "user@streams.example", "the user's password"
# A few words, then silence until the client leaves: a stream that never ends by itself.
STALLED = Scenario(text=" ".join(f"word{i}" for i in range(200)), stall_after=5)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with FakeUpstream.running_in_thread(STALLED) as upstream:
        env = {
            "SSECHAT_DATABASE_URL": str(tmp_path / "chat.db"),
            "OPENAI_BASE_URL": upstream.base_url,
            "SSECHAT_MODEL": "gpt-test",
            "SSECHAT_ADMIN_EMAIL": ADMIN_EMAIL,
            "SSECHAT_ADMIN_PASSWORD": ADMIN_PASSWORD,
        }
        with ssechat_serve(env, tmp_path) as running:
            yield running


async def sign_in(client: httpx.AsyncClient, email: str, password: str) -> None:
    """Sign ``client`` in: the session cookie stays in its jar."""
    response = await client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text


async def make_key(client: httpx.AsyncClient) -> str:
    response = await client.post("/api/keys", json={"name": "stream test"})
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


class OpenStream:
    """An event stream being read: its events so far, and whether the server ended it."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.events: list[Event] = []
        self.ended = False
        self._decoder = EventDecoder()
        self._chunks = response.aiter_raw()

    async def read_until(self, wanted: str) -> None:
        """Read until an event of type ``wanted`` has arrived (the stream is live)."""
        while not any(event.type == wanted for event in self.events):
            self.events.extend(self._decoder.feed(await anext(self._chunks)))

    async def read_to_end(self) -> None:
        async for chunk in self._chunks:
            self.events.extend(self._decoder.feed(chunk))
        self.ended = True


@asynccontextmanager
async def stream(
    client: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None
) -> AsyncIterator[OpenStream]:
    async with client.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        yield OpenStream(response)


async def test_disabling_a_user_ends_their_open_streams(server: ServerProcess) -> None:
    base = server.base_url
    async with (
        httpx.AsyncClient(base_url=base, timeout=30) as admin,
        httpx.AsyncClient(base_url=base, timeout=30) as by_cookie,
        httpx.AsyncClient(base_url=base, timeout=30) as by_key,
    ):
        await sign_in(admin, ADMIN_EMAIL, ADMIN_PASSWORD)
        created = await admin.post(
            "/api/admin/users", json={"email": USER_EMAIL, "password": USER_PASSWORD}
        )
        assert created.status_code == 201, created.text
        user_id = created.json()["id"]
        await sign_in(by_cookie, USER_EMAIL, USER_PASSWORD)
        key = await make_key(by_cookie)
        bearer = {"Authorization": f"Bearer {key}"}

        conversation = await by_key.post("/api/conversations", json={}, headers=bearer)
        sent = await by_key.post(
            f"/api/conversations/{conversation.json()['id']}/messages",
            json={"content": "go on"},
            headers=bearer,
        )
        assert sent.status_code == 202, sent.text
        events_url = sent.json()["events_url"]

        async with (
            stream(by_cookie, events_url) as with_cookie,
            stream(by_key, events_url, bearer) as with_key,
            stream(by_key, "/api/chat?message=hello", bearer) as one_shot,
        ):
            # All three are live: the run's first words have come through each.
            await with_cookie.read_until("delta")
            await with_key.read_until("delta")
            await one_shot.read_until("message")

            disabled = await admin.patch(f"/api/admin/users/{user_id}", json={"status": "disabled"})
            assert disabled.status_code == 200, disabled.text
            assert disabled.json()["status"] == "disabled"

            with anyio.fail_after(10):  # a hang fails here; it bounds nothing asserted
                async with anyio.create_task_group() as group:
                    for open_stream in (with_cookie, with_key, one_shot):
                        group.start_soon(open_stream.read_to_end)
            assert (with_cookie.ended, with_key.ended, one_shot.ended) == (True, True, True)
            for ended in (with_cookie, with_key):
                done = [event.data for event in ended.events if event.type == "done"]
                assert '"complete"' not in "".join(done), "the run finished instead of ending"

        # The same credentials are worth nothing now.
        assert (await by_cookie.get("/api/auth/me")).status_code == 401
        assert (await by_key.get("/api/auth/me", headers=bearer)).status_code == 401
        assert (await by_key.get(events_url, headers=bearer)).status_code == 401
        # The admin's own session was not touched.
        assert (await admin.get("/api/auth/me")).status_code == 200
