"""The Redis cache: a real redis-server started, killed mid-run and restarted; answers never fail."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import pytest
import redis
import redis.asyncio
from mcstatbot_query.cache import CacheUnavailableError, LockState, MemoryCache
from mcstatbot_query.redis_cache import LOCK_TTL, MAX_CONNECTIONS, RedisCache
from mcstatbot_query.settings import QuerySettings
from mcstatbot_testkit.minecraft import JavaPeer
from mcstatbot_testkit.redis import RedisServer

if TYPE_CHECKING:
    from pathlib import Path


SettingsFactory = Callable[..., QuerySettings]
ClientFactory = Callable[[QuerySettings], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis.log") as server:
        yield server


async def test_keys_ttls_and_hits_in_redis(
    redis_server: RedisServer,
    java_peer: JavaPeer,
    settings_factory: SettingsFactory,
    client_factory: ClientFactory,
) -> None:
    settings = settings_factory(redis_url=redis_server.url)
    async with client_factory(settings) as client:
        first = await client.get(f"/api/v1/status/{java_peer.address}", params={"edition": "java"})
        second = await client.get(f"/api/v1/status/{java_peer.address}", params={"edition": "java"})
        players = await client.get(f"/api/v1/players/{java_peer.address}", params={"edition": "java"})
        auto = await client.get(f"/api/v1/status/{java_peer.address}")
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")
    assert players.headers["Cache-Control"] == "max-age=30, stale-while-revalidate=30"
    assert auto.headers["X-Cache"] == "MISS"  # auto has keys of its own
    direct = redis.Redis.from_url(redis_server.url)
    try:
        keys = sorted(k.decode() if isinstance(k, bytes) else k for k in direct.keys("{mc:*"))
        base = f"{{mc:{java_peer.address}:java}}"
        auto_base = f"{{mc:{java_peer.address}:auto}}"
        assert keys == sorted([f"{base}:status", f"{base}:players", f"{auto_base}:status"])
        # Kept CACHE_STALE_SECONDS (30) beyond the TTL, for stale-while-revalidate.
        assert 85_000 < direct.pttl(f"{base}:status") <= 90_000
        assert 55_000 < direct.pttl(f"{base}:players") <= 60_000
        assert direct.keys("*:lock:*") == []  # locks are released after the probe
    finally:
        direct.close()


async def test_redis_killed_mid_run_then_back_by_itself(
    redis_server: RedisServer,
    java_peer: JavaPeer,
    settings_factory: SettingsFactory,
    client_factory: ClientFactory,
) -> None:
    settings = settings_factory(redis_url=redis_server.url, redis_backoff=0.2, cache_ttl_status=60)
    url = f"/api/v1/status/{java_peer.address}"
    async with client_factory(settings) as client:
        assert (await client.get(url, params={"edition": "java"})).headers["X-Cache"] == "MISS"
        assert (await client.get(url, params={"edition": "java"})).headers["X-Cache"] == "HIT"

        # Requests keep flowing (several servers, so some are misses) while Redis dies.
        stop = asyncio.Event()
        flowing: list[httpx.Response] = []

        async def traffic() -> None:
            while not stop.is_set():
                targets = (url, f"/api/v1/status/localhost:{java_peer.port}")
                flowing.extend([await client.get(target, params={"edition": "java"}) for target in targets])
                await asyncio.sleep(0.02)

        background = asyncio.create_task(traffic())
        await asyncio.sleep(0.2)
        redis_server.kill()
        await asyncio.sleep(0.5)
        during = [await client.get(url, params={"edition": "java"}) for _ in range(5)]
        ready = await client.get("/ready")
        metrics = (await client.get("/metrics")).text
        for response in during:
            assert response.status_code == 200
            assert response.json()["online"] is True
            assert response.headers["X-Cache"] == "MISS"  # degraded: probed directly
        assert ready.status_code == 200
        assert ready.json()["status"] == "degraded"
        assert "mcstatbot_cache_backend_up 0.0" in metrics

        redis_server.start()  # the same port, empty
        await asyncio.sleep(0.3)
        stop.set()
        await background
        assert len(flowing) > 10
        assert all(r.status_code == 200 and r.json()["online"] for r in flowing)
        deadline = time.monotonic() + 10
        hits = False
        while time.monotonic() < deadline and not hits:
            await asyncio.sleep(0.25)
            response = await client.get(url, params={"edition": "java"})
            assert response.status_code == 200
            hits = response.headers["X-Cache"] == "HIT"
        assert hits, "the cache did not come back after Redis restarted"
        ready = await client.get("/ready")
        assert ready.json()["status"] == "ready"
        assert "mcstatbot_cache_backend_up 1.0" in (await client.get("/metrics")).text


async def test_redis_down_from_the_start_still_answers(
    tmp_path: Path, java_peer: JavaPeer, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    dead = RedisServer(tmp_path / "never.log")  # never started: nothing listens on its port
    settings = settings_factory(redis_url=dead.url)
    async with client_factory(settings) as client:
        started = time.monotonic()
        responses = [await client.get(f"/api/v1/status/{java_peer.address}") for _ in range(3)]
        elapsed = time.monotonic() - started
        ready = await client.get("/ready")
    assert all(r.status_code == 200 and r.json()["online"] for r in responses)
    assert ready.status_code == 200
    assert ready.json()["cache_up"] is False
    assert elapsed < 3 * (settings.mc_timeout + 1)


async def test_lock_of_a_dead_holder_expires_and_another_replica_probes(
    redis_server: RedisServer,
    tmp_path: Path,
    settings_factory: SettingsFactory,
    client_factory: ClientFactory,
) -> None:
    with JavaPeer(tmp_path / "java.log") as peer:
        direct = redis.Redis.from_url(redis_server.url)
        try:
            # A replica took the lock and died before writing anything.
            assert direct.set(f"{{mc:{peer.address}:java}}:lock:status", "dead-holder", nx=True, px=1200)
            settings = settings_factory(redis_url=redis_server.url)
            async with client_factory(settings) as client:
                started = time.monotonic()
                response = await client.get(f"/api/v1/status/{peer.address}", params={"edition": "java"})
                elapsed = time.monotonic() - started
                metrics = (await client.get("/metrics")).text
        finally:
            direct.close()
        assert response.status_code == 200
        assert response.json()["online"] is True
        assert elapsed >= 1.0  # it waited for the lock instead of probing at once
        assert peer.status_connections == 1
    assert 'mcstatbot_coalesced_waits_total{scope="cluster"}' in metrics


async def test_probe_lock_states_renewal_and_expiry(redis_server: RedisServer) -> None:
    """The cluster lock's named states; its holder renews it; a lock nobody renews goes within LOCK_TTL."""
    cache = RedisCache(QuerySettings(redis_url=redis_server.url))
    key = "{mc:a:25565:java}:lock:status"
    direct = redis.Redis.from_url(redis_server.url)
    try:
        first, second = cache.lock(key), cache.lock(key)
        assert await first.acquire() is LockState.ACQUIRED
        assert await second.acquire() is LockState.HELD_ELSEWHERE
        async with first.holding():
            await asyncio.sleep(3 * LOCK_TTL)  # longer than the lock lives: renewed meanwhile
            assert await second.held_elsewhere()
            assert 0 < direct.pttl(key) <= LOCK_TTL * 1000
        assert not await second.held_elsewhere()  # released on the way out
        # A lock nobody renews (a request Redis ran after its client gave up on it) goes by itself.
        assert await second.acquire() is LockState.ACQUIRED
        await asyncio.sleep(LOCK_TTL + 0.2)
        assert not await first.held_elsewhere()
    finally:
        direct.close()
        await cache.close()
    assert await MemoryCache(10).lock(key).acquire() is LockState.UNSHARED


