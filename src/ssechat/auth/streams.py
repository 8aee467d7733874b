"""The open event streams of each user, so that revoking credentials ends them at once.

Signing out ends the streams opened with that session; disabling an account, changing its
password or deleting it ends all of its streams (but those of the session that changed the
password). A stream is registered when its response starts and forgets itself when it ends.

This registry is in one process's memory: the streams a process serves are its own. It must
never hold a stream after it ended, nor cost anything per token.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["StreamRegistry", "Watch"]

Stop = Callable[[], None]
Watch = Callable[[Stop], Callable[[], None]]
"""Given a stream's ``stop``, register it; returns what to call when the stream ends."""


class StreamRegistry:
    def __init__(self) -> None:
        # user id -> (stop, credential) of each open stream
        self._streams: dict[str, dict[int, tuple[Stop, str]]] = {}
        self._next = 0

    def add(self, user_id: str, credential: str, stop: Stop) -> Callable[[], None]:
        """Register a stream; returns the function that forgets it (call it when it ends)."""
        key = self._next
        self._next += 1
        self._streams.setdefault(user_id, {})[key] = (stop, credential)

        def forget() -> None:
            streams = self._streams.get(user_id)
            if streams is not None:
                streams.pop(key, None)
                if not streams:
                    del self._streams[user_id]

        return forget

    def end(self, user_id: str, *, credential: str | None = None, keep: str | None = None) -> int:
        """End the user's streams (only those of ``credential`` if given; not those of
        ``keep``); return how many."""
        ended = 0
        for stop, used in list(self._streams.get(user_id, {}).values()):
            if (credential is not None and used != credential) or (keep and used == keep):
                continue
            stop()
            ended += 1
        return ended
