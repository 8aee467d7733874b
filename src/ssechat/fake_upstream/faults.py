"""The faults the fake upstream plays: error statuses, error frames, resets and stalls.

``StatusFaults`` decides which chat requests get a scenario's HTTP error status and writes that
answer; ``StreamFaults`` is one answer's plan of in-stream faults, due at token (or frame)
positions, and runs the one due. Split writes (``split``, ``chop``) are not here: they are a way
of writing a frame, in ``http11.write_frame``.

A fault never decides what the answer says (``answers`` does), and never records a connection's
end by itself: a reset goes through the ``reset`` callable the server gives, which records it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

from ssechat.fake_upstream import http11, wire
from ssechat.fake_upstream.scenario import Scenario

__all__ = ["DEFAULT_STREAM_ERROR", "Sleep", "StatusFaults", "StreamFaults", "stall"]

DEFAULT_STREAM_ERROR = "The server had an error while processing your request."

Sleep = Callable[[float], Awaitable[None]]


class StatusFaults:
    """Which requests get their scenario's error ``status``, counted per scenario.

    A scenario is a hashable value, so ``status_times`` counts the requests served by equal
    scenarios, whether they came from the queue, the default or a model name.
    """

    def __init__(self) -> None:
        self._failures: Counter[Scenario] = Counter()

    def take(self, scenario: Scenario) -> bool:
        """Whether this request fails with the scenario's status (and count it if so)."""
        if scenario.status is None:
            return False
        if scenario.status_times is None:
            return True
        if self._failures[scenario] >= scenario.status_times:
            return False
        self._failures[scenario] += 1
        return True

    @staticmethod
    async def send(writer: asyncio.StreamWriter, scenario: Scenario, keep_alive: bool) -> None:
        """Write the scenario's status with an OpenAI-style JSON error and its headers."""
        assert scenario.status is not None
        headers = list(scenario.headers)
        if scenario.retry_after is not None:
            headers.append(("retry-after", scenario.retry_after))
        if scenario.retry_after_ms is not None:
            headers.append(("retry-after-ms", scenario.retry_after_ms))
        error = wire.error_body(scenario.status, scenario.error_message)
        await http11.send_json(writer, scenario.status, error, keep_alive, headers)


class StreamFaults:
    """The in-stream faults of one answer: a stall, an error frame, a reset.

    Positions count the answer's tokens (the leading role chunk is position -1) or a replay's
    frames. A fault fires when the position reaches it, or just before the body ends if the
    answer was shorter; at one position the order is stall, then error, then reset.
    """

    __slots__ = ("_keep_alive", "_reset", "_sleep", "_writer", "positions", "scenario")

    def __init__(
        self,
        scenario: Scenario,
        writer: asyncio.StreamWriter,
        keep_alive: bool,
        *,
        reset: Callable[[], Awaitable[None]],
        sleep: Sleep,
    ) -> None:
        self.scenario = scenario
        # The positions where something may fire before the end: the stream checks this set
        # per frame, which costs far less than a call that finds nothing due.
        self.positions = frozenset(
            at
            for at in (scenario.stall_after, scenario.error_after, scenario.reset_after)
            if at is not None
        )
        self._writer = writer
        self._keep_alive = keep_alive
        self._reset = reset
        self._sleep = sleep

    async def run(self, position: int, *, final: bool) -> bool | None:
        """Run the faults due at ``position``: None to go on, else whether to keep the
        connection (the body has ended or the connection is gone)."""
        scenario = self.scenario

        def due(at: int | None) -> bool:
            return at is not None and (position == at or (final and position < at))

        if due(scenario.stall_after):
            await stall(scenario.stall_for, self._sleep)
        if due(scenario.error_after):
            writer = self._writer
            message = scenario.error_message or DEFAULT_STREAM_ERROR
            await http11.write_frame(writer, wire.error_frame(message), None, None)
            if scenario.done_after_error:
                await http11.write_frame(writer, wire.DONE_FRAME, None, None)
            writer.write(wire.CHUNKED_END)
            await writer.drain()
            return self._keep_alive
        if due(scenario.reset_after):
            await self._reset()
            return False
        return None

    async def before_completion(self) -> bool:
        """``stream: false`` honours a stall and a reset, before answering; return whether
        the connection was reset."""
        scenario = self.scenario
        if scenario.stall_after is not None:
            await stall(scenario.stall_for, self._sleep)
        if scenario.reset_after is not None:
            await self._reset()
            return True
        return False


async def stall(seconds: float | None, sleep: Sleep) -> None:
    """Send nothing for ``seconds``, or (``None``) until cancelled: the client leaves or the
    server stops."""
    if seconds is None:
        await asyncio.get_running_loop().create_future()
    else:
        await sleep(seconds)
