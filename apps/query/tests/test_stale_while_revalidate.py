"""Stale-while-revalidate: an expired entry within CACHE_STALE_SECONDS is answered at once (marked stale,
with its age) while exactly one background refresh probes the real peer, in one process and across two
replicas sharing a real Redis.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from mcstatbot_query.app import create_app
from mcstatbot_query.settings import QuerySettings
from mcstatbot_testkit.minecraft import JavaPeer
from mcstatbot_testkit.redis import RedisServer

if TYPE_CHECKING:
    from pathlib import Path

    from mcstatbot_query.service import QueryService

SettingsFactory = Callable[..., QuerySettings]
ClientFactory = Callable[[QuerySettings], AbstractAsyncContextManager[httpx.AsyncClient]]
STALE_HEADER = re.compile(r"max-age=0, stale-while-revalidate=(\d+)")


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[JavaPeer]:
    """A peer of this test's own: its player count tells an old answer from a new one."""
    with JavaPeer(tmp_path / "java.log", online=1) as started:
        yield started


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis.log") as server:
        yield server


async def get_status(client: httpx.AsyncClient, peer: JavaPeer) -> httpx.Response:
    response = await client.get(f"/api/v1/status/{peer.address}", params={"edition": "java"})
    assert response.status_code == 200
    return response


async def until_fresh(client: httpx.AsyncClient, peer: JavaPeer) -> httpx.Response:
    """Ask until the answer is not stale any more (the background refresh stored its probe).

    Bounded by a 10 s timeout; this waits for the refresh, it measures nothing.
    """
    async with asyncio.timeout(10):
        while True:
            response = await get_status(client, peer)
            if not response.json()["stale"]:
                return response
            await asyncio.sleep(0.05)


async def expire(seconds: float) -> None:
    """Let a cached entry's TTL run out (the TTLs in these tests are 1 s)."""
    await asyncio.sleep(seconds)


def loop_errors() -> list[dict[str, Any]]:
    """Record what reaches the event loop's exception handler (a background task that raised)."""
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: errors.append(context))
    return errors


