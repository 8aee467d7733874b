"""What a stream response reads: ``FrameSource``, a cursor on encoded SSE frames.

A source is not a task nor an async iterator: ``take`` returns everything pending, joined into
one ``bytes``, and ``notify`` resolves a future when more comes. The response that owns a source
sends whatever arrived since its last wake-up in one write from one wake-up of its own task, and
a reader that fell behind catches up in a few large writes instead of one write per frame.

Its implementations: a run log's readers (``ssechat.runs.log``), the run subscription that adds
``retry`` in front (``ssechat.runs.manager.Subscription``) and the pump that drains any async
iterable (``ssechat.responses``). ``take`` is synchronous on purpose: it reads memory the source
already holds. A source whose frames come over a network (a run log in Redis) fills that memory
from a follower task and resolves the futures it was given in ``notify`` once it has; the
waiting happens there, never inside ``take``.

This is a base module: it imports nothing of ssechat, and must never do IO or hold state.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

__all__ = ["FrameSource"]


class FrameSource(Protocol):
    """Encoded frames to send, appended by someone else."""

    def take(self) -> bytes:
        """Everything pending, joined (``b""`` when nothing is); moves the cursor past it."""
        ...

    @property
    def ended(self) -> bool:
        """Nothing more will come and nothing is pending."""
        ...

    def notify(self, waiter: asyncio.Future[None]) -> None:
        """Resolve ``waiter`` (unless already done) when a frame is pending or the source ends;
        at once if one already is. The caller owns the future: it may resolve or cancel it too,
        so a source must never resolve a future that is done."""
        ...

    def close(self) -> None:
        """The reader is done with the source; idempotent."""
        ...
