"""The page cursor of the conversation list: the (updated_at, id) key of the last row sent.

It is opaque to clients (URL-safe base64 of a small JSON array) and checked on the way back in:
anything that is not a cursor this module made is an ``InvalidRequestError``. Pure: this module
must never touch a database.
"""

from __future__ import annotations

import base64
import binascii
import json
import math

from ssechat.errors import InvalidRequestError

__all__ = ["decode_cursor", "encode_cursor"]

_MALFORMED = "cursor is malformed; pass the next_cursor a previous page returned"


def encode_cursor(updated_at: float, last_id: str) -> str:
    raw = json.dumps([updated_at, last_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """The (updated_at, id) key in ``cursor``; ``InvalidRequestError`` if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        updated_at, last_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError, RecursionError):
        raise InvalidRequestError(_MALFORMED) from None
    if (
        isinstance(updated_at, bool)
        or not isinstance(updated_at, int | float)
        or not math.isfinite(updated_at)
        or not isinstance(last_id, str)
    ):
        raise InvalidRequestError(_MALFORMED)
    # json.dumps writes a float's shortest repr, so the key comes back exactly.
    return float(updated_at), last_id