async def test_a_renewal_that_loses_its_cancellation_still_ends_with_the_holder(
    redis_server: RedisServer,
) -> None:
    """On Python 3.11 redis-py can lose a cancellation: its `asyncio.wait_for` around a socket write
    returns the write's result when the write ends as the cancellation comes (seen in CI: a request hung,
    its lock renewed forever). Reproduced here by a RENEW call that does what that `wait_for` does (the one
    stand-in in this file: the race cannot be timed from outside); the holder still gets out, and the lock
    is released."""
    cache = RedisCache(QuerySettings(redis_url=redis_server.url))
    real_call = cache.call
    lost = 0

    async def call_losing_one_cancellation(what: str, call: Callable[..., Any]) -> Any:
        nonlocal lost
        if what != "RENEW":
            return await real_call(what, call)
        running = asyncio.ensure_future(real_call(what, call))
        try:
            return await asyncio.shield(running)
        except asyncio.CancelledError:
            lost += 1
            return await running  # the cancellation is gone, as in asyncio.wait_for on 3.11

    cache.call = call_losing_one_cancellation  # type: ignore[method-assign]
    key = "{mc:b:25565:java}:lock:status"
    lock, other = cache.lock(key), cache.lock(key)
    try:
        assert await lock.acquire() is LockState.ACQUIRED
        async with asyncio.timeout(10):  # without the fix: renewed, and held, forever
            for _ in range(20):
                async with lock.holding():
                    # Leave while the renewal's RENEW call is under way, so the cancellation hits it.
                    await asyncio.sleep(LOCK_TTL / 3 + 0.002)
                assert await lock.acquire() is LockState.ACQUIRED
                if lost:
                    break
        assert lost, "a renewal's cancellation came during its RENEW call"
        assert await other.acquire() is LockState.HELD_ELSEWHERE
    finally:
        await cache.close()


