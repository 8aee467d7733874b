"""Runs across processes, on Redis: who drives a run, how a cancel reaches it, and how a run whose
process died is ended by another.

Every process that shares one Redis (and one PostgreSQL) is a *node*. The node that calls the
upstream for a run holds a *lease* on it: an entry of the sorted set ``leases`` scored by the time
(Redis's clock, so that machines need not agree on theirs) at which it runs out. A heartbeat
renews the leases of all of this node's live runs every ``lease / 5`` seconds, in one pipeline,
to ``now + 3/5 lease``; a sweeper on every node looks for leases run out every ``lease / 5``
seconds. So a node killed with ``kill -9`` is noticed within ``lease`` seconds at worst (its
last renewal, plus 3/5, plus one sweep), and a node that misses a renewal or two keeps its runs.

The keys (``prefix`` is ``ssechat:``):

- ``run:{id}``: the run's description (a hash: owner, conversation, messages, model, node);
  expires ``retention`` seconds after the run ends.
- ``leases``: run id → when its lease runs out (ms); ``owner:{user}:runs``: the same, per user,
  so that counting a user's live runs is one ``ZCOUNT``.
- ``message:{id}``: the answer's live run id, while it is live (no expiry: a dead node's stays
  until the sweeper ends the run, so that nothing else takes the answer for abandoned).
- the channel ``control``: ``cancel`` (a run), ``stop-owner``, ``stop-conversation`` and
  ``revoke`` (a user's credentials) messages, which every node receives and acts on locally.

Ending a dead node's run (once: the node whose ``ZREM`` of the lease succeeds does it): the
answer is saved ``interrupted`` with every token the run's log holds (``RedisLogs.snapshot``),
then the log gets ``error`` and ``done`` (``RedisLogs.end``), which every follower relays.

Redis unreachable: ``register`` raises ``ServiceUnavailableError`` (the run then ends with that
error), the heartbeat, the sweeper and the control listener retry until it answers again, and
nothing else stops. This module must never be on the per-token path, never touch the database
but through its small ``SweepStore``, and never act on a run twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ssechat.errors import ServiceUnavailableError, SSEChatError, error_data
from ssechat.runs.redis_log import RedisLogs
from ssechat.sse import json_data

__all__ = [
    "REDIS_DOWN",
    "Cluster",
    "RunInfo",
    "RunLostError",
    "SweepStore",
    "connect_redis",
]

logger = logging.getLogger(__name__)

REDIS_DOWN = "the run log (Redis) is unreachable; try again shortly"


class RunLostError(SSEChatError):
    """The server process generating an answer stopped; another one ended the run."""

    code = "run_lost"
    retryable = True


class SweepStore(Protocol):
    """What the sweeper needs of the store."""

    async def save_interrupted(
        self,
        message_id: str,
        *,
        content: str,
        reasoning: str | None = None,
        error: str | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
    ) -> bool: ...


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What every node knows of a run: enough to check its owner and to show it."""

    run_id: str
    owner: str
    conversation_id: str
    user_message_id: str
    message_id: str
    model: str
    node: str

    @classmethod
    def from_hash(cls, values: Mapping[Any, Any]) -> RunInfo | None:
        """From ``HGETALL``'s answer; None if a field is missing (a hash from elsewhere)."""
        try:
            return cls(**{name: _text(values[name.encode()]) for name in cls.__slots__})
        except KeyError:
            return None

    def as_hash(self) -> Any:  # Any: redis-py's mapping type is invariant in its keys
        return asdict(self)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def connect_redis(url: str) -> aioredis.Redis:
    """A client for ``url``: short connect timeout, so that an unreachable Redis fails a request
    in a second, not after the kernel's minutes."""
    return aioredis.Redis.from_url(
        url,
        socket_connect_timeout=2.0,
        socket_keepalive=True,
        health_check_interval=10,
        # A run with a write in flight holds a connection, and so does each followed run's
        # blocking read: redis-py's default cap (100) would refuse past a hundred live runs.
        max_connections=65536,
    )


OnMessage = Callable[[Any], Awaitable[None]]

# Take (or renew) a run's lease, in one round trip: the expiry from Redis's own clock, the
# description, both lease sets and the answer's run. KEYS: run hash, leases, owner's runs,
# message; ARGV: ttl ms, run id, then the hash's field/value pairs.
_LEASE_SCRIPT = """
local t = redis.call('TIME')
local expires = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('ZADD', KEYS[2], expires, ARGV[2])
redis.call('ZADD', KEYS[3], expires, ARGV[2])
redis.call('SET', KEYS[4], ARGV[2])
return expires
"""

