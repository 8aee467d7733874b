"""Run logs in Redis Streams: one stream per run, so any process can follow, resume and end a run.

The owner of a run (the process that calls its upstream) writes through a ``RedisRunLog``: every
append goes at once into a local ``MemoryRunLog`` (which assigns the ids 0, 1, 2… and which this
process's readers read with no round trip) and is then copied to the stream
``{prefix}run:{run_id}:log`` by ONE flusher task per process (per ``RedisLogs``). A writer with
something unsent puts itself in the flusher's queue (once: a flag); the flusher takes the whole
queue and makes ONE call (a Lua script, ``_FLUSH_SCRIPT``) holding, per queued run, one ``XADD``
of everything the run appended since its last entry and, for a closed run, its ``PEXPIRE``, then
repeats while anything is queued. One call in flight at most and no timer: deltas that arrive
together become one entry, and runs whose tokens arrive alone still share one round trip and one
wake-up (one ``XADD`` round trip per token and run, before). An entry's fields are ``f`` (its
first id) and ``b`` (an orjson list of ``[kind, payload]``: ``["delta", text]``, ``["reasoning",
text]``, else ``[event, data]``); its entry ID is ``"{last id + 1}-0"``, so entry IDs increase
with the run's ids and a reader can tell which ids it already holds.

Another process follows the run through ``RedisLogs.follow``: one follower task per run per
process (one blocking ``XREAD``) fills a ``FollowedLog``, a read-only ``MemoryRunLog`` mirror that
numbers the events exactly as the owner did (it checks that the entries are contiguous, skips ids
it holds, and on a gap ends the mirror rather than mis-number), and every local reader reads that
mirror. SSE ids therefore stay the run's integer sequence on every process.

Failure: while Redis is unreachable the owner's run goes on for its local readers and the flusher
keeps the backlog (the local log is the backlog) and retries with a capped backoff; when Redis
answers again each run reads its stream's last entry first and re-sends whatever Redis lacks (all
of it if Redis lost the stream). A command Redis refuses (an ``XADD`` whose id is not above the
stream's top: another process ended the run) makes only that run resync, after its own backoff.
A follower whose read fails retries from its last entry ID; it ends its mirror only if the stream
stays gone for the retention. ``RedisLogs.end`` lets another process end a dead owner's run
(``error``, then ``done``) atomically, unless the stream already holds a ``done``.

This module must never put IO on the per-token path of the owner (an append is a memory append and
one flag check), never write an entry per token, never let a reader wait on Redis inside
``take``, and never block a writer's ``close`` on Redis being down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
import redis.asyncio as redis
from redis.exceptions import RedisError, ResponseError

from ssechat.errors import ServiceUnavailableError
from ssechat.runs.log import MemoryLogReader, MemoryRunLog
from ssechat.runs.tools import TOOL_EVENTS, calls_from_events

__all__ = ["LINGER", "FollowedLog", "LogSnapshot", "RedisLogs", "RedisRunLog"]

logger = logging.getLogger(__name__)

LINGER = 0.005
"""Seconds the flusher waits, once woken, for more runs' events to join its call: less CPU for
a few ms more latency, for other processes' followers only (bench/PROFILE.md)."""

# Retry backoff after a failed Redis call: doubles from the first to the cap.
_BACKOFF_FIRST = 0.05
_BACKOFF_CAP = 2.0

# ``end``: append the events after the stream's last entry unless that entry holds ``done``
# (``done`` is always a run's last event, so only the last entry can hold it), then set the
# expiry. One script, so no writer can slip in between the check and the append.
_END_SCRIPT = """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local next_seq = 0
if #last > 0 then
  local entry = last[1]
  next_seq = tonumber(string.match(entry[1], '^(%d+)'))
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'b' then
      local batch = cjson.decode(fields[i + 1])
      if #batch > 0 and batch[#batch][1] == 'done' then return 0 end
    end
  end
end
redis.call('XADD', KEYS[1], tostring(next_seq + tonumber(ARGV[2])) .. '-0',
           'f', tostring(next_seq), 'b', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""


# The flusher's one call: KEYS are the streams, ARGV[1] the expiry, then per stream its first id,
# the id after its last, its entry's body ('' for none) and 1 to set the expiry. Each stream's
# commands are run with pcall, so a refused XADD (its id not above the stream's top: another
# process ended the run) fails only its own stream: the reply holds 1 or the error, per stream.
_FLUSH_SCRIPT = """
local out = {}
for i = 1, #KEYS do
  local at = 4 * i - 2
  local result = 1
  if ARGV[at + 2] ~= '' then
    local reply = redis.pcall('XADD', KEYS[i], ARGV[at + 1] .. '-0', 'f', ARGV[at], 'b',
                              ARGV[at + 2])
    if type(reply) == 'table' and reply.err then result = reply.err end
  end
  if result == 1 and ARGV[at + 3] == '1' then
    local reply = redis.pcall('PEXPIRE', KEYS[i], ARGV[1])
    if type(reply) == 'table' and reply.err then result = reply.err end
  end
  out[i] = result