async def test_a_stray_lock_without_expiry_does_not_hang_requests(
    redis_server: RedisServer,
    java_peer: JavaPeer,
    settings_factory: SettingsFactory,
    client_factory: ClientFactory,
) -> None:
    """`SET {mc:...}:lock:<kind> garbage`, no TTL: the wait has a deadline, then the request probes itself."""
    settings = settings_factory(redis_url=redis_server.url, mc_timeout=1.0)
    base = f"{{mc:{java_peer.address}:java}}"
    direct = redis.Redis.from_url(redis_server.url)
    try:
        for kind in ("status", "players"):
            direct.set(f"{base}:lock:{kind}", b"garbage")
        java_peer.reset_counts()
        async with client_factory(settings) as client:
            for kind in ("status", "players"):
                url = f"/api/v1/{kind}/{java_peer.address}"
                started = time.monotonic()
                first = await client.get(url, params={"edition": "java"})
                elapsed = time.monotonic() - started
                second = await client.get(url, params={"edition": "java"})
                assert first.status_code == 200
                assert first.json()["online"] is True
                # The wait (MC_TIMEOUT plus a margin), then the probe (within MC_TIMEOUT).
                assert elapsed < 2 * settings.mc_timeout + 2.0
                assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")
        assert java_peer.status_requests == 2  # one probe per kind, none while waiting
    finally:
        direct.close()


async def test_no_request_waits_out_stale_locks_after_redis_resumes(
    redis_server: RedisServer,
    java_peer: JavaPeer,
    settings_factory: SettingsFactory,
    client_factory: ClientFactory,
) -> None:
    """Redis paused (SIGSTOP) for 6 s while requests come, then resumed: the lock requests Redis runs on
    resuming, whose clients gave up long before, leave locks that live LOCK_TTL at most, so nobody waits
    them out; every request is answered.

    Asserted on the locks themselves (no lock in Redis ever has more than LOCK_TTL to live), not on request
    latency: on a loaded machine a legitimate holder's probe can keep its waiters up to their deadline.
    Locks that lived MC_TIMEOUT plus a margin, as before, fail the first assertion."""
    settings = settings_factory(
        redis_url=redis_server.url,
        mc_timeout=1.0,
        redis_backoff=0.2,
        cache_ttl_status=1,
        cache_ttl_players=1,
        cache_ttl_offline=1,
    )
    hosts = ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]"]
    urls = [
        (f"/api/v1/{kind}/{host}:{java_peer.port}", edition)
        for host in hosts
        for kind in ("status", "players")
        for edition in ("java", "auto")
    ]
    answered = 0

    async def ask(client: httpx.AsyncClient, url: str, edition: str) -> None:
        nonlocal answered
        response = await client.get(url, params={"edition": edition})
        assert response.status_code == 200
        assert response.json()["online"] is True
        answered += 1

    async def rounds(client: httpx.AsyncClient, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await asyncio.gather(*(ask(client, url, edition) for url, edition in urls))
            await asyncio.sleep(0.1)

    lives_ms: list[int] = []  # the time to live of every lock seen in Redis after it resumed

    stop = asyncio.Event()

    async def watch_locks(direct: redis.asyncio.Redis) -> None:
        # Ended by `stop`, not by a cancellation: on Python 3.11 redis-py may swallow one (RedisLock._renew)
        while not stop.is_set():
            ttls = [await direct.pttl(key) for key in await direct.keys("*:lock:*")]
            lives_ms.extend(ttl for ttl in ttls if ttl != -2)  # -2: gone meanwhile
            await asyncio.sleep(0.01)

    direct = redis.asyncio.Redis.from_url(redis_server.url)
    async with client_factory(settings) as client:
        await rounds(client, 0.5)  # a working cache first (its entries expire during the pause)
        redis_server.pause()
        try:
            await rounds(client, 6.0)  # lock requests pile up in the paused server
        finally:
            redis_server.resume()
        watcher = asyncio.create_task(watch_locks(direct))
        answered = 0
        try:
            await rounds(client, 3.0)
        finally:
            stop.set()
            async with asyncio.timeout(10):
                await watcher
            await direct.aclose()
    assert answered >= len(urls)
    assert lives_ms, "no lock was seen after Redis resumed (the piled-up lock requests make some)"
    assert all(0 <= ttl <= LOCK_TTL * 1000 for ttl in lives_ms), sorted(lives_ms)[-5:]
    # A stale lock is gone by half a waiter's deadline (MC_TIMEOUT + 1), so the waiter probes in time.
    assert settings.mc_timeout + 1.0 >= LOCK_TTL * 2


async def test_an_unreadable_cached_value_is_a_miss_probed_under_the_lock(
    redis_server: RedisServer,
    java_peer: JavaPeer,
    settings_factory: SettingsFactory,
    client_factory: ClientFactory,
) -> None:
    settings = settings_factory(redis_url=redis_server.url)
    base = f"{{mc:{java_peer.address}:java}}"
    direct = redis.Redis.from_url(redis_server.url)
    try:
        direct.set(f"{base}:status", b'{"exp": 9999999999, "data": {"from": "another version"}}', ex=60)
        java_peer.reset_counts()
        async with client_factory(settings) as client:
            first = await client.get(f"/api/v1/status/{java_peer.address}", params={"edition": "java"})
            second = await client.get(f"/api/v1/status/{java_peer.address}", params={"edition": "java"})
        assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")
        assert java_peer.status_requests == 1
        assert direct.keys("*:lock:*") == []
    finally:
        direct.close()


_DEGRADED = "cache backend unavailable"


def _degraded_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.WARNING and _DEGRADED in r.getMessage()]


