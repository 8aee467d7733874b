"""``Shared``: what several server processes share besides the database.

With ``SSECHAT_REDIS_URL`` set, runs are the cluster's: their logs are Redis streams
(``runs.redis_log``), their leases, cancels and the ending of a dead process's runs are
``runs.cluster``'s, and another process's run is followed through ``runs.followed``. This is
where those parts are made from the settings and closed; ``ChatService`` holds one (or None, with
the embedded in-memory run log of a single process). It must never speak HTTP.
"""

from __future__ import annotations

import logging
import time

from redis.asyncio import Redis

from ssechat.config import Settings
from ssechat.errors import ServiceUnavailableError
from ssechat.runs.cluster import Cluster, connect_redis
from ssechat.runs.followed import Followers
from ssechat.runs.redis_log import RedisLogs
from ssechat.store import Store

__all__ = ["Shared"]

logger = logging.getLogger(__name__)


class Shared:
    """What several processes share besides the database: Redis, the run logs in it, this
    process's part in the cluster and the other processes' runs it follows."""

    def __init__(self, settings: Settings, store: Store, client: Redis) -> None:
        self.settings = settings
        self.store = store
        self.client = client
        self.logs = RedisLogs(client, retention=settings.run_retention)
        self.cluster = Cluster(
            client,
            self.logs,
            store,
            lease=settings.run_lease,
            retention=settings.run_retention,
        )
        self.followers = Followers(self.cluster, self.logs)

    @classmethod
    async def open(cls, settings: Settings, store: Store) -> Shared:
        return cls(settings, store, connect_redis(settings.redis_url))

    async def mark_abandoned(self) -> int:
        """Mark ``interrupted`` the answers left streaming that no live run holds (whole
        clusters stopped, or a process died before its run took its lease); a run whose process
        died is the sweeper's (``Cluster.sweep``), which saves every token its log holds."""
        quiet_since = time.time() - self.settings.run_lease
        candidates = await self.store.streaming_answers(updated_before=quiet_since)
        try:
            abandoned = [
                message_id
                for message_id in candidates
                if await self.cluster.run_for_message(message_id) is None
            ]
        except ServiceUnavailableError:
            logger.warning("Redis is unreachable: answers left streaming are kept as they are")
            return 0
        return await self.store.mark_interrupted(abandoned) if abandoned else 0

    async def close(self) -> None:
        await self.cluster.aclose()
        self.followers.close()
        await self.logs.aclose()
        await self.client.aclose()
