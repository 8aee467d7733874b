"""Sign-in attempt limits, per account and per client address, on the ``limits`` library.

Only failed attempts count: a person who signs in often is never locked out, and someone trying
passwords gets ``SSECHAT_LOGIN_LIMIT_ACCOUNT`` tries per account and
``SSECHAT_LOGIN_LIMIT_ADDRESS`` per address in a moving window; past either, every attempt is
refused, right password or not, with how long to wait. The storage is ``limits``' in-memory one
for a single process; a multi-process deployment hands in a shared one (``limits`` has Redis).

This module must never keep a password, and never count an attempt it refused.
"""

from __future__ import annotations

import time

import limits
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from ssechat.errors import RateLimitedError

__all__ = ["LoginLimiter"]


class LoginLimiter:
    def __init__(self, per_account: str, per_address: str, storage: Storage | None = None) -> None:
        self._limiter = MovingWindowRateLimiter(storage or MemoryStorage())
        self._account = limits.parse(per_account)
        self._address = limits.parse(per_address)

    def _keys(self, account: str | None, address: str) -> list[tuple[limits.RateLimitItem, str]]:
        keys = [(self._address, "address:" + address)]
        if account is not None:
            keys.append((self._account, "account:" + account))
        return keys

    async def check(self, account: str | None, address: str) -> None:
        """``RateLimitedError`` (with the seconds to wait) if either limit is used up.

        ``account`` None: an attempt that names no account (first-run setup) is limited per
        address only, so that nobody can lock the setup page for everyone."""
        for item, key in self._keys(account, address):
            if not await self._limiter.test(item, "login", key):
                stats = await self._limiter.get_window_stats(item, "login", key)
                raise RateLimitedError(
                    "too many failed sign-in attempts; try again later",
                    retry_after=max(1.0, stats.reset_time - time.time()),
                )

    async def failed(self, account: str | None, address: str) -> None:
        """Count one failed attempt against both limits."""
        for item, key in self._keys(account, address):
            await self._limiter.hit(item, "login", key)