end
return out
"""


@contextlib.asynccontextmanager
async def _unavailable() -> AsyncIterator[None]:
    # A caller's request (follow, snapshot, end) when Redis is unreachable: the project's 503,
    # naming the service, never its address.
    try:
        yield
    except (RedisError, OSError) as exc:
        raise ServiceUnavailableError("Redis is unreachable; try again shortly") from exc


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entry_next(entry_id: Any) -> int:
    """The id after the last one an entry holds: its entry ID's first part."""
    return int(_text(entry_id).partition("-")[0])


def _field(fields: Any, name: str) -> Any:
    value = fields.get(name)
    return fields.get(name.encode()) if value is None else value


class _Step(NamedTuple):
    """One writer's part of a flush: ``end`` is the id after its ``XADD``'s last (if
    ``added``); ``expire``: a ``PEXPIRE`` follows."""

    writer: RedisRunLog
    end: int
    added: bool
    expire: bool


@dataclass(frozen=True)
class LogSnapshot:
    """A stream read once: the answer, the reasoning, the newest id, whether it has ended, and
    its tool calls (``runs.tools.calls_from_events``)."""

    text: str
    reasoning: str
    last_id: int
    ended: bool
    tool_calls: list[dict[str, Any]]


class RedisRunLog:
    """The owner's handle on a run's log (a ``runs.log.RunLog``): a local ``MemoryRunLog`` that
    the process's flusher (``RedisLogs``) copies to the stream."""

    def __init__(self, logs: RedisLogs, run_id: str) -> None:
        self._logs = logs
        self.run_id = run_id
        self.key = logs.key(run_id)
        self.local = MemoryRunLog(run_id)
        self._sent = 0  # ids below this are in Redis
        self._closed = False
        self._expired = False
        # Queued for the flusher, or waiting out a backoff: an append then has nothing to do.
        self._dirty = False
        self._resync = False  # the stream's state is unknown (after a failure): read it first
        self._delay = _BACKOFF_FIRST  # this run's next backoff after a refused command
        self._warned = False
        self._retry: asyncio.TimerHandle | None = None
        self._progress: asyncio.Event | None = None  # made by a waiter, set by the flusher
        self.entries = 0  # XADDs that succeeded (the benchmark counts them)

    def __repr__(self) -> str:
        return f"<RedisRunLog {self.run_id!r}: {self.local.event_count} events, {self._sent} sent>"

    # --- RunLog ----------------------------------------------------------------------------

    async def append(self, event: str, data: str) -> int:
        seq = await self.local.append(event, data)
        if not self._dirty:
            self._logs._mark(self)
        return seq

    async def append_delta(self, text: str) -> int:
        seq = await self.local.append_delta(text)
        if not self._dirty:
            self._logs._mark(self)
        return seq

    async def append_reasoning(self, text: str) -> int:
        seq = await self.local.append_reasoning(text)
        if not self._dirty:
            self._logs._mark(self)
        return seq

    async def close(self) -> None:
        # Local readers end at once; the flusher sends the rest and sets the expiry in the
        # background, so a close never waits on Redis.
        await self.local.close()
        self._closed = True
        if not self._dirty:
            self._logs._mark(self)

    async def text(self) -> str:
        return await self.local.text()

    async def reasoning(self) -> str:
        return await self.local.reasoning()

    async def last_id(self) -> int:
        return await self.local.last_id()

    @property
    def text_size(self) -> int:
        return self.local.text_size

    def reader(self, after: int = -1) -> MemoryLogReader:
        return self.local.reader(after)

    # --- flushing ---------------------------------------------------------------------------

    async def flushed(self) -> None:
        """Wait until everything appended so far is in Redis (and, once closed, the expiry
        set)."""
        target = self.local.event_count
        while self._sent < target or (self._closed and not self._expired):
            if self._progress is None:
                self._progress = asyncio.Event()
            await self._progress.wait()

    @property
    def _unsent(self) -> bool:
        return self._sent < self.local.event_count or (self._closed and not self._expired)

    def _advance(self) -> None:
        progress = self._progress
        if progress is not None:
            self._progress = None
            progress.set()


