"""Random secrets and their stored hashes: session tokens, API keys, setup tokens.

Each is 256 random bits from ``secrets``, URL-safe. The store keeps only SHA-256 of it: a secret
this long needs no slow hash (nobody can guess one to test against a leaked hash), and a plain
hash keeps the per-request check cheap. API keys start with ``ssk_`` so a key pasted in the
wrong place is recognisable (and secret scanners can be taught the pattern); their visible
prefix is the first 12 characters. This module must never log or store a secret itself.
"""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["KEY_PREFIX", "hash_secret", "new_api_key", "new_token", "prefix_of"]

KEY_PREFIX = "ssk_"
_PREFIX_LENGTH = 12


def new_token() -> str:
    """A session or setup token: 256 random bits, 43 URL-safe characters."""
    return secrets.token_urlsafe(32)


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def prefix_of(key: str) -> str:
    """What may be shown of a key: its first characters."""
    return key[:_PREFIX_LENGTH]


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()
