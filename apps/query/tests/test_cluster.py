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
        requests = [
            client.post(
                f"{services[i % 2].url}/api/v1/status", json={"server_url": peer.address, "edition": edition}
            )
            for i in range(100)
        ]
        responses = await asyncio.gather(*requests)
        metrics = [(await client.get(f"{s.url}/metrics")).text for s in services]
    assert all(r.status_code == 200 for r in responses)
    assert all(r.json()["online"] for r in responses)
    assert peer.status_connections == 1
    assert peer.status_requests == 1
    # One replica probed; the other waited for the cluster lock's result.
    assert any('mcstatbot_coalesced_waits_total{scope="cluster"} 1.0' in text for text in metrics)
    assert any('mcstatbot_coalesced_waits_total{scope="process"}' in text for text in metrics)
