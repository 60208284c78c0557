"""The result cache: Redis when REDIS_URL is set (mcstatbot_query.redis_cache, imported only then), a
bounded in-process TTL cache otherwise.

Values are JSON envelopes `{"exp": <unix seconds>, "data": {...}}` so a hit knows how long it has left
(for `Cache-Control: max-age`).
"""

from __future__ import annotations

import contextlib
import enum
import math
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from mcstatbot_query.metrics import CACHE_BACKEND_UP

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from mcstatbot_query.settings import QuerySettings


class LockState(enum.Enum):
    """What trying the cluster probe lock of a key found."""

    ACQUIRED = "acquired"
    """This replica holds it: it probes, for every replica."""
    HELD_ELSEWHERE = "held elsewhere"
    """Another replica holds it: wait for its answer in the cache."""
    UNSHARED = "unshared"
    """There is no shared lock (the in-process cache, or Redis is unavailable): probe alone."""


class CacheUnavailableError(Exception):
    """The cache backend did not answer (or is in its back-off period)."""


def pack(data: dict[str, Any], ttl: float) -> bytes:
    return orjson.dumps({"exp": time.time() + ttl, "data": data})


def unpack(raw: bytes) -> tuple[dict[str, Any], float] | None:
    """(data, seconds left) of an envelope, or None when it is expired or unreadable."""
    opened = open_envelope(raw)
    if opened is None:
        return None
    data, expires = opened
    left = expires - time.time()
    return (data, left) if left > 0 else None


def open_envelope(raw: bytes) -> tuple[dict[str, Any], float] | None:
    """(data, expiry as unix time) of an envelope, expired or not; None when it is unreadable.

    The expiry must be a finite JSON number (never a string, `true`, NaN or infinity): anything else
    in the cache is unreadable, a miss.
    """
    try:
        envelope = orjson.loads(raw)
        expires = envelope["exp"]
        data = envelope["data"]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    if isinstance(expires, bool) or not isinstance(expires, int | float) or not math.isfinite(expires):
        return None
    return (data, float(expires)) if isinstance(data, dict) else None


class ProbeLock(Protocol):
    """The cluster probe lock of one key, for one flight."""

    async def acquire(self) -> LockState: ...

    async def held_elsewhere(self) -> bool:
        """Whether the lock (anybody's) is still there; False when nobody can say."""
        ...

    def holding(self) -> AbstractAsyncContextManager[None]:
        """Keep the acquired lock while the body probes and stores; release it afterwards."""
        ...


class _NoLock:
    """The lock of a cache that shares nothing: always UNSHARED."""

    async def acquire(self) -> LockState:
        return LockState.UNSHARED

    async def held_elsewhere(self) -> bool:
        return False

    def holding(self) -> AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()


_NO_LOCK = _NoLock()


class Cache(Protocol):
    """What the service needs of a cache (MemoryCache, redis_cache.RedisCache)."""

    kind: str

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        """The values of `keys` (None: absent); CacheUnavailableError when the backend fails."""
        ...

    async def write(self, items: list[tuple[str, bytes, float]], delete: list[str]) -> None: ...

    def lock(self, key: str) -> ProbeLock: ...

    async def healthy(self) -> bool: ...

    async def close(self) -> None: ...


class MemoryCache:
    """A process-local TTL cache with at most `max_entries` entries (least recently used go first)."""

    kind = "memory"

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        CACHE_BACKEND_UP.set(1)  # the in-process cache is always there

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        now = time.monotonic()
        result: list[bytes | None] = []
        for key in keys:
            item = self._data.get(key)
            if item is None or item[0] <= now:
                if item is not None:
                    del self._data[key]
                result.append(None)
            else:
                self._data.move_to_end(key)
                result.append(item[1])
        return result

    async def write(self, items: list[tuple[str, bytes, float]], delete: list[str]) -> None:
        for key in delete:
            self._data.pop(key, None)
        now = time.monotonic()
        for key, value, ttl in items:
            self._data[key] = (now + ttl, value)
            self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def lock(self, key: str) -> ProbeLock:
        """No shared lock in one process: the in-process single flight is all the coalescing there is."""
        del key
        return _NO_LOCK

    async def healthy(self) -> bool:
        return True

    async def close(self) -> None:
        self._data.clear()


def create_cache(settings: QuerySettings) -> Cache:
    if settings.redis_url:
        from mcstatbot_query.redis_cache import RedisCache  # noqa: PLC0415 - only with REDIS_URL

        return RedisCache(settings)
    return MemoryCache(settings.cache_max_entries)
