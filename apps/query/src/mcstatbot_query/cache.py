"""The result cache: Redis when REDIS_URL is set, a bounded in-process TTL cache otherwise.

Values are JSON envelopes `{"exp": <unix seconds>, "data": {...}}` so a hit knows how long it has left
(for `Cache-Control: max-age`). With Redis, a failing or slow call (REDIS_TIMEOUT) counts as a miss:
the service probes directly (degraded mode), logs a warning at most once a minute, sets
`mcstatbot_cache_backend_up` to 0 and leaves Redis alone for REDIS_BACKOFF seconds before trying it
again; the first call that works again sets the gauge back to 1. Nothing needs restarting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
import redis.asyncio as redis_asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from mcstatbot_query.metrics import CACHE_BACKEND_ERRORS, CACHE_BACKEND_UP

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from mcstatbot_query.settings import QuerySettings

log = logging.getLogger(__name__)
T = TypeVar("T")

_WARN_EVERY = 60.0
_RELEASE_LOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end
"""
# KEYS: the lock, then the keys to read; ARGV: token, lock time-to-live in ms, "1" to lock only on a miss.
_LOCK_AND_GET = """
local values = redis.call('mget', unpack(KEYS, 2))
if ARGV[3] == '1' then
  for i = 1, #KEYS - 1 do
    if values[i] then return {0, values} end
  end
end
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1, values} end
return {0, values}
"""


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


class MemoryCache:
    """A process-local TTL cache with at most `max_entries` entries (least recently used go first)."""

    kind = "memory"

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        CACHE_BACKEND_UP.set(1)  # the in-process cache is always there

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        return self.peek_many(keys)

    def peek_many(self, keys: list[str]) -> list[bytes | None]:
        """`get_many` without awaiting: the in-process cache needs no I/O (so a hit needs no task)."""
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

    async def write(
        self, items: list[tuple[str, bytes, float]], delete: list[str], release: tuple[str, str] | None = None
    ) -> None:
        del release  # no locks in one process
        for key in delete:
            self._data.pop(key, None)
        now = time.monotonic()
        for key, value, ttl in items:
            self._data[key] = (now + ttl, value)
            self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    async def try_lock(self, key: str, token: str, ttl: float) -> bool | None:
        del key, token, ttl
        return None  # one process: the in-process single flight is all the coalescing there is

    async def lock_and_get(
        self, key: str, token: str, ttl: float, keys: list[str], *, only_on_miss: bool = False
    ) -> tuple[bool | None, list[bytes | None]]:
        del only_on_miss
        return await self.try_lock(key, token, ttl), self.peek_many(keys)

    async def release_lock(self, key: str, token: str) -> None:
        del key, token

    async def lock_held(self, key: str) -> bool:
        del key
        return False

    async def healthy(self) -> bool:
        return True

    async def close(self) -> None:
        self._data.clear()