async def test_expired_entry_answers_stale_at_once_and_one_refresh_probes(
    peer: JavaPeer, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    errors = loop_errors()
    settings = settings_factory(cache_ttl_status=1, cache_stale_seconds=30)
    async with client_factory(settings) as client:
        first = await get_status(client, peer)
        assert first.headers["X-Cache"] == "MISS"
        assert first.headers["Cache-Control"] == "max-age=1, stale-while-revalidate=30"
        assert (first.json()["stale"], first.json()["age_seconds"]) == (False, None)
        await expire(1.2)
        peer.configure(online=7)
        peer.reset_counts()

        answers = await asyncio.gather(*(get_status(client, peer) for _ in range(50)))
        stale = [a for a in answers if a.json()["stale"]]
        assert stale, "the first look-up after the TTL answers the expired entry"
        for response in stale:
            body = response.json()
            assert response.headers["X-Cache"] == "HIT"
            assert body["cached"] is True
            assert body["age_seconds"] >= 1
            assert body["players"]["online"] == 1, "the old answer, at once"
            match = STALE_HEADER.fullmatch(response.headers["Cache-Control"])
            assert match is not None
            assert 0 < int(match.group(1)) <= 30
        # The refresh may end while the 50 are still being answered: the rest are the new answer.
        assert all(a.json()["players"]["online"] == 7 for a in answers if a not in stale)

        fresh = await until_fresh(client, peer)
        assert fresh.json()["players"]["online"] == 7
        assert fresh.json()["cached"] is True
        assert fresh.headers["Cache-Control"].endswith(", stale-while-revalidate=30")
    assert peer.status_requests == 1, "one background refresh for all 50 stale answers"
    assert errors == []


async def test_beyond_the_stale_window_an_entry_is_a_miss(
    peer: JavaPeer, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    settings = settings_factory(cache_ttl_status=1, cache_stale_seconds=1)
    async with client_factory(settings) as client:
        await get_status(client, peer)
        await expire(2.2)
        peer.configure(online=4)
        late = await get_status(client, peer)
    assert late.headers["X-Cache"] == "MISS"
    assert late.json()["stale"] is False
    assert late.json()["players"]["online"] == 4


async def test_no_stale_window_keeps_the_old_header_and_misses(
    peer: JavaPeer, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    settings = settings_factory(cache_ttl_status=1, cache_stale_seconds=0)
    async with client_factory(settings) as client:
        first = await get_status(client, peer)
        await expire(1.2)
        second = await get_status(client, peer)
    assert first.headers["Cache-Control"] == "max-age=1"
    assert (second.headers["X-Cache"], second.json()["stale"]) == ("MISS", False)


async def test_a_refresh_that_finds_the_server_down_stores_the_offline_answer(
    peer: JavaPeer, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    errors = loop_errors()
    settings = settings_factory(cache_ttl_status=1, cache_stale_seconds=30)
    async with client_factory(settings) as client:
        await get_status(client, peer)
        await expire(1.2)
        peer.stop()
        stale = await get_status(client, peer)
        assert (stale.json()["online"], stale.json()["stale"]) == (True, True)
        after = await until_fresh(client, peer)
    assert after.json()["online"] is False
    assert after.json()["error"]["code"] == "refused"
    assert errors == []


async def test_stale_players_are_refreshed_too(
    peer: JavaPeer, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    settings = settings_factory(cache_ttl_players=1, cache_ttl_status=1, cache_stale_seconds=30)
    url = f"/api/v1/players/{peer.address}"
    async with client_factory(settings) as client:
        await client.get(url, params={"edition": "java"})
        await expire(1.2)
        stale = await client.get(url, params={"edition": "java"})
        async with asyncio.timeout(10):  # waits for the refresh, measures nothing
            while True:
                fresh = await client.get(url, params={"edition": "java"})
                if not fresh.json()["stale"]:
                    break
                await asyncio.sleep(0.05)
    assert (stale.json()["stale"], stale.json()["cached"]) == (True, True)
    assert stale.json()["age_seconds"] >= 1
    assert fresh.json()["stale"] is False


async def test_refreshes_are_bounded_and_the_rest_stay_stale(
    tmp_path: Path, settings_factory: SettingsFactory
) -> None:
    settings = settings_factory(cache_ttl_status=1, cache_stale_seconds=30)
    with JavaPeer(tmp_path / "a.log") as first_peer, JavaPeer(tmp_path / "b.log") as second_peer:
        app = create_app(settings)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://query.test") as client,
        ):
            await get_status(client, first_peer)
            await get_status(client, second_peer)
            await expire(1.2)
            service: QueryService = app.state.service
            service.max_refreshes = 1
            first_peer.reset_counts()
            second_peer.reset_counts()
            both = await asyncio.gather(get_status(client, first_peer), get_status(client, second_peer))
            assert all(r.json()["stale"] for r in both)
            await until_fresh(client, first_peer)
            counts = (first_peer.status_requests, second_peer.status_requests)
            assert counts == (1, 0), "the second refresh was skipped: at most one at once"
            again = await get_status(client, second_peer)
            assert again.json()["stale"] is True
            await until_fresh(client, second_peer)
        assert second_peer.status_requests == 1


async def test_one_refresh_across_two_replicas_sharing_redis(
    peer: JavaPeer,
    redis_server: RedisServer,
    settings_factory: SettingsFactory,
    client_factory: ClientFactory,
) -> None:
    # A Redis slower than REDIS_TIMEOUT on a loaded machine would mean degraded mode (direct probes), which
    # other tests cover: here Redis is given time, so the count below is about coalescing alone.
    settings = settings_factory(
        redis_url=redis_server.url, redis_timeout=5.0, cache_ttl_status=1, cache_stale_seconds=30
    )
    async with client_factory(settings) as one, client_factory(settings) as two:
        await get_status(one, peer)
        await expire(1.2)
        peer.configure(online=9)
        peer.reset_counts()
        answers = await asyncio.gather(*(get_status((one, two)[i % 2], peer) for i in range(100)))
        stale = [a for a in answers if a.json()["stale"]]
        assert stale
        assert {a.json()["players"]["online"] for a in stale} == {1}
        assert {a.json()["players"]["online"] for a in answers if a not in stale} <= {9}
        fresh = [await until_fresh(one, peer), await until_fresh(two, peer)]
    assert [f.json()["players"]["online"] for f in fresh] == [9, 9]
    assert peer.status_requests == 1, "one refresh for both replicas"
