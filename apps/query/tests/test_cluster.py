"""Two service processes sharing one Redis: 100 concurrent requests, one status connection at the peer."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import httpx
import pytest
from mcstatbot_testkit.minecraft import JavaPeer
from mcstatbot_testkit.redis import RedisServer
from mcstatbot_testkit.services import ServiceProcess, query_service

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[JavaPeer, list[ServiceProcess]]]:
    tmp_path = tmp_path_factory.mktemp("cluster")
    with RedisServer(tmp_path / "redis.log") as redis_server, JavaPeer(tmp_path / "java.log") as peer:
        env = {
            "REDIS_URL": redis_server.url,
            "ALLOW_PRIVATE_ADDRESSES": "true",
            "MC_TIMEOUT": "3",
            "MC_QUERY_TIMEOUT": "0.5",
            "DNS_SRV": "false",
            "LOG_LEVEL": "WARNING",
        }
        services = [query_service(tmp_path / f"query{i}.log", env) for i in range(2)]
        try:
            for service in services:
                service.start()
            yield peer, services
        finally:
            for service in services:
                service.stop()


@pytest.mark.parametrize("edition", ["java", "auto"])
async def test_hundred_concurrent_requests_one_probe_across_replicas(
    cluster: tuple[JavaPeer, list[ServiceProcess]], edition: str
) -> None:
    peer, services = cluster
    peer.reset_counts()
    async with httpx.AsyncClient(timeout=30) as client:
        before = [await coalesced_waits(client, s) for s in services]
        requests = [
            client.post(
                f"{services[i % 2].url}/api/v1/status", json={"server_url": peer.address, "edition": edition}
            )
            for i in range(100)
        ]
        responses = await asyncio.gather(*requests)
        after = [await coalesced_waits(client, s) for s in services]
    assert all(r.status_code == 200 for r in responses)
    assert all(r.json()["online"] for r in responses)
    assert peer.status_connections == 1
    assert peer.status_requests == 1
    # One replica probed; the other waited for the cluster lock's result. (The replicas live through both
    # editions' runs, and either may win the lock in each: compare with the counts before this run.)
    moved = [{scope: a[scope] - b[scope] for scope in a} for a, b in zip(after, before, strict=True)]
    assert sorted(m["cluster"] for m in moved) == [0, 1]
    # Every MISS but the probing request's own shared its probe in that process; the rest were HITs (how
    # many requests arrived before the probe ended depends on the client's pace).
    misses = sum(r.headers["x-cache"] == "MISS" for r in responses)
    assert misses == 1 + sum(m["process"] for m in moved)


async def coalesced_waits(client: httpx.AsyncClient, service: ServiceProcess) -> dict[str, float]:
    """`mcstatbot_coalesced_waits_total` of one replica by scope (0 when a scope has no sample yet)."""
    text = (await client.get(f"{service.url}/metrics")).text
    counts = {"cluster": 0.0, "process": 0.0}
    for line in text.splitlines():
        for scope in counts:
            prefix = f'mcstatbot_coalesced_waits_total{{scope="{scope}"}} '
            if line.startswith(prefix):
                counts[scope] = float(line.removeprefix(prefix))
    return counts