# A user's runs holding a lease now (Redis's clock). KEYS: the owner's runs.
_COUNT_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], now, '+inf')
"""

_FINISH_SCRIPT = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
redis.call('PEXPIRE', KEYS[4], ARGV[2])
return 1
"""


class Cluster:
    """This node's part in the cluster. ``start`` begins its heartbeat, sweeper and listener;
    ``aclose`` stops them (leases of runs still live are left to run out)."""

    def __init__(
        self,
        client: aioredis.Redis,
        logs: RedisLogs,
        store: SweepStore,
        *,
        lease: float,
        retention: float,
        prefix: str = "ssechat:",
    ) -> None:
        self.client = client
        self.logs = logs
        self.store = store
        self.lease = lease
        self.retention = retention
        self.prefix = prefix
        self.node = uuid.uuid4().hex
        self._local: dict[str, RunInfo] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._handlers: dict[str, list[OnMessage]] = {}
        self._finish = client.register_script(_FINISH_SCRIPT)
        self._lease = client.register_script(_LEASE_SCRIPT)
        self._count = client.register_script(_COUNT_SCRIPT)
        self._down_since: float | None = None

    # --- keys ---------------------------------------------------------------------------------

    def _run_key(self, run_id: str) -> str:
        return f"{self.prefix}run:{run_id}"

    def _owner_key(self, owner: str) -> str:
        return f"{self.prefix}owner:{owner}:runs"

    def _message_key(self, message_id: str) -> str:
        return f"{self.prefix}message:{message_id}"

    @property
    def _leases(self) -> str:
        return f"{self.prefix}leases"

    @property
    def _channel(self) -> str:
        return f"{self.prefix}control"

    @property
    def _ttl_ms(self) -> int:
        return int(self.lease * 600)  # 3/5 of the lease, in ms

    # --- lifetime -----------------------------------------------------------------------------

    def on(self, kind: str, handler: OnMessage) -> None:
        """Call ``handler(value)`` for each control message of ``kind`` (``cancel``,
        ``stop-owner``, ``stop-conversation``: an id; ``revoke``: what
        ``AccountService.share_revocations`` publishes), including this node's own."""
        self._handlers.setdefault(kind, []).append(handler)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for name, body in (
            ("heartbeat", self._heartbeat),
            ("sweeper", self._sweeper),
            ("control", self._listen),
        ):
            self._tasks.append(loop.create_task(body(), name=f"cluster-{name}"))

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    # --- runs of this node --------------------------------------------------------------------

    async def register(self, info: RunInfo) -> None:
        """Take the lease of a run this node starts; ``ServiceUnavailableError`` if Redis is
        unreachable (the run must then not call the upstream)."""
        try:
            await self._lease(keys=self._lease_keys(info), args=self._lease_args(info))
        except RedisError as exc:
            raise ServiceUnavailableError(REDIS_DOWN) from exc
        self._local[info.run_id] = info

    def _lease_keys(self, info: RunInfo) -> list[str]:
        return [
            self._run_key(info.run_id),
            self._leases,
            self._owner_key(info.owner),
            self._message_key(info.message_id),
        ]

    def _lease_args(self, info: RunInfo) -> list[str | int]:
        args: list[str | int] = [self._ttl_ms, info.run_id]
        for name, value in info.as_hash().items():
            args += (name, value)
        return args

    async def finished(self, info: RunInfo) -> None:
        """The run ended here (its log holds ``done``): let go of its lease."""
        self._local.pop(info.run_id, None)
        try:
            await self._finish(
                keys=[
                    self._leases,
                    self._owner_key(info.owner),
                    self._message_key(info.message_id),
                    self._run_key(info.run_id),
                ],
                args=[info.run_id, int(self.retention * 1000)],
            )
        except RedisError:
            # The lease runs out by itself; the sweeper then finds the log ended and only
            # tidies up.
            logger.warning("run %s: could not let go of its lease (Redis unreachable)", info.run_id)

    # --- any run ------------------------------------------------------------------------------

    async def find(self, run_id: str) -> RunInfo | None:
        """The run's description, from whichever node started it; None if unknown."""
        try:
            values = await self.client.hgetall(self._run_key(run_id))
        except RedisError as exc:
            raise ServiceUnavailableError(REDIS_DOWN) from exc
        return RunInfo.from_hash(values) if values else None

    async def run_for_message(self, message_id: str) -> str | None:
        """The live run of an answer, if one is registered."""
        try:
            found = await self.client.get(self._message_key(message_id))
        except RedisError as exc:
            raise ServiceUnavailableError(REDIS_DOWN) from exc
        return _text(found) if found is not None else None

    async def live_count(self, owner: str) -> int:
        """How many of ``owner``'s runs hold a lease, on every node."""
        try:
            return int(await self._count(keys=[self._owner_key(owner)]))
        except RedisError as exc:
            raise ServiceUnavailableError(REDIS_DOWN) from exc

    async def publish(self, kind: str, value: Any) -> None:
        """Tell every node (this one included) ``kind`` about ``value``."""
        message = orjson.dumps({"kind": kind, "value": value})
        try:
            await self.client.publish(self._channel, message)
        except RedisError as exc:
            raise ServiceUnavailableError(REDIS_DOWN) from exc

    # --- the tasks ----------------------------------------------------------------------------

    async def _now_ms(self) -> int:
        seconds, micros = await self.client.time()
        return int(seconds) * 1000 + int(micros) // 1000

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 5)
            if not self._local:
                continue
            try:
                await self._renew(list(self._local.values()))
                self._up()
            except RedisError:
                self._down("renew the leases")

    async def _renew(self, runs: list[RunInfo]) -> None:
        # Everything a restarted Redis may have lost is written again: a run outlives a Redis
        # restart without persistence, and other nodes find it again. One round trip for all.
        async with self.client.pipeline(transaction=False) as pipe:
            for info in runs:
                if info.run_id in self._local:  # not finished meanwhile
                    await self._lease(
                        keys=self._lease_keys(info), args=self._lease_args(info), client=pipe
                    )
            await pipe.execute()

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 5)
            try:
                await self.sweep()
                self._up()
            except RedisError:
                self._down("look for runs of stopped processes")
            except Exception:
                logger.exception("the sweep of expired run leases failed")

    async def sweep(self) -> int:
        """End every run whose lease ran out (its node died); how many this node ended."""
        now = await self._now_ms()
        expired = await self.client.zrangebyscore(self._leases, "-inf", now, start=0, num=100)
        ended = 0
        for raw in expired:
            run_id = _text(raw)
            if run_id in self._local:
                continue  # ours, and live: a renewal is late, not lost
            if not await self.client.zrem(self._leases, run_id):
                continue  # another node took it
            try:
                await self._end_lost(run_id)
                ended += 1
            except (RedisError, ServiceUnavailableError):
                # Put it back so that this or another node tries again at the next sweep.
                await self.client.zadd(self._leases, {run_id: now})
                raise
        return ended

    async def _end_lost(self, run_id: str) -> None:
        values = await self.client.hgetall(self._run_key(run_id))
        info = RunInfo.from_hash(values) if values else None
        snapshot = await self.logs.snapshot(run_id)
        if info is not None and (snapshot is None or not snapshot.ended):
            error = RunLostError(
                "the server process generating this answer stopped; it was saved as far as it got"
            )
            saved = await self.store.save_interrupted(
                info.message_id,
                content=snapshot.text if snapshot else "",
                reasoning=(snapshot.reasoning or None) if snapshot else None,
                error=error.message,
                tool_calls=(snapshot.tool_calls or None) if snapshot else None,
            )
            done = {"status": "interrupted", "finish_reason": None, "usage": None}
            await self.logs.end(
                run_id, [("error", json_data(error_data(error))), ("done", json_data(done))]
            )
            logger.warning(
                "run %s of a stopped process ended as interrupted (%s)",
                run_id,
                "saved" if saved else "already saved",
            )
        if info is not None:
            await self._finish(
                keys=[
                    self._leases,
                    self._owner_key(info.owner),
                    self._message_key(info.message_id),
                    self._run_key(run_id),
                ],
                args=[run_id, int(self.retention * 1000)],
            )

    async def _listen(self) -> None:
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                self._up()
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None:
                        await self._dispatch(message.get("data"))
            except RedisError:
                self._down("listen for cancels")
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _dispatch(self, data: Any) -> None:
        try:
            message = orjson.loads(data)
            kind, value = message["kind"], message["value"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            logger.warning("ignored a malformed control message")
            return
        for handler in self._handlers.get(kind, ()):
            try:
                await handler(value)
            except Exception:
                logger.exception("the %s handler failed", kind)

    def _down(self, what: str) -> None:
        if self._down_since is None:
            self._down_since = asyncio.get_running_loop().time()
            logger.warning("Redis is unreachable: cannot %s; retrying", what)

    def _up(self) -> None:
        if self._down_since is not None:
            self._down_since = None
            logger.warning("Redis is reachable again")
