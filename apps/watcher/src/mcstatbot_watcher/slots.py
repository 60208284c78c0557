"""Who checks a server in an interval: `LocalSlots` (one replica: always this one) or `RedisSlots`.

`RedisSlots` keeps one key per server and interval, `mcstatbot:watch:slot:<server key>:<n>` (n: the
interval's number since the epoch, counted from the server's offset), taken with `SET NX PX` (redis-py)
and expiring after two intervals: the replica that sets it checks, every other one skips. Nothing else
lives in Redis: the schedule follows from the state store's index, so a flushed Redis or a restart of
every replica loses nothing. A Redis that cannot be reached skips the check (counted, logged): a missed
check is better than alerts sent twice.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

if TYPE_CHECKING:
    from mcstatbot_bot.state.base import ServerRef

log = logging.getLogger(__name__)
PREFIX = "mcstatbot:watch:slot:"


def slot_number(due: float, server_offset: float, interval: float) -> int:
    return int((due - server_offset + interval * 1e-6) // interval)


class Slots(Protocol):
    async def claim(self, server: ServerRef, slot: int, interval: float) -> bool: ...
    async def close(self) -> None: ...


class LocalSlots:
    async def claim(self, server: ServerRef, slot: int, interval: float) -> bool:  # noqa: ARG002
        return True

    async def close(self) -> None:
        return None


class RedisSlots:
    def __init__(self, url: str, replica: str) -> None:
        self.redis = Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self.replica = replica

    async def claim(self, server: ServerRef, slot: int, interval: float) -> bool:
        try:
            taken = await self.redis.set(
                f"{PREFIX}{server.key}:{slot}", self.replica, nx=True, px=max(1, int(interval * 2000))
            )
        except RedisError as exc:
            log.warning("Redis unreachable, check of %s skipped: %s", server.address, type(exc).__name__)
            return False
        return bool(taken)

    async def close(self) -> None:
        await self.redis.aclose()
