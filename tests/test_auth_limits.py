"""Abuse limits: failed sign-ins per account and per client address (429 with Retry-After; a
success is not counted), and the live runs one user may have at once (429 ``too_many_runs``).

In process, with accounts on (``tests.auth_support``); answers come from a fake upstream that
counts every request, so a refused start is seen to send nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest

from ssechat.fake_upstream import FakeUpstream

from .auth_support import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    Account,
    admin_account,
    app_of,
    auth_client,
    auth_settings,
    client_for,
    db_path_of,
    db_snapshot,
    make_user,
    session_token,
)

pytestmark = pytest.mark.anyio

LIVE = "fake-tokens-3+stall-2"  # two tokens, then silence until the run is stopped


def code_of(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


# --- sign-in attempts ----------------------------------------------------------------------


async def test_failed_sign_ins_are_limited_per_account(tmp_path: Path) -> None:
    settings = auth_settings(tmp_path, login_limit_account="3 per 15 minutes")
    right = {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    wrong = {"email": ADMIN_EMAIL.upper(), "password": "not the password"}
    async with auth_client(settings) as client:
        for _ in range(4):  # successes are not counted
            assert (await client.post("/api/auth/login", json=right)).status_code == 200
        for _ in range(3):
            assert (await client.post("/api/auth/login", json=wrong)).status_code == 401
        limited = await client.post("/api/auth/login", json=right)
        assert limited.status_code == 429
        assert code_of(limited) == "rate_limited"
        assert int(limited.headers["Retry-After"]) >= 1
        assert session_token(limited) is None
        # The account is limited from any address; another account is not.
        async with client_for(app_of(client), ("192.0.2.1", 40000)) as elsewhere:
            assert (await elsewhere.post("/api/auth/login", json=right)).status_code == 429
            other = {"email": "nobody@example.com", "password": "not the password"}
            assert (await elsewhere.post("/api/auth/login", json=other)).status_code == 401


async def test_failed_sign_ins_are_limited_per_address(tmp_path: Path) -> None:
    settings = auth_settings(tmp_path, login_limit_address="3 per 15 minutes")
    right = {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    async with auth_client(settings) as client:
        for n in range(3):
            guess = {"email": f"guess-{n}@example.com", "password": "not the password"}
            assert (await client.post("/api/auth/login", json=guess)).status_code == 401
        limited = await client.post("/api/auth/login", json=right)
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) >= 1
        async with client_for(app_of(client), ("192.0.2.1", 40000)) as elsewhere:
            assert (await elsewhere.post("/api/auth/login", json=right)).status_code == 200


# --- live runs -----------------------------------------------------------------------------


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as fake:
        yield fake


async def start(
    client: httpx.AsyncClient, upstream: FakeUpstream, who: Account, conversation_id: str
) -> str:
    """Start a run that stays live; its id, once its request has reached the upstream."""
    asked = len(upstream.requests)
    started = await client.post(
        f"/api/conversations/{conversation_id}/messages",
        json={"content": "go on"},
        headers=who.cookie,
    )
    assert started.status_code == 202, started.text
    with anyio.fail_after(10):
        await upstream.wait_requests(asked + 1)
    run_id: str = started.json()["run_id"]
    return run_id


async def test_a_user_has_at_most_the_live_runs_the_limit_allows(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    settings = auth_settings(
        tmp_path,
        openai_base_url=upstream.base_url,
        openai_api_key="sk-limits-upstream-key",
        model=LIVE,
        upstream_max_retries=0,
        max_live_runs_per_user=1,
        persist_interval=3600,  # no partial save between the snapshots below
    )
    async with auth_client(settings) as client:
        admin = await admin_account(client)
        user = await make_user(client, admin, "busy@example.com")
        other = await make_user(client, admin, "other@example.com")

        async def conversation(who: Account) -> str:
            made = await client.post("/api/conversations", json={}, headers=who.cookie)
            cid: str = made.json()["id"]
            return cid

        first, second = await conversation(user), await conversation(user)
        running = await start(client, upstream, user, first)
        message_id = (await client.get(f"/api/runs/{running}", headers=user.cookie)).json()[
            "message_id"
        ]

        before, asked = db_snapshot(db_path_of(settings)), len(upstream.requests)
        for attempt in (
            client.post(
                f"/api/conversations/{second}/messages",
                json={"content": "one more"},
                headers=user.cookie,
            ),
            client.post(f"/api/messages/{message_id}/regenerate", headers=user.cookie),
        ):
            refused = await attempt
            assert refused.status_code == 429, refused.text
            assert code_of(refused) == "too_many_runs"
            assert int(refused.headers["Retry-After"]) >= 1
        assert db_snapshot(db_path_of(settings)) == before
        assert len(upstream.requests) == asked

        # The limit is each user's own.
        theirs = await start(client, upstream, other, await conversation(other))

        cancelled = await client.post(f"/api/runs/{running}/cancel", headers=user.cookie)
        assert cancelled.json()["status"] == "stopped"
        again = await start(client, upstream, user, second)
        for who, run_id in ((user, again), (other, theirs)):
            await client.post(f"/api/runs/{run_id}/cancel", headers=who.cookie)