class FollowedLog(MemoryRunLog):
    """This process's read-only mirror of a run another process writes (its appends come from
    its follower task only); its readers are ``MemoryLogReader``s."""

    __slots__ = ("done", "error", "started")

    def __init__(self, run_id: str) -> None:
        super().__init__(run_id)
        self.started: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        self.done: dict[str, Any] | None = None

    @property
    def ended(self) -> bool:
        """The mirror is closed: it saw ``done``, or it failed."""
        return self._closed

    async def wait_for(self, seq: int) -> None:
        """Until the mirror holds the event ``seq``, or it ended (wrap it in a timeout)."""
        loop = asyncio.get_running_loop()
        while self.event_count <= seq and not self._closed:
            waiter = loop.create_future()
            self._notify(waiter)
            await waiter

    async def _apply(self, first: int, batch: list[list[str]]) -> bool:
        """Add the entry's events it does not hold yet; False on a gap (it then ends)."""
        have = self.event_count
        if first > have:
            logger.error(
                "run %s: its stream skips from id %d to %d; ending this copy",
                self.run_id,
                have,
                first,
            )
            self.error = {"code": "log_gap", "message": "the run's log has a gap"}
            await self.close()
            return False
        for kind, payload in batch[have - first :]:
            if kind == "delta":
                await self.append_delta(payload)
            elif kind == "reasoning":
                await self.append_reasoning(payload)
            else:
                await self.append(kind, payload)
                if kind == "run":
                    self.started = orjson.loads(payload)
                elif kind == "error":
                    self.error = orjson.loads(payload)
                elif kind == "done":
                    self.done = orjson.loads(payload)
                    await self.close()
                    return True
        return True