class RedisCache:
    """Redis with short timeouts, one immediate reconnect, and a back-off after each failure."""

    kind = "redis"

    def __init__(self, settings: QuerySettings) -> None:
        if settings.redis_url is None:
            raise ValueError("RedisCache needs REDIS_URL")
        self.timeout = settings.redis_timeout
        self.backoff = settings.redis_backoff
        self.client: redis_asyncio.Redis = redis_asyncio.Redis.from_url(
            settings.redis_url,
            socket_timeout=settings.redis_timeout,
            socket_connect_timeout=settings.redis_timeout,
            # One immediate retry replaces a pooled connection that died with a restarted Redis; the
            # asyncio.timeout around every call still bounds the whole call to REDIS_TIMEOUT.
            retry=Retry(NoBackoff(), 1),
            health_check_interval=0,
        )
        self._lock_and_get = self.client.register_script(_LOCK_AND_GET)  # EVALSHA, loaded when missing
        self._down_until = 0.0
        self.warn_every = _WARN_EVERY
        """Seconds between two "degraded mode" warnings in the log (the metric counts every failure)."""
        self._last_warning: float | None = None
        self.degraded = False
        CACHE_BACKEND_UP.set(1)

    async def _call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        if time.monotonic() < self._down_until:
            raise CacheUnavailableError("Redis is in its back-off period")
        try:
            async with asyncio.timeout(self.timeout):
                result = await call()
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(what, exc)
            raise CacheUnavailableError(str(exc)) from exc
        if self.degraded:
            self.degraded = False
            log.info("cache backend answers again: using Redis")
        CACHE_BACKEND_UP.set(1)
        return result

    def _failed(self, what: str, exc: BaseException) -> None:
        CACHE_BACKEND_ERRORS.inc()
        CACHE_BACKEND_UP.set(0)
        self.degraded = True
        self._down_until = time.monotonic() + self.backoff
        now = time.monotonic()
        if self._last_warning is None or now - self._last_warning >= self.warn_every:
            self._last_warning = now
            log.warning(
                "cache backend unavailable (%s: %s): answering from direct probes (degraded mode)",
                what,
                type(exc).__name__,
            )

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        values = await self._call("MGET", lambda: self.client.mget(keys))
        return [value.encode() if isinstance(value, str) else value for value in values]

    async def write(
        self, items: list[tuple[str, bytes, float]], delete: list[str], release: tuple[str, str] | None = None
    ) -> None:
        """Write `items`, delete `delete` and release the lock `release` (key, token): one round trip."""

        async def run() -> None:
            async with self.client.pipeline(transaction=False) as pipe:
                for key in delete:
                    pipe.delete(key)
                for key, value, ttl in items:
                    pipe.set(key, value, px=max(int(ttl * 1000), 1))
                if release is not None:
                    pipe.eval(_RELEASE_LOCK, 1, *release)
                await pipe.execute()

        await self._call("SET", run)

    async def try_lock(self, key: str, token: str, ttl: float) -> bool | None:
        """True when this replica got the lock, False when another holds it, None when Redis is down."""
        try:
            got = await self._call("SET NX", lambda: self.client.set(key, token, nx=True, px=int(ttl * 1000)))
        except CacheUnavailableError:
            return None
        return bool(got)

    async def lock_and_get(
        self, key: str, token: str, ttl: float, keys: list[str], *, only_on_miss: bool = False
    ) -> tuple[bool | None, list[bytes | None]]:
        """The values of `keys` and `try_lock`'s answer, in one round trip (one script).

        With `only_on_miss`, the lock is tried only when none of `keys` holds a value (a look-up that
        takes the lock when it misses); otherwise always (a holder may have just written the values).
        Redis down: (None, all None).
        """
        flag = "1" if only_on_miss else "0"

        async def run() -> list[Any]:
            result: list[Any] = await self._lock_and_get(
                keys=[key, *keys], args=[token, int(ttl * 1000), flag]
            )
            return result

        try:
            got, values = await self._call("LOCK+MGET", run)
        except CacheUnavailableError:
            return None, [None] * len(keys)
        return got == 1, [value.encode() if isinstance(value, str) else value for value in values]

    async def release_lock(self, key: str, token: str) -> None:
        with contextlib.suppress(CacheUnavailableError):  # otherwise the lock expires by itself
            await self._call("EVAL", lambda: self.client.eval(_RELEASE_LOCK, 1, key, token))

    async def lock_held(self, key: str) -> bool:
        try:
            return bool(await self._call("EXISTS", lambda: self.client.exists(key)))
        except CacheUnavailableError:
            return False

    async def healthy(self) -> bool:
        try:
            await self._call("PING", self.client.ping)
        except CacheUnavailableError:
            return False
        return True

    async def close(self) -> None:
        await self.client.aclose()


Cache = MemoryCache | RedisCache


def create_cache(settings: QuerySettings) -> Cache:
    return RedisCache(settings) if settings.redis_url else MemoryCache(settings.cache_max_entries)
