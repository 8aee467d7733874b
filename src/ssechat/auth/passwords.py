"""Password hashing: argon2id through argon2-cffi, off the event loop.

argon2-cffi's defaults are RFC 9106's second recommended profile (64 MiB, 3 passes, 4 lanes):
about a tenth of a second of one core a hash, which is the point. Hashing and checking run in a
worker thread so that a sign-in never stalls the streams of everyone else. Checking a sign-in
for an email that has no account still checks a password against a fixed hash, so the answer
takes as long as for a wrong password and does not tell which emails exist.

This module must never log a password or a hash.
"""

from __future__ import annotations

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["hash_password", "verify_password"]

_hasher = PasswordHasher()
_UNKNOWN = _hasher.hash("no account has this password: it only takes the time of a check")


async def hash_password(password: str) -> str:
    return await anyio.to_thread.run_sync(_hasher.hash, password)


async def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches the ``stored`` hash; ``None``: no account (always False,
    after the same work)."""
    return await anyio.to_thread.run_sync(_verify, stored, password)


def _verify(stored: str | None, password: str) -> bool:
    try:
        matched = _hasher.verify(stored if stored is not None else _UNKNOWN, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return matched and stored is not None