class RedisLogs:
    """The Redis side of one process's run logs."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        retention: float,
        prefix: str = "ssechat:",
        block: float = 5.0,
        linger: float = LINGER,
    ) -> None:
        self.client = client
        self.linger = linger
        self.retention = retention
        self.expiry_ms = max(1, int(retention * 1000))
        self.prefix = prefix
        self.block_ms = max(1, int(block * 1000))  # one XREAD waits at most this long
        # The flusher: the writers with something unsent (until it is in Redis), the queue of
        # those it has not taken yet, its task and the future it waits on when idle.
        self._pending: set[RedisRunLog] = set()
        self._dirty: list[RedisRunLog] = []
        self._flusher: asyncio.Task[None] | None = None
        self._kick: asyncio.Future[None] | None = None
        self._stopped = False
        self.pipelines = 0  # flush calls Redis answered (the benchmark and a test count them)
        self.xadds = 0  # XADDs those calls carried
        self._followers: dict[str, tuple[FollowedLog, asyncio.Task[None]]] = {}
        self._forget: dict[str, asyncio.TimerHandle] = {}
        self._end_script = client.register_script(_END_SCRIPT)
        self._flush_script = client.register_script(_FLUSH_SCRIPT)
        self.xreads = 0  # XREAD calls made (a test checks one follower serves many readers)

    def key(self, run_id: str) -> str:
        return f"{self.prefix}run:{run_id}:log"

    def writer(self, run_id: str) -> RedisRunLog:
        """A ``LogFactory``: the owner's handle on a new run's log."""
        return RedisRunLog(self, run_id)

    async def _next_seq(self, run_id: str) -> int | None:
        async with _unavailable():
            last = await self.client.xrevrange(self.key(run_id), count=1)
        return _entry_next(last[0][0]) if last else None

    async def follow(self, run_id: str, *, known: bool = False) -> FollowedLog | None:
        """This process's mirror of a run whose stream exists (None if none does), once it holds
        everything the stream held at the call. One follower task per run, shared. ``known``:
        the run exists (its lease says so) though its first entry may not be in Redis yet (its
        flusher lingers): follow it all the same."""
        target = await self._next_seq(run_id)
        followed = self._followers.get(run_id)
        if followed is None:
            if target is None and not known:
                return None
            mirror = FollowedLog(run_id)
            task = asyncio.get_running_loop().create_task(self._follow(mirror))
            followed = self._followers[run_id] = (mirror, task)
        mirror = followed[0]
        if target is not None:
            await mirror.wait_for(target - 1)
        return mirror

    async def _follow(self, mirror: FollowedLog) -> None:
        client, key = self.client, self.key(mirror.run_id)
        last = "0-0"
        delay = _BACKOFF_FIRST
        missing_since: float | None = None
        try:
            while not mirror.ended:
                try:
                    self.xreads += 1
                    reply: Any = await client.xread({key: last}, block=self.block_ms, count=1000)
                    delay = _BACKOFF_FIRST
                    if not reply:
                        # Nothing for a while: is the stream gone for good (expired)?
                        if await client.exists(key):
                            missing_since = None
                        elif missing_since is None:
                            missing_since = time.monotonic()
                        elif time.monotonic() - missing_since >= self.retention:
                            mirror.error = {"code": "log_gone", "message": "the run's log expired"}
                            await mirror.close()
                        continue
                    missing_since = None
                    for entry_id, fields in reply[0][1]:
                        first = int(_text(_field(fields, "f")))
                        batch = orjson.loads(_field(fields, "b"))
                        if not await mirror._apply(first, batch) or mirror.ended:
                            break
                        last = _text(entry_id)
                except (RedisError, OSError):
                    # Redis blinked: never end the mirror for that; retry from the last entry.
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _BACKOFF_CAP)
        finally:
            if not mirror.ended:
                await mirror.close()
            # Keep the ended mirror for late local readers a while, then forget it.
            loop = asyncio.get_running_loop()
            self._forget[mirror.run_id] = loop.call_later(self.retention, self._drop, mirror.run_id)

    # --- the flusher: one task per process writes every run's entries ------------------------

    def _mark(self, writer: RedisRunLog) -> None:
        writer._dirty = True
        self._pending.add(writer)
        self._queue(writer)

    def _queue(self, writer: RedisRunLog) -> None:
        writer._retry = None
        self._dirty.append(writer)
        kick = self._kick
        if kick is not None:
            self._kick = None
            if not kick.done():
                kick.set_result(None)
        elif self._flusher is None and not self._stopped:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        delay, warned = _BACKOFF_FIRST, False
        while True:
            if not self._dirty:
                kick = self._kick = loop.create_future()
                await kick
                continue
            if self.linger:
                # What other runs append meanwhile joins this call: a token alone (20 tokens/s
                # is one every 50 ms) would otherwise be a round trip of its own. Only other
                # processes' followers wait for it: this one's readers read the local log.
                await asyncio.sleep(self.linger)
            # Everything queued while the last round trip was in flight goes in this one.
            batch, self._dirty = self._dirty, []
            for writer in batch:
                writer._dirty = False
            try:
                await self._send(batch)
            except (RedisError, OSError) as exc:
                # Redis unreachable (or the connection dropped mid-call: some entries may have
                # landed): every run in it reads its stream again before re-sending.
                if not warned:
                    warned = True
                    logger.warning(
                        "cannot write %d run logs to Redis (%s); retrying",
                        len(batch),
                        type(exc).__name__,
                    )
                back = [writer for writer in batch if not writer._dirty]
                for writer in batch:
                    writer._resync = True
                for writer in back:
                    writer._dirty = True
                self._dirty[:0] = back
                await asyncio.sleep(delay)
                delay = min(delay * 2, _BACKOFF_CAP)
                continue
            if warned:
                logger.info("Redis answers again; the run logs catch up")
            delay, warned = _BACKOFF_FIRST, False

    async def _send(self, batch: list[RedisRunLog]) -> None:
        """One step: the runs whose stream's state is unknown read it (one ``XREVRANGE`` each,
        pipelined; they send next step); the others' entries go in ONE ``_FLUSH_SCRIPT`` call
        (a pipeline costs redis-py ~20 µs per command; a script's arguments ~3-9 µs: see
        bench/PROFILE.md)."""
        resync = [writer for writer in batch if writer._resync]
        if resync:
            batch = [writer for writer in batch if not writer._resync]
            pipe = self.client.pipeline(transaction=False)
            for writer in resync:
                pipe.xrevrange(writer.key, count=1)
            replies = await pipe.execute(raise_on_error=False)
            for writer, reply in zip(resync, replies, strict=True):
                if isinstance(reply, Exception):
                    self._refused(writer, reply)
                else:
                    writer._sent = _entry_next(reply[0][0]) if reply else 0
                    writer._resync = False
                    self._settled(writer)
        plan: list[_Step] = []
        keys: list[str] = []
        args: list[Any] = [self.expiry_ms]
        for writer in batch:
            sent, end = writer._sent, writer.local.event_count
            added, expire = sent < end, writer._closed and not writer._expired
            if not (added or expire):
                self._settled(writer)
                continue
            body = orjson.dumps(writer.local.events(sent, end)) if added else b""
            keys.append(writer.key)
            args += [sent, end, body, int(expire)]
            plan.append(_Step(writer, end, added, expire))
        if not plan:
            return
        replies = await self._flush_script(keys=keys, args=args)
        self.pipelines += 1
        self.xadds += sum(step.added for step in plan)
        for (writer, end, added, expire), reply in zip(plan, replies, strict=True):
            if reply != 1:
                self._refused(writer, ResponseError(_text(reply)))
                continue
            if added:
                writer._sent = end
                writer.entries += 1
            writer._expired = writer._expired or expire
            writer._delay = _BACKOFF_FIRST
            if writer._warned:
                writer._warned = False
                logger.info("run %s: Redis takes its log again", writer.run_id)
            self._settled(writer)

    def _settled(self, writer: RedisRunLog) -> None:
        # Redis took a step of this writer's: wake its ``flushed`` waiters; queue it again if
        # it still has something unsent (appended while the call was in flight, it is queued).
        writer._advance()
        if not writer._unsent:
            self._pending.discard(writer)
        elif not writer._dirty:
            writer._dirty = True
            self._queue(writer)

    def _refused(self, writer: RedisRunLog, exc: Exception) -> None:
        # Only this run: it reads its stream again after its own backoff (another process may
        # have ended it: ``end`` appended past our next id).
        if not writer._warned:
            writer._warned = True
            logger.warning(
                "run %s: cannot write its log to Redis (%s); retrying",
                writer.run_id,
                type(exc).__name__,
            )
        writer._resync = True
        if writer._dirty:  # queued again while in flight: wait out the backoff first
            self._dirty.remove(writer)
        writer._dirty = True
        loop = asyncio.get_running_loop()
        writer._retry = loop.call_later(writer._delay, self._queue, writer)
        writer._delay = min(writer._delay * 2, _BACKOFF_CAP)

    def _drop(self, run_id: str) -> None:
        self._forget.pop(run_id, None)
        self._followers.pop(run_id, None)

    async def snapshot(self, run_id: str) -> LogSnapshot | None:
        """The whole stream read once; None if there is none."""
        async with _unavailable():
            entries: Any = await self.client.xrange(self.key(run_id))
        if not entries:
            return None
        text: list[str] = []
        reasoning: list[str] = []
        tools: list[tuple[str, str]] = []
        have, ended = 0, False
        for _, fields in entries:
            first = int(_text(_field(fields, "f")))
            events = orjson.loads(_field(fields, "b"))
            for kind, payload in events[max(have - first, 0) :]:
                if kind == "delta":
                    text.append(payload)
                elif kind == "reasoning":
                    reasoning.append(payload)
                elif kind == "done":
                    ended = True
                elif kind in TOOL_EVENTS:
                    tools.append((kind, payload))
            have = max(have, first + len(events))
        calls = list(calls_from_events(tools).values())
        return LogSnapshot("".join(text), "".join(reasoning), have - 1, ended, calls)

    async def end(self, run_id: str, events: Sequence[tuple[str, str]]) -> bool:
        """Append ``events`` (event, data) after the stream's last event, unless it holds a
        ``done``; set the expiry. True if appended. For ending a dead process's run."""
        batch = orjson.dumps([list(event) for event in events])
        async with _unavailable():
            done = await self._end_script(
                keys=[self.key(run_id)], args=[batch, len(events), self.expiry_ms]
            )
        return bool(done)

    async def aclose(self, grace: float = 1.0) -> None:
        """Stop the followers; give the writers' pending entries ``grace`` seconds to land,
        then stop the flusher."""
        writers = list(self._pending)
        if writers:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await asyncio.gather(*(writer.flushed() for writer in writers))
        self._stopped = True
        for writer in self._pending:
            if writer._retry is not None:
                writer._retry.cancel()
        tasks = [task for _, task in self._followers.values()]
        if self._flusher is not None:
            tasks.append(self._flusher)
        self._flusher = self._kick = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for handle in self._forget.values():
            handle.cancel()
        self._forget.clear()
        self._followers.clear()
