"""Sign-in attempt limits, per account and per client address, on the ``limits`` library.

Only failed attempts count: a person who signs in often is never locked out, and someone trying
passwords gets ``SSECHAT_LOGIN_LIMIT_ACCOUNT`` tries per account and
``SSECHAT_LOGIN_LIMIT_ADDRESS`` per address in a moving window; past either, every attempt is
refused, right password or not, with how long to wait.

Where the attempts are counted (``LoginLimiter.for_settings``): in this process's memory by
default; in Redis when ``SSECHAT_REDIS_URL`` is set, so that every process behind a load balancer
counts the same attempts (with memory storage, N processes would grant N times the tries). When
Redis cannot be reached the limiter fails closed: a sign-in is refused with
``ServiceUnavailableError`` (503), never let through uncounted, since an attacker who could make
Redis unreachable would otherwise get unlimited guesses.

This module must never keep a password, never count an attempt it refused, and never show the
Redis URL (it may hold a password).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import limits
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from ssechat.config import Settings
from ssechat.errors import RateLimitedError, ServiceUnavailableError

__all__ = ["KEY_PREFIX", "LoginLimiter"]

KEY_PREFIX = "ssechat-limits"
"""The prefix of the limiter's keys in Redis (beside the run logs in the same database)."""

# A sign-in waits at most this long for Redis before it is refused: a blackholed Redis must not
# hold every sign-in request open.
REDIS_TIMEOUT = 2.0

UNAVAILABLE = "sign-in is unavailable: its attempt counter (Redis) cannot be reached; try again"


class LoginLimiter:
    def __init__(
        self,
        per_account: str,
        per_address: str,
        storage: Storage | None = None,
        *,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._limiter = MovingWindowRateLimiter(storage or MemoryStorage())
        self._account = limits.parse(per_account)
        self._address = limits.parse(per_address)
        self._on_close = on_close

    @classmethod
    def for_settings(cls, settings: Settings) -> LoginLimiter:
        """The limiter ``settings`` ask for: shared through Redis when ``redis_url`` is set,
        else in memory. Nothing connects until the first attempt; ``close()`` when done."""
        if not settings.redis_url:
            return cls(settings.login_limit_account, settings.login_limit_address)
        from redis.asyncio import ConnectionPool
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # Our own pool, handed to limits, so that closing it is ours to do (limits has no close).
        # One immediate retry: after a Redis restart the first command on a pooled connection
        # fails, and a fresh connection then succeeds; no backoff, a person is waiting.
        pool = ConnectionPool.from_url(
            settings.redis_url,
            socket_connect_timeout=REDIS_TIMEOUT,
            socket_timeout=REDIS_TIMEOUT,
            retry=Retry(NoBackoff(), 1),
        )
        options: dict[str, Any] = {"connection_pool": pool}
        storage = RedisStorage(
            settings.redis_url,
            wrap_exceptions=True,  # every Redis failure becomes limits' StorageError
            implementation="redispy",
            key_prefix=KEY_PREFIX,
            **options,
        )
        return cls(
            settings.login_limit_account,
            settings.login_limit_address,
            storage,
            on_close=pool.aclose,
        )

    async def close(self) -> None:
        """Close the connections to Redis, if any. Idempotent."""
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            await on_close()

    def _keys(self, account: str | None, address: str) -> list[tuple[limits.RateLimitItem, str]]:
        keys = [(self._address, "address:" + address)]
        if account is not None:
            keys.append((self._account, "account:" + account))
        return keys

    async def check(self, account: str | None, address: str) -> None:
        """``RateLimitedError`` (with the seconds to wait) if either limit is used up;
        ``ServiceUnavailableError`` if the shared counter cannot be read.

        ``account`` None: an attempt that names no account (first-run setup) is limited per
        address only, so that nobody can lock the setup page for everyone."""
        try:
            for item, key in self._keys(account, address):
                if not await self._limiter.test(item, "login", key):
                    stats = await self._limiter.get_window_stats(item, "login", key)
                    raise RateLimitedError(
                        "too many failed sign-in attempts; try again later",
                        retry_after=max(1.0, stats.reset_time - time.time()),
                    )
        except StorageError:
            raise ServiceUnavailableError(UNAVAILABLE) from None

    async def failed(self, account: str | None, address: str) -> None:
        """Count one failed attempt against both limits (``ServiceUnavailableError`` if it
        cannot be counted: the attempt failed all the same, and the caller says so)."""
        try:
            for item, key in self._keys(account, address):
                await self._limiter.hit(item, "login", key)
        except StorageError:
            raise ServiceUnavailableError(UNAVAILABLE) from None
