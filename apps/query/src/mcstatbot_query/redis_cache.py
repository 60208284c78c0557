"""The Redis cache (REDIS_URL) and its cluster probe lock; imported only when REDIS_URL is set.

REDIS_URL may point at one Redis or at a Redis Cluster (ElastiCache with cluster mode enabled): with
REDIS_CLUSTER unset the first call asks `INFO cluster` and uses redis-py's `RedisCluster` when it says
`cluster_enabled:1`; `REDIS_CLUSTER=true|false` skips the question (`mcstatbot_common.redis`, shared with
the bot and the watcher). Every key of one server carries the
same hash tag (service.key_base), so its values and its lock live in one slot: the multi-key MGET and the
MULTI/EXEC write of one server work on a cluster too. `rediss://` (TLS), `user:password@` (an AUTH
token) and `?ssl_ca_certs=<file>` (a CA of one's own) come from the URL, for both kinds of client.

A failing or slow call (REDIS_TIMEOUT) counts as a miss: the service probes directly (degraded mode),
logs a warning at most once a minute that says why (e.g. "AUTH refused", "TLS certificate not
trusted"), sets `mcstatbot_cache_backend_up` to 0 and leaves Redis alone for REDIS_BACKOFF seconds
before trying it again; the first call that works again sets the gauge back to 1.
Nothing needs restarting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import urllib.parse
from typing import TYPE_CHECKING, Any, TypeVar

from mcstatbot_common.redis import Client, connect, failure_reason
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import LockError, RedisClusterException, RedisError

from mcstatbot_query.cache import CacheUnavailableError, LockState
from mcstatbot_query.metrics import CACHE_BACKEND_ERRORS, CACHE_BACKEND_UP

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from redis.asyncio.lock import Lock

    from mcstatbot_query.settings import QuerySettings

log = logging.getLogger(__name__)
T = TypeVar("T")

_WARN_EVERY = 60.0
LOCK_TTL = 1.0
"""Seconds a cluster probe lock lives unless its holder renews it (it does, every third of that)."""
MAX_CONNECTIONS = 100
"""Connections to each Redis node; concurrent calls beyond them wait for one, within REDIS_TIMEOUT."""


class RedisCache:
    """Redis with short timeouts, one immediate reconnect, and a back-off after each failure."""

    kind = "redis"

    def __init__(self, settings: QuerySettings) -> None:
        if settings.redis_url is None:
            raise ValueError("RedisCache needs REDIS_URL")
        self.url = settings.redis_url
        self._secret = urllib.parse.urlsplit(self.url).password
        self.timeout = settings.redis_timeout
        self.backoff = settings.redis_backoff
        self.cluster: bool | None = settings.redis_cluster
        """True: a Redis Cluster; None until the first call found out (REDIS_CLUSTER unset)."""
        self._client: Client | None = None
        self._connecting = asyncio.Lock()
        # redis-py refuses a connection beyond its pool (MaxConnectionsError) instead of waiting for one:
        # calls take turns here, so a burst waits for connections rather than looking like a dead Redis.
        self._connections = asyncio.Semaphore(MAX_CONNECTIONS)
        self._down_until = 0.0
        self.warn_every = _WARN_EVERY
        """Seconds between two "degraded mode" warnings in the log (the metric counts every failure)."""
        self._last_warning: float | None = None
        self.degraded = False
        CACHE_BACKEND_UP.set(1)

    def _options(self) -> dict[str, Any]:
        return {
            "socket_timeout": self.timeout,
            "socket_connect_timeout": self.timeout,
            # One immediate retry replaces a pooled connection that died with a restarted Redis; the
            # asyncio.timeout around every call still bounds the whole call to REDIS_TIMEOUT.
            "retry": Retry(NoBackoff(), 1),
            "health_check_interval": 0,
            "max_connections": MAX_CONNECTIONS,  # per node on a cluster
        }

    async def client(self) -> Client:
        """The client, made on first use: a RedisCluster when the server is (or is said to be) one."""
        if self._client is not None:
            return self._client
        async with self._connecting:
            if self._client is None:
                self._client = await self._connect()
            return self._client

    async def _connect(self) -> Client:
        client = await connect(self.url, cluster=self.cluster, what="cache backend", **self._options())
        self.cluster = isinstance(client, RedisCluster)
        return client

    async def call(self, what: str, call: Callable[[Client], Awaitable[T]]) -> T:
        """`call(client)` within REDIS_TIMEOUT; CacheUnavailableError when Redis fails (LockError passes)."""
        if time.monotonic() < self._down_until:
            raise CacheUnavailableError("Redis is in its back-off period")
        try:
            async with asyncio.timeout(self.timeout), self._connections:
                result = await call(await self.client())
        except LockError:
            raise  # an answer from Redis (the lock is not ours), not a failure of it
        except (RedisError, RedisClusterException, OSError, TimeoutError) as exc:
            # RedisClusterException is no RedisError: e.g. no startup node reachable during a failover
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
                failure_reason(exc, secret=self._secret),
            )

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        """The values of `keys`: one MGET, so on a cluster the keys must share a hash slot (one server's)."""
        values = await self.call("MGET", lambda client: client.mget(keys))
        return [value.encode() if isinstance(value, str) else value for value in values]

    async def write(self, items: list[tuple[str, bytes, float]], delete: list[str]) -> None:
        """Write `items` (key, value, TTL in seconds) and delete `delete`: one MULTI/EXEC round trip."""

        async def run(client: Client) -> None:
            async with client.pipeline(transaction=True) as pipe:
                for key in delete:
                    pipe.delete(key)
                for key, value, ttl in items:
                    pipe.set(key, value, px=max(int(ttl * 1000), 1))
                await pipe.execute()

        await self.call("SET", run)

    def lock(self, key: str) -> RedisLock:
        return RedisLock(key, self)

    async def healthy(self) -> bool:
        try:
            await self.call("PING", lambda client: client.ping())
        except CacheUnavailableError:
            return False
        return True

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()


class RedisLock:
    """The probe lock of one key (`{mc:...}:lock:<kind>`): redis-py's Lock with a LOCK_TTL its holder renews.

    A lock nobody renews is gone within LOCK_TTL: its holder died, or Redis ran a lock request whose
    client had given up on it (Redis paused, then resumed). One instance serves one flight.
    """

    def __init__(self, key: str, cache: RedisCache) -> None:
        self.key = key
        self._cache = cache
        self._lock: Lock | None = None

    def _of(self, client: Client) -> Lock:
        if self._lock is None:
            self._lock = client.lock(self.key, timeout=LOCK_TTL, blocking=False, thread_local=False)
        return self._lock

    async def acquire(self) -> LockState:
        try:
            got = await self._cache.call("LOCK", lambda client: self._of(client).acquire())
        except CacheUnavailableError:
            return LockState.UNSHARED
        return LockState.ACQUIRED if got else LockState.HELD_ELSEWHERE

    async def held_elsewhere(self) -> bool:
        """Whether the lock (anybody's) is still there; False when Redis cannot say."""
        try:
            return await self._cache.call("GET", lambda client: self._of(client).locked())
        except CacheUnavailableError:
            return False

    @contextlib.asynccontextmanager
    async def holding(self) -> AsyncIterator[None]:
        """Keep the acquired lock (renewed) while the body probes and stores; release it afterwards."""
        done = asyncio.Event()
        renewing = asyncio.create_task(self._renew(done))
        try:
            yield
        finally:
            done.set()
            renewing.cancel()
            await asyncio.gather(renewing, return_exceptions=True)
            with contextlib.suppress(CacheUnavailableError, LockError):  # else it expires by itself
                await self._cache.call("UNLOCK", lambda client: self._of(client).release())

    async def _renew(self, done: asyncio.Event) -> None:
        """Renew the lock every third of LOCK_TTL until `done` is set.

        `done`, not the cancellation alone, ends it: on Python 3.11 a cancellation can be lost inside
        redis-py (its `asyncio.wait_for` around a socket write returns the write's result when the write
        ends as the cancellation comes), and a loop that missed it would renew, and hold, the lock forever.
        """
        while not done.is_set():
            await asyncio.sleep(LOCK_TTL / 3)
            if done.is_set():
                return
            try:
                await self._cache.call("RENEW", lambda client: self._of(client).reacquire())
            except CacheUnavailableError:
                continue
            except LockError:
                return  # expired meanwhile: it is not ours any more
