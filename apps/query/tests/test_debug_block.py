"""The `debug` block (`?debug=true`, `"debug": true`): off by default, the probe's steps in order (SRV,
addresses, each protocol with its outcome and time), the cache tier, key and TTL left; the same
private-address rule; never stored in the cache, so nobody else sees it. Real peers, real DNS on loopback,
a real Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import redis
from mcstatbot_query.settings import QuerySettings
from mcstatbot_testkit.minecraft import JavaPeer
from mcstatbot_testkit.redis import RedisServer

if TYPE_CHECKING:
    from pathlib import Path

SettingsFactory = Callable[..., QuerySettings]
ClientFactory = Callable[[QuerySettings], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[JavaPeer]:
    """A peer of this test's own (fresh cache keys for every test)."""
    with JavaPeer(tmp_path / "java.log") as started:
        yield started


def steps(body: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(s["step"], s["target"], s["outcome"]) for s in body["debug"]["steps"]]


async def test_no_debug_block_unless_asked(
    peer: JavaPeer, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    async with client_factory(settings_factory()) as client:
        answers = [
            await client.get(f"/api/v1/status/{peer.address}", params={"edition": "java"}),
            await client.get(f"/api/v1/players/{peer.address}", params={"debug": "false"}),
            await client.post("/api/v1/status", json={"server_url": peer.address}),
            await client.post("/api/v1/players", json={"server_url": peer.address, "debug": False}),
        ]
    assert [a.status_code for a in answers] == [200] * 4
    assert all("debug" not in a.json() for a in answers)


async def test_a_probe_then_the_memory_tier(
    peer: JavaPeer, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    url = f"/api/v1/status/{peer.address}"
    async with client_factory(settings_factory()) as client:
        first = (await client.get(url, params={"edition": "java", "debug": "true"})).json()
        second = (await client.get(url, params={"edition": "java", "debug": "true"})).json()
    key = f"{{mc:{peer.address}:java}}:status"
    assert first["debug"]["cache"] == {
        "tier": "probe",
        "key": key,
        "ttl_left": 60,
        "lock": "unshared",
        "shared": False,
    }
    assert steps(first) == [("resolve", "127.0.0.1", "ok"), ("java_status", peer.address, "ok")]
    assert first["debug"]["steps"][0]["detail"] == "127.0.0.1"
    assert all(s["ms"] >= 0 for s in first["debug"]["steps"])
    assert second["debug"]["cache"]["tier"] == "memory"
    assert second["debug"]["cache"]["key"] == key
    assert 0 < second["debug"]["cache"]["ttl_left"] <= 60
    assert second["debug"]["steps"] == [], "the cache answered: nothing was probed"


async def test_post_players_shows_the_query_tries_and_auto_both_editions(
    peer: JavaPeer, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    async with client_factory(settings_factory(mc_tries=2)) as client:
        players = await client.post(
            "/api/v1/players", json={"server_url": peer.address, "edition": "java", "debug": True}
        )
        auto = await client.get(f"/api/v1/status/{peer.address}", params={"debug": "true"})
    tried = steps(players.json())
    assert ("java_status", peer.address, "ok") in tried
    # The peer answers no Query (GameSpy4): on loopback the closed UDP port is refused at once (or a try
    # times out); either way the tries are listed and the sample is used.
    queries = [t for t in tried if t[0] == "query"]
    assert queries
    assert all(t[1:] in {(peer.address, "refused"), (peer.address, "timeout")} for t in queries)
    assert players.json()["source"] == "sample"
    assert players.json()["debug"]["cache"]["key"] == f"{{mc:{peer.address}:java}}:players"
    kinds = {t[0] for t in steps(auto.json())}
    assert {"java_status", "bedrock_ping"} <= kinds, "auto tries both editions side by side"
    assert auto.json()["debug"]["cache"]["key"] == f"{{mc:{peer.address}:auto}}:status"


async def test_srv_and_the_addresses_tried(
    loopback_dns: Any, peer: JavaPeer, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    loopback_dns.add("_minecraft._tcp.debug.test", "SRV", f"0 5 {peer.port} mc.debug.test.")
    loopback_dns.add("mc.debug.test", "A", "127.0.0.1")
    settings = settings_factory(dns_srv=True, dns_nameservers=loopback_dns.nameserver)
    async with client_factory(settings) as client:
        body = (
            await client.get("/api/v1/status/debug.test", params={"edition": "java", "debug": "true"})
        ).json()
    assert steps(body) == [
        ("srv", "_minecraft._tcp.debug.test", "ok"),
        ("resolve", "mc.debug.test", "ok"),
        ("java_status", peer.address, "ok"),
    ]
    assert body["debug"]["steps"][0]["detail"] == f"mc.debug.test:{peer.port}"
    assert body["debug"]["steps"][1]["detail"] == "127.0.0.1"


async def test_an_offline_server_shows_the_failed_step(
    settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    from mcstatbot_testkit.net import free_port  # noqa: PLC0415 - only here

    address = f"127.0.0.1:{free_port()}"
    async with client_factory(settings_factory()) as client:
        body = (
            await client.get(f"/api/v1/status/{address}", params={"edition": "java", "debug": "1"})
        ).json()
    assert steps(body)[-1] == ("java_status", address, "refused")
    assert body["debug"]["cache"]["key"].endswith(":error")
    assert body["debug"]["cache"]["ttl_left"] == 10


async def test_debug_keeps_the_private_address_rule(
    peer: JavaPeer, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    async with client_factory(settings_factory(allow_private_addresses=False)) as client:
        get = await client.get(f"/api/v1/status/{peer.address}", params={"debug": "true"})
        post = await client.post("/api/v1/status", json={"server_url": peer.address, "debug": True})
    assert (get.status_code, post.status_code) == (403, 403)
    assert get.json()["detail"]["code"] == post.json()["detail"]["code"] == "forbidden_address"
    assert peer.status_requests == 0


async def test_a_debug_request_never_reaches_the_cache_or_other_answers(
    tmp_path: Path, peer: JavaPeer, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    with RedisServer(tmp_path / "redis.log") as server:
        settings = settings_factory(redis_url=server.url)
        url = f"/api/v1/status/{peer.address}"
        async with client_factory(settings) as client:
            # A debug request and plain ones at once: they share one probe, only one has the block.
            together = await asyncio.gather(
                client.get(url, params={"edition": "java", "debug": "true"}),
                *(client.get(url, params={"edition": "java"}) for _ in range(5)),
            )
            later = await client.get(url, params={"edition": "java"})
            again = (await client.get(url, params={"edition": "java", "debug": "true"})).json()
        direct = redis.Redis.from_url(server.url)
        try:
            stored = direct.get(f"{{mc:{peer.address}:java}}:status")
        finally:
            direct.close()
    assert "debug" in together[0].json()
    assert together[0].json()["debug"]["cache"]["lock"] == "acquired"
    assert all("debug" not in answer.json() for answer in [*together[1:], later])
    assert later.headers["X-Cache"] == "HIT"
    assert peer.status_requests == 1
    assert again["debug"]["cache"]["tier"] == "redis"
    assert again["debug"]["cache"]["lock"] is None
    assert stored is not None
    assert b"steps" not in stored
    assert b'"tier"' not in stored


async def test_the_stale_tier(
    peer: JavaPeer, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    settings = settings_factory(cache_ttl_status=1, cache_stale_seconds=30)
    url = f"/api/v1/status/{peer.address}"
    async with client_factory(settings) as client:
        await client.get(url, params={"edition": "java"})
        await asyncio.sleep(1.2)  # the 1 s TTL runs out
        body = (await client.get(url, params={"edition": "java", "debug": "true"})).json()
    assert body["stale"] is True
    assert body["debug"]["cache"]["tier"] == "stale"
    assert body["debug"]["cache"]["ttl_left"] == 0


async def test_openapi_documents_the_debug_block(
    settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    async with client_factory(settings_factory()) as client:
        schema = (await client.get("/openapi.json")).json()
    for path in ("/api/v1/status/{server_url}", "/api/v1/players/{server_url}"):
        names = [p["name"] for p in schema["paths"][path]["get"]["parameters"]]
        assert "debug" in names
    components = schema["components"]["schemas"]
    assert "debug" in components["StatusRequest"]["properties"]
    assert "debug" in components["ServerStatus"]["properties"]
    assert "debug" in components["PlayerList"]["properties"]
    assert {"cache", "steps"} <= set(components["DebugInfo"]["properties"])
    assert set(components["DebugCache"]["properties"]["tier"]["enum"]) == {
        "memory",
        "redis",
        "probe",
        "stale",
    }
