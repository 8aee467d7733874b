"""GET /api/search: pages of hits with plain-text snippets, its 400s, and (hypothesis) that no
query string makes a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio.from_thread
import anyio.to_thread
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssechat.config import Settings
from ssechat.store import LOCAL_OWNER, Store

from .api_support import api_client

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    config = Settings(
        database_url=str(tmp_path / "chat.db"),
        web_dir=str(tmp_path / "no-web"),
        auth="off",
        allowed_hosts="test",
    )
    async with api_client(config) as client:
        yield client


def store_of(client: httpx.AsyncClient) -> Store:
    store: Store = client.app.state.service.store  # type: ignore[attr-defined]
    return store


async def say(client: httpx.AsyncClient, text: str, *, title: str, owner: str = LOCAL_OWNER) -> str:
    store = store_of(client)
    conversation = await store.create_conversation(title=title, owner=owner)
    await store.start_exchange(conversation.id, owner=owner, user_content=text, model="demo")
    return conversation.id


async def search(client: httpx.AsyncClient, **params: Any) -> httpx.Response:
    return await client.get("/api/search", params=params)


async def test_a_hit_carries_its_conversation_message_and_plain_snippet(
    client: httpx.AsyncClient,
) -> None:
    mine = await say(client, "try <script>alert(1)</script> here", title="XSS notes")
    await say(client, "someone else's alert", title="theirs", owner="somebody-else")
    response = await search(client, q="alert")
    assert response.status_code == 200
    body = response.json()
    assert body["next_cursor"] is None
    [hit] = body["results"]
    assert (hit["conversation_id"], hit["title"], hit["role"]) == (mine, "XSS notes", "user")
    assert hit["message_id"] is not None
    assert hit["updated_at"].endswith("Z")
    assert hit["snippet"] == [
        {"text": "try <script>", "match": False},
        {"text": "alert", "match": True},
        {"text": "(1)</script> here", "match": False},
    ]


async def test_a_title_hit_has_no_message(client: httpx.AsyncClient) -> None:
    titled = await say(client, "body", title="Quarterly report")
    [hit] = (await search(client, q="quarter*")).json()["results"]
    assert (hit["conversation_id"], hit["message_id"], hit["role"]) == (titled, None, None)
    assert hit["snippet"][0] == {"text": "Quarterly", "match": True}


async def test_pages_and_their_cursor(client: httpx.AsyncClient) -> None:
    made = {await say(client, f"lantern {i}", title=f"t{i}") for i in range(5)}
    first = (await search(client, q="lantern", limit=2)).json()
    assert len(first["results"]) == 2
    assert first["next_cursor"]
    seen = [hit["conversation_id"] for hit in first["results"]]
    cursor = first["next_cursor"]
    while cursor:
        page = (await search(client, q="lantern", limit=2, cursor=cursor)).json()
        seen += [hit["conversation_id"] for hit in page["results"]]
        cursor = page["next_cursor"]
    assert sorted(seen) == sorted(made)


@pytest.mark.parametrize(
    "params",
    [{"q": ""}, {"q": "   "}, {"q": "\t\n"}, {"q": "x" * 501}, {"q": "a", "cursor": "bad"}],
)
async def test_bad_queries_are_400(client: httpx.AsyncClient, params: dict[str, str]) -> None:
    response = await search(client, **params)
    assert response.status_code == 400
    assert set(response.json()["error"]) >= {"code", "message"}


@pytest.mark.parametrize("limit", [0, 51])
async def test_a_limit_out_of_range_is_refused(client: httpx.AsyncClient, limit: int) -> None:
    assert (await search(client, q="a", limit=limit)).status_code in (400, 422)


async def test_a_query_of_500_characters_is_taken(client: httpx.AsyncClient) -> None:
    await say(client, "needle", title="t")
    response = await search(client, q="needle " + "y" * 493)
    assert (response.status_code, response.json()["results"]) == (200, [])


async def test_any_query_is_200_or_400_never_500(client: httpx.AsyncClient) -> None:
    await say(client, 'alpha "beta" (gamma) -delta NEAR/2 x:* & | ! <->', title="ops: *^")
    answers: list[int] = []

    @settings(
        max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(
        st.text(max_size=520) | st.text(alphabet="\"*()-:^&|!<>\\\x00 'aNOTR🙂\ue000", max_size=40)
    )
    def check(query: str) -> None:
        answers.append(query_status(query))

    # hypothesis drives a sync function: it runs on a worker thread, and each example's
    # request runs back on this test's event loop (anyio.from_thread.run).
    def query_status(query: str) -> int:
        return anyio.from_thread.run(_status, client, query)

    await anyio.to_thread.run_sync(check)
    assert len(answers) > 0
    assert set(answers) <= {200, 400}


async def _status(client: httpx.AsyncClient, query: str) -> int:
    response = await client.get("/api/search", params={"q": query})
    if response.status_code == 200:
        for hit in response.json()["results"]:
            assert all(isinstance(part["text"], str) for part in hit["snippet"])
    return response.status_code
