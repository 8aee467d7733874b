"""Sign-in limits shared through Redis (``SSECHAT_REDIS_URL``): failed attempts counted in one
process are counted in every other, and with Redis unreachable a sign-in is refused with 503
(the limiter fails closed) until Redis is back.

Against a real ``redis-server`` (``tests.services``): one for the module, and a fresh one for
each test that stops it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ssechat.auth.limiter import KEY_PREFIX, LoginLimiter
from ssechat.config import Settings
from ssechat.errors import RateLimitedError, ServiceUnavailableError

from .auth_support import ADMIN_EMAIL, ADMIN_PASSWORD, app_of, auth_client, auth_settings
from .services import RedisServer, running_redis

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own, to stop and start."""
    with running_redis(tmp_path) as server:
        yield server


def limit_settings(redis_url: str) -> Settings:
    return Settings(
        redis_url=redis_url,
        login_limit_account="3 per 15 minutes",
        login_limit_address="100 per 15 minutes",
    )


@pytest.fixture
async def two_processes(redis: RedisServer) -> AsyncIterator[tuple[LoginLimiter, LoginLimiter]]:
    """Two limiters made as two server processes make theirs, on one Redis."""
    settings = limit_settings(redis.url)
    first, second = LoginLimiter.for_settings(settings), LoginLimiter.for_settings(settings)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


def fresh(name: str) -> str:
    # The module's Redis outlives each test: every test limits accounts of its own.
    return f"{name}-{uuid.uuid4().hex}"


async def test_failed_attempts_in_one_process_count_in_another(
    two_processes: tuple[LoginLimiter, LoginLimiter],
) -> None:
    first, second = two_processes
    account, address = fresh("account"), fresh("address")
    await first.failed(account, address)
    await second.failed(account, address)
    await first.check(account, address)  # two of three used, in two processes
    await second.failed(account, address)
    with pytest.raises(RateLimitedError) as in_first:
        await first.check(account, address)
    with pytest.raises(RateLimitedError):
        await second.check(account, address)
    assert in_first.value.retry_after is not None
    assert in_first.value.retry_after >= 1
    # Another account is not limited, in either process.
    await first.check(fresh("other"), address)
    await second.check(fresh("other"), address)


async def test_the_counts_live_in_redis_under_the_ssechat_prefix(
    redis: RedisServer, two_processes: tuple[LoginLimiter, LoginLimiter]
) -> None:
    from redis.asyncio import Redis

    first, _ = two_processes
    account = fresh("account")
    await first.failed(account, fresh("address"))
    client = Redis.from_url(redis.url)
    try:
        keys = [key.decode() async for key in client.scan_iter(match=f"{KEY_PREFIX}:*")]
    finally:
        await client.aclose()
    assert any(account in key for key in keys), keys


async def test_without_redis_url_the_limiter_counts_in_memory_per_process() -> None:
    settings = Settings(login_limit_account="1 per 15 minutes")
    first, second = LoginLimiter.for_settings(settings), LoginLimiter.for_settings(settings)
    await first.failed("account", "address")
    with pytest.raises(RateLimitedError):
        await first.check("account", "address")
    await second.check("account", "address")  # its own memory: nothing counted there
    await first.close()
    await second.close()


async def test_redis_down_refuses_sign_in_checks_and_recovers(own_redis: RedisServer) -> None:
    limiter = LoginLimiter.for_settings(limit_settings(own_redis.url))
    try:
        account, address = fresh("account"), fresh("address")
        await limiter.failed(account, address)  # a pooled connection now exists
        own_redis.stop()
        with pytest.raises(ServiceUnavailableError) as refused:
            await limiter.check(account, address)
        with pytest.raises(ServiceUnavailableError):
            await limiter.failed(account, address)
        assert refused.value.status_code == 503
        assert refused.value.message.startswith("sign-in is unavailable")
        assert str(own_redis.port) not in refused.value.message  # never the URL
        own_redis.start()  # same port, empty: this Redis keeps nothing on disk
        await limiter.check(account, address)
        for _ in range(3):
            await limiter.failed(account, address)
        with pytest.raises(RateLimitedError):
            await limiter.check(account, address)
    finally:
        await limiter.close()


async def test_sign_in_with_redis_down_is_a_503_not_a_500(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    settings = auth_settings(tmp_path, redis_url=own_redis.url)
    right = {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    wrong = {"email": ADMIN_EMAIL, "password": "not the password"}
    async with auth_client(settings) as client:
        try:
            assert (await client.post("/api/auth/login", json=right)).status_code == 200
            own_redis.stop()
            for body in (right, wrong):
                refused = await client.post("/api/auth/login", json=body)
                assert refused.status_code == 503, refused.text
                assert refused.json()["error"]["code"] == "unavailable"
                assert "sign-in is unavailable" in refused.json()["error"]["message"]
                assert "ssechat_session" not in refused.headers.get("set-cookie", "")
            own_redis.start()
            assert (await client.post("/api/auth/login", json=right)).status_code == 200
        finally:
            # Services.close does not close the account service yet (the lead's part);
            # closing twice is harmless.
            await app_of(client).state.accounts.close()
