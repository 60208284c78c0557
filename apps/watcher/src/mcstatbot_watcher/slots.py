"""Who checks a server in an interval: `LocalSlots` (one replica: always this one) or `RedisSlots`.

`RedisSlots` keeps one key per server and interval, `mcstatbot:watch:slot:<server key>:<n>` (n: the
interval's number since the epoch, counted from the server's offset), taken with `SET NX PX` (redis-py)
and expiring after two intervals: the replica that sets it checks, every other one skips. The claims of
one tick (every server due in it) go in one pipeline (`claim_many`: one round trip). Nothing else
lives in Redis: the schedule follows from the state store's index, so a flushed Redis or a restart of
every replica loses nothing. A Redis that cannot be reached skips the check (counted, logged): a missed
check is better than alerts sent twice.

REDIS_URL may be a Redis Cluster (`REDIS_CLUSTER`, `auto` by default: `mcstatbot_common.redis` asks
`INFO cluster` at the first claim and builds redis-py's `RedisCluster`). The one command, `SET NX PX`, names
one key, so it needs no hash tag: each slot key lives in its own hash slot (redis-py's cluster pipeline
sends each to its node), and a master's failover only skips the claims made while its slots move.

redis-py (and the OpenTelemetry metrics SDK it loads) is imported by the first `RedisSlots`: one replica
without REDIS_URL never loads it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mcstatbot_bot.state.base import ServerRef
    from mcstatbot_common.redis import Client

log = logging.getLogger(__name__)
PREFIX = "mcstatbot:watch:slot:"
TIMEOUT = 2.0
"""Seconds per Redis connection attempt and reply."""


def slot_number(due: float, server_offset: float, interval: float) -> int:
    return int((due - server_offset + interval * 1e-6) // interval)


class Slots(Protocol):
    async def claim_many(self, claims: Sequence[tuple[ServerRef, int]], interval: float) -> list[bool]:
        """For each (server, slot): whether this replica checks it."""
        ...

    async def close(self) -> None: ...


class LocalSlots:
    async def claim_many(self, claims: Sequence[tuple[ServerRef, int]], interval: float) -> list[bool]:  # noqa: ARG002
        return [True] * len(claims)

    async def close(self) -> None:
        return None


class RedisSlots:
    """`SET NX PX` slots in one Redis or a Redis Cluster (`cluster`: REDIS_CLUSTER, None: asked)."""

    def __init__(self, url: str, replica: str, *, cluster: bool | None = None) -> None:
        from redis.exceptions import RedisClusterException, RedisError  # noqa: PLC0415 - only with Redis

        # RedisClusterException is no RedisError: e.g. no startup node reachable during a failover
        self._unreachable = (RedisError, RedisClusterException, OSError, TimeoutError)
        self.url = url
        self.cluster = cluster
        self.replica = replica
        self.redis: Client | None = None
        self._connecting = asyncio.Lock()

    async def client(self) -> Client:
        """The client, made at the first claim (a Redis Cluster is found out then)."""
        async with self._connecting:
            if self.redis is None:
                from mcstatbot_common.redis import connect  # noqa: PLC0415 - only with Redis

                self.redis = await connect(
                    self.url,
                    cluster=self.cluster,
                    what="watcher slots",
                    socket_timeout=TIMEOUT,
                    socket_connect_timeout=TIMEOUT,
                )
            return self.redis

    async def claim_many(self, claims: Sequence[tuple[ServerRef, int]], interval: float) -> list[bool]:
        if not claims:
            return []
        expiry = max(1, int(interval * 2000))
        try:
            async with asyncio.timeout(2 * TIMEOUT):
                client = await self.client()
                pipe = client.pipeline(transaction=False)
                for server, slot in claims:
                    pipe.set(f"{PREFIX}{server.key}:{slot}", self.replica, nx=True, px=expiry)
                taken = await pipe.execute(raise_on_error=False)
        except self._unreachable as exc:
            log.warning("Redis unreachable, %d checks skipped: %s", len(claims), type(exc).__name__)
            return [False] * len(claims)
        failed = sum(1 for each in taken if isinstance(each, Exception))
        if failed:  # e.g. the keys of a cluster node that is failing over
            log.warning("Redis refused %d of %d claims: those checks skipped", failed, len(claims))
        return [each is True for each in taken]

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
