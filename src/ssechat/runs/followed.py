"""``FollowedRun``: a run another process drives, as this process sees it through Redis.

It is a ``Run`` whose log is this process's mirror of the run's Redis stream (a ``FollowedLog``,
one per run per process, shared by every local client), so the API follows, resumes and shows it
exactly as a run of its own: the same frames, the same ids. Its state is read off the events the
mirror has seen: ``done`` gives the status, finish reason and usage, ``error`` the error. It has
no task: stopping it is asking its node (``Cluster.publish("cancel", …)``).

This module must never write to the run's log nor to the store: the run's own node does.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Literal, get_args

from ssechat.errors import ConflictError, NotFoundError, ServiceUnavailableError
from ssechat.runs.cluster import Cluster, RunInfo
from ssechat.runs.manager import Run, RunSpec, RunStatus
from ssechat.runs.redis_log import FollowedLog, RedisLogs
from ssechat.runs.tools import calls_from_events

__all__ = ["FollowedRun", "Followers"]

_STATUSES: frozenset[str] = frozenset(get_args(RunStatus))


class FollowedRun(Run):
    def __init__(self, info: RunInfo, log: FollowedLog) -> None:
        spec = RunSpec(
            conversation_id=info.conversation_id,
            user_message_id=info.user_message_id,
            message_id=info.message_id,
            model=info.model,
            messages=(),
            owner=info.owner,
        )
        super().__init__(info.run_id, spec, log)
        self.mirror = log
        self._watch = asyncio.get_running_loop().create_task(
            self._until_done(), name=f"followed-{info.run_id}"
        )

    async def _until_done(self) -> None:
        # Follow the mirror to its end, as a reader would, then take the final state from it.
        log = self.mirror
        reader = log.reader(await log.last_id())
        loop = asyncio.get_running_loop()
        try:
            while True:
                reader.take()
                if reader.ended:
                    break
                waiter: asyncio.Future[None] = loop.create_future()
                reader.notify(waiter)
                await waiter
        finally:
            reader.close()
        self._settle()

    def _settle(self) -> None:
        done = self.mirror.done or {}
        status = done.get("status")
        self.status = status if status in _STATUSES and status != "running" else "interrupted"
        self.finished.set()

    def outcome(self) -> tuple[str | None, Any, Any]:
        # As the run's own process wrote them in its `done` and `error` events.
        done = self.mirror.done
        if done is None:
            return None, None, self.mirror.error
        return done.get("finish_reason"), done.get("usage"), self.mirror.error

    def tool_calls(self) -> list[dict[str, Any]]:
        # Read off the mirror's events: the run's process keeps the calls' state, not this one.
        return list(self._calls().values())

    def _calls(self) -> dict[str, dict[str, Any]]:
        return calls_from_events(self.mirror.events(0, self.mirror.event_count))

    def close(self) -> None:
        self._watch.cancel()


class Followers:
    """The runs of other processes that this one follows, by id: one ``FollowedRun`` (and one
    mirror) per run, kept ``keep`` seconds after it ended."""

    def __init__(self, cluster: Cluster, logs: RedisLogs, *, keep: float = 60.0) -> None:
        self.cluster = cluster
        self.logs = logs
        self.keep = keep
        self._runs: dict[str, FollowedRun] = {}

    async def get(self, run_id: str) -> FollowedRun | None:
        """The run, if Redis knows it and still holds its log; None otherwise."""
        run = self._runs.get(run_id)
        if run is not None:
            return run
        info = await self.cluster.find(run_id)
        if info is None:
            return None
        log = await self.logs.follow(run_id, known=True)
        if log is None:
            return None
        run = self._runs.get(run_id)  # another request made it while this one waited
        if run is None:
            run = self._runs[run_id] = FollowedRun(info, log)
            run._watch.add_done_callback(lambda _: self._forget_later(run_id))
        return run

    async def for_message(self, message_id: str) -> FollowedRun | None:
        """The live run of an answer, on any process; None if there is none."""
        run_id = await self.cluster.run_for_message(message_id)
        return await self.get(run_id) if run_id is not None else None

    async def cancel(self, run: FollowedRun, *, patience: float) -> None:
        """Ask the run's node to stop it, and wait (up to ``patience`` seconds) for its end:
        the ask is repeated every second, as a control message can be lost while Redis
        reconnects; a dead node's run is ended by a sweeper within the lease."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience
        while not run.finished.is_set() and loop.time() < deadline:
            await self.cluster.publish("cancel", run.id)
            try:
                await asyncio.wait_for(run.finished.wait(), timeout=1.0)
            except TimeoutError:
                continue

    async def decide(
        self, run: FollowedRun, call_id: str, approve: bool, *, patience: float
    ) -> Literal["approved", "denied"]:
        """Pass a decision on a tool call to the run's process, and answer once its
        ``tool_decision`` event is back (``ConflictError`` if the call was decided otherwise
        or is not waiting; ``ServiceUnavailableError`` if no answer comes within ``patience``)."""
        call = run._calls().get(call_id)
        if call is None:
            raise NotFoundError(f"tool call {call_id!r} not found in this run")
        if call["approval"] != "ask" or call["decision"] is not None or run.finished.is_set():
            raise ConflictError(
                "this tool call is not waiting for a decision "
                f"({call['decision'] or 'it does not ask'})"
            )
        wanted: Literal["approved", "denied"] = "approved" if approve else "denied"
        message = {"run_id": run.id, "call_id": call_id, "approve": approve}
        await self.cluster.publish("tool-decision", message)
        mirror = run.mirror
        try:
            async with asyncio.timeout(patience):
                while (decision := run._calls()[call_id]["decision"]) is None:
                    if mirror.ended:
                        raise ConflictError("the run ended before the decision reached it")
                    await mirror.wait_for(mirror.event_count)
        except TimeoutError:
            raise ServiceUnavailableError(
                "the process running this answer did not take the decision; try again"
            ) from None
        if decision != wanted:
            raise ConflictError(f"this tool call was {decision} meanwhile")
        return wanted

    def _forget_later(self, run_id: str) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closing
            asyncio.get_running_loop().call_later(self.keep, self._runs.pop, run_id, None)

    def close(self) -> None:
        for run in self._runs.values():
            run.close()
        self._runs.clear()
