"""PostgreSQL stopped and started again under a running ssechat: the store says "unavailable"
(``ServiceUnavailableError``, 503 at the API, never a driver error nor a 500) and recovers by
itself once the server is back, without being reopened.

These tests stop their own server (not the session's one the store suite shares), and restart it
on the same port and data.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from ssechat.errors import ServiceUnavailableError
from ssechat.store import SQLStore, Store

from .auth_support import admin_account, auth_client, auth_settings, bearer, create_key
from .services import PostgresServer, running_postgres
from .store_support import OWNER

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    with running_postgres() as started:
        yield started


@pytest.fixture
def url(server: PostgresServer) -> Iterator[str]:
    server.start()  # a test that failed midway may have left it stopped
    name = server.create_database()
    try:
        yield server.url(name)
    finally:
        server.start()
        server.drop_database(name)


@pytest.fixture
async def store(url: str) -> AsyncIterator[Store]:
    async with await SQLStore.open(url) as opened:
        yield opened


async def stop(server: PostgresServer) -> None:
    await anyio.to_thread.run_sync(server.stop)


async def start(server: PostgresServer) -> None:
    await anyio.to_thread.run_sync(server.start)


async def test_the_store_is_unavailable_while_postgres_is_down_then_recovers(
    server: PostgresServer, store: Store
) -> None:
    conversation = await store.create_conversation(owner=OWNER, title="kept")
    await store.get_conversation(conversation.id, owner=OWNER)  # a reader connection too
    await stop(server)

    with anyio.fail_after(30):
        # Writes and reads alike, on connections made before (now dead) and new ones (refused).
        for _ in range(2):
            with pytest.raises(ServiceUnavailableError, match="database is unreachable"):
                await store.create_conversation(owner=OWNER)
            with pytest.raises(ServiceUnavailableError, match="database is unreachable"):
                await store.get_conversation(conversation.id, owner=OWNER)

    await start(server)
    with anyio.fail_after(30):
        assert (await store.get_conversation(conversation.id, owner=OWNER)).title == "kept"
        made = await store.create_conversation(owner=OWNER, title="after")
        page, _ = await store.list_conversations(owner=OWNER)
    assert [c.id for c in page] == [made.id, conversation.id]


async def test_a_restart_between_two_operations_costs_no_failure(
    server: PostgresServer, store: Store
) -> None:
    conversation = await store.create_conversation(owner=OWNER)
    await store.list_conversations(owner=OWNER)
    await stop(server)
    await start(server)  # every connection the store holds is now dead
    with anyio.fail_after(30):
        # Nothing was committed on a connection that turned out dead: run again on a new one.
        await store.update_conversation(conversation.id, owner=OWNER, title="written")
        page, _ = await store.list_conversations(owner=OWNER)
    assert [c.title for c in page] == ["written"]


async def test_the_api_answers_503_while_postgres_is_down(
    server: PostgresServer, url: str, tmp_path: Path
) -> None:
    settings = auth_settings(tmp_path, database_url=url)
    async with auth_client(settings) as client:
        admin = await admin_account(client)
        warm = (await create_key(client, admin.cookie, "warm"))["key"]
        cold = (await create_key(client, admin.cookie, "cold"))["key"]  # never used before
        response = await client.get("/api/conversations", headers=bearer(warm))
        assert response.status_code == 200, response.text

        await stop(server)
        with anyio.fail_after(30):
            for key in (warm, cold):
                response = await client.get("/api/conversations", headers=bearer(key))
                assert response.status_code == 503, response.text
                error = response.json()["error"]
                assert error["code"] == "unavailable"
                assert server.PASSWORD not in response.text
                assert f":{server.port}" not in response.text
            health = await client.get("/api/health")
            assert health.status_code == 200, health.text

        await start(server)
        with anyio.fail_after(30):
            for key in (warm, cold):
                response = await client.get("/api/conversations", headers=bearer(key))
                assert response.status_code == 200, response.text