async def test_degraded_mode_warns_once_a_minute_and_counts_every_failure(
    tmp_path: Path,
    java_peer: JavaPeer,
    settings_factory: SettingsFactory,
    client_factory: ClientFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = RedisServer(tmp_path / "never.log")  # never started: every Redis call fails
    # No back-off: every request tries Redis again and fails again.
    settings = settings_factory(redis_url=dead.url, redis_backoff=0.0)
    caplog.set_level(logging.WARNING, logger="mcstatbot_query.cache")
    async with client_factory(settings) as client:
        before = _errors_counted((await client.get("/metrics")).text)
        url = f"/api/v1/status/{java_peer.address}"
        responses = [await client.get(url, params={"edition": "java"}) for _ in range(10)]
        after = _errors_counted((await client.get("/metrics")).text)
    assert all(r.status_code == 200 and r.json()["online"] for r in responses)
    assert after - before >= 10  # the metric sees each failed call
    warnings = _degraded_warnings(caplog)
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "degraded mode" in warnings[0].getMessage()


async def test_degraded_mode_warns_again_once_the_interval_has_passed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dead = RedisServer(tmp_path / "never.log")
    cache = RedisCache(QuerySettings(redis_url=dead.url, redis_backoff=0.0))
    assert cache.warn_every == 60.0  # the shipped interval: at most one warning a minute
    cache.warn_every = 0.3
    caplog.set_level(logging.WARNING, logger="mcstatbot_query.cache")
    try:
        for _ in range(5):
            assert await cache.lock("mc:lock:k").acquire() is LockState.UNSHARED  # Redis down
        assert len(_degraded_warnings(caplog)) == 1
        await asyncio.sleep(0.35)
        for _ in range(5):
            assert await cache.lock("mc:lock:k").acquire() is LockState.UNSHARED
        assert len(_degraded_warnings(caplog)) == 2
    finally:
        await cache.close()


def _errors_counted(metrics: str) -> float:
    for line in metrics.splitlines():
        if line.startswith("mcstatbot_cache_backend_errors_total "):
            return float(line.split()[1])
    return 0.0


_GARBAGE_EXPIRIES = [
    b'"nan"', b'"inf"', b'"-inf"', b'"1e999"', b'"9999999999"', b"1e308", b"-1e308", b"1e30",
    b"1000000000000000000000000000000", b"-5", b"0", b"true", b"null", b"[]", b"{}", b"1e999", b"NaN",
]  # fmt: skip
"""Expiry values no replica writes: strings, non-finite, not JSON, absurdly far, negative, not numbers."""


@pytest.mark.parametrize("suffix", ["status", "error"])
@pytest.mark.parametrize("expiry", _GARBAGE_EXPIRIES, ids=lambda e: e.decode())
async def test_a_garbage_expiry_in_the_cache_is_a_miss(  # noqa: PLR0917 - fixtures
    expiry: bytes,
    suffix: str,
    redis_server: RedisServer,
    java_peer: JavaPeer,
    settings_factory: SettingsFactory,
    client_factory: ClientFactory,
) -> None:
    settings = settings_factory(redis_url=redis_server.url)
    key = f"{{mc:{java_peer.address}:java}}:{suffix}"
    offline = {"address": java_peer.address, "host": "127.0.0.1", "port": java_peer.port,
               "edition": "java", "online": False, "error": {"code": "timeout", "message": "x"}}  # fmt: skip
    direct = redis.Redis.from_url(redis_server.url)
    try:
        direct.set(key, b'{"exp": ' + expiry + b', "data": ' + orjson.dumps(offline) + b"}", ex=60)
        async with client_factory(settings) as client:
            url = f"/api/v1/status/{java_peer.address}"
            first = await client.get(url, params={"edition": "java"})
            second = await client.get(url, params={"edition": "java"})
    finally:
        direct.close()
    assert first.status_code == 200
    assert first.json()["online"] is True  # the garbage was not served: the server was probed
    assert first.headers["X-Cache"] == "MISS"
    assert first.headers["Cache-Control"] == "max-age=60, stale-while-revalidate=30"
    assert second.headers["X-Cache"] == "HIT"
    assert second.headers["Cache-Control"] in {
        "max-age=60, stale-while-revalidate=30",
        "max-age=59, stale-while-revalidate=30",
    }


async def test_a_burst_beyond_the_connection_pool_waits_for_a_connection_and_stays_on_redis(
    redis_server: RedisServer, settings_factory: SettingsFactory
) -> None:
    """More concurrent cache calls than the pool has connections (a watcher's fresh start asks for every
    watched server at once): they take turns on the pool, and the cache stays on Redis (redis-py refuses
    the connection beyond its pool with MaxConnectionsError, which once put the service in degraded mode).
    REDIS_TIMEOUT is generous here: the burst's last calls wait four rounds of the pool, and on a loaded CI
    machine opening a hundred connections can take longer than the default half second; how the wait counts
    against the timeout is the next test's subject."""
    cache = RedisCache(settings_factory(redis_url=redis_server.url, redis_timeout=30.0))
    burst = MAX_CONNECTIONS * 5
    try:
        await cache.client()  # made first, so that every call of the burst asks the pool at once
        keys = [f"{{mc:burst{i}:java}}:status" for i in range(burst)]
        values = await asyncio.gather(*(cache.get_many([key]) for key in keys))
        assert values == [[None]] * burst
        assert not cache.degraded
    finally:
        await cache.close()


async def test_the_wait_for_a_connection_counts_against_redis_timeout(
    redis_server: RedisServer, settings_factory: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call that finds every connection taken waits within REDIS_TIMEOUT, not before it: when none frees up
    in time it fails into degraded mode, instead of answering after its caller's deadline."""
    monkeypatch.setattr("mcstatbot_query.redis_cache.MAX_CONNECTIONS", 2)
    cache = RedisCache(settings_factory(redis_url=redis_server.url, redis_timeout=0.3, redis_backoff=0))
    released = asyncio.Event()
    both_held = asyncio.Event()
    holding = 0
    pinged = False

    async def hold(client: Any) -> None:
        nonlocal holding
        holding += 1
        if holding == 2:
            both_held.set()
        await released.wait()

    async def ping(client: Any) -> bool:
        nonlocal pinged
        pinged = True
        return bool(await client.ping())

    try:
        await cache.client()
        # Two long calls take both connections (they are given more time than the call below).
        cache.timeout = 10.0
        holders = [asyncio.create_task(cache.call("HOLD", hold)) for _ in range(2)]
        await asyncio.wait_for(both_held.wait(), 5)
        cache.timeout = 0.3
        # This call's wait for a connection is bounded by its REDIS_TIMEOUT: it fails, never having run.
        # (With the wait outside the timeout it would get a connection once the holders finish, and answer.)
        waiter = asyncio.create_task(cache.call("PING", ping))
        await asyncio.sleep(0.6)  # twice its timeout, the holders still holding
        assert waiter.done()
        with pytest.raises(CacheUnavailableError):
            await waiter
        assert not pinged
        assert cache.degraded
        released.set()
        await asyncio.gather(*holders)
        # Connections free again: the next call is served from Redis, and the cache leaves degraded mode.
        assert await cache.call("PING", ping) is True
        assert not cache.degraded
    finally:
        released.set()
        await cache.close()
