"""The query service's cache on a real Redis Cluster (testkit: 3 masters + 3 replicas of Debian's
redis-server on loopback): detected by itself, one server's keys in one slot, one probe for two replicas
and many clients, a master killed mid-load failed over with every request answered, AUTH tokens (TLS:
test_cache_on_tls_redis_cluster.py).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import pytest
from mcstatbot_common.addresses import parse_address
from mcstatbot_common.models import Edition
from mcstatbot_query.redis_cache import RedisCache
from mcstatbot_query.service import key_base, lock_key
from mcstatbot_query.settings import QuerySettings
from mcstatbot_testkit.minecraft import JavaPeer
from mcstatbot_testkit.net import LOOPBACK, free_port
from mcstatbot_testkit.redis import RedisServer
from mcstatbot_testkit.redis_cluster import RedisCluster as LoopbackCluster
from redis.asyncio.cluster import RedisCluster

if TYPE_CHECKING:
    from collections.abc import Iterator
    from contextlib import AbstractAsyncContextManager
    from pathlib import Path

    import httpx
    from mcstatbot_testkit.services import ServiceProcess

SettingsFactory = Callable[..., QuerySettings]
ClientFactory = Callable[[QuerySettings], "AbstractAsyncContextManager[httpx.AsyncClient]"]
FAILOVER_SETTINGS = {
    "cache_ttl_status": 1,
    "cache_ttl_players": 1,
    "cache_stale_seconds": 0,
    "redis_backoff": 0.2,
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackCluster]:
    with LoopbackCluster(tmp_path_factory.mktemp("redis-cluster")) as started:
        yield started


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[JavaPeer]:
    with JavaPeer(tmp_path / "java.log") as started:
        yield started


async def direct_client(cluster: LoopbackCluster) -> RedisCluster:
    live = next(node.port for node in cluster.nodes if node.running)
    client = RedisCluster(host=LOOPBACK, port=live, password=cluster.password)
    await client.initialize()
    return client


async def synced_owner(cluster: LoopbackCluster, key: str) -> int:
    """The port of the master holding `key`, once its replica has caught up (else it may not take over)."""
    direct = await direct_client(cluster)
    try:
        owner = direct.get_node_from_key(key)
        assert owner is not None
        await direct.set(key.rsplit(":", 1)[0] + ":sync", b"1")
        assert await direct.execute_command("WAIT", "1", "5000", target_nodes=owner) == 1
        return int(owner.port)
    finally:
        await direct.aclose()


async def until_cache_up(client: httpx.AsyncClient) -> None:
    """Ask /ready until the cache answers again; bounded, it waits for the new topology, measures nothing."""
    async with asyncio.timeout(30):
        while True:
            if (await client.get("/ready")).json()["cache_up"]:
                return
            await asyncio.sleep(0.2)


def java_base(peer: JavaPeer) -> str:
    return key_base(parse_address(peer.address), Edition.JAVA)


async def test_a_cluster_is_detected_and_a_single_redis_is_not(
    cluster: LoopbackCluster, tmp_path: Path
) -> None:
    on_cluster = RedisCache(QuerySettings(redis_url=cluster.url))
    try:
        assert await on_cluster.healthy()
        assert on_cluster.cluster is True
        assert isinstance(await on_cluster.client(), RedisCluster)
    finally:
        await on_cluster.close()
    with RedisServer(tmp_path / "redis.log") as single:
        on_single = RedisCache(QuerySettings(redis_url=single.url))
        try:
            assert await on_single.healthy()
            assert on_single.cluster is False
            assert not isinstance(await on_single.client(), RedisCluster)
        finally:
            await on_single.close()
        for url, said in ((cluster.url, True), (single.url, False)):  # REDIS_CLUSTER given: no INFO
            told = RedisCache(QuerySettings(redis_url=url, redis_cluster=said))
            try:
                assert isinstance(await told.client(), RedisCluster) is said
                assert await told.healthy()
            finally:
                await told.close()
    assert QuerySettings(redis_cluster="auto").redis_cluster is None
    assert QuerySettings(redis_cluster="true").redis_cluster is True


async def test_one_servers_keys_share_a_slot_and_answers_come_from_the_cluster(
    cluster: LoopbackCluster,
    peer: JavaPeer,
    settings_factory: SettingsFactory,
    client_factory: ClientFactory,
) -> None:
    # Redis given time (a busy machine): this is about where the keys go, not about a slow Redis
    settings = settings_factory(redis_url=cluster.url, redis_timeout=5.0)
    url = f"/api/v1/players/{peer.address}"
    async with client_factory(settings) as client:
        first = await client.get(url, params={"edition": "java"})
        second = await client.get(url, params={"edition": "java"})
        status = await client.get(f"/api/v1/status/{peer.address}", params={"edition": "java"})
        ready = (await client.get("/ready")).json()
    assert (first.headers["X-Cache"], second.headers["X-Cache"], status.headers["X-Cache"]) == (
        "MISS",
        "HIT",
        "HIT",  # the players probe stored the status too: one MULTI/EXEC in one slot
    )
    assert ready == {"status": "ready", "cache": "redis", "cache_up": True}
    base = java_base(peer)
    keys = [f"{base}:status", f"{base}:players", f"{base}:error", lock_key(base, "status")]
    direct = await direct_client(cluster)
    try:
        assert len({direct.keyslot(key) for key in keys}) == 1
        assert await direct.exists(f"{base}:status", f"{base}:players") == 2
        assert 0 < await direct.pttl(f"{base}:players") <= (30 + 30) * 1000
    finally:
        await direct.aclose()


async def test_two_replicas_many_clients_one_probe_per_ttl(
    peer: JavaPeer,
    replicas: list[ServiceProcess],
    one_probe_per_ttl: Callable[[JavaPeer, list[ServiceProcess]], Awaitable[None]],
) -> None:
    """Two replicas on the plain cluster (REDIS_CLUSTER unset: detected)."""
    await one_probe_per_ttl(peer, replicas)


async def test_auth_token_in_the_url_as_elasticache_gives_it(
    tmp_path: Path, peer: JavaPeer, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    """`user:token@` in REDIS_URL (ElastiCache's AUTH token for the `default` user); a wrong token is
    degraded mode (answers from probes, never a 5xx). Plain TCP here; TLS with an AUTH token, on a
    cluster and on one node, is test_cache_on_tls_redis_cluster.py."""
    token = secrets.token_urlsafe(24)
    with LoopbackCluster(tmp_path / "auth-cluster", password=token) as secured:
        url = secured.url.replace(f"redis://:{token}@", f"redis://default:{token}@")
        async with client_factory(settings_factory(redis_url=url)) as client:
            first = await client.get(f"/api/v1/status/{peer.address}", params={"edition": "java"})
            second = await client.get(f"/api/v1/status/{peer.address}", params={"edition": "java"})
            ready = (await client.get("/ready")).json()
        assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")
        assert ready["cache_up"] is True
        wrong = url.replace(token, "not-the-token")
        async with client_factory(settings_factory(redis_url=wrong)) as client:
            answers = [await client.get(f"/api/v1/status/{peer.address}") for _ in range(2)]
            ready = (await client.get("/ready")).json()
        assert [a.status_code for a in answers] == [200, 200]
        assert all(a.json()["online"] for a in answers)
        assert ready == {"status": "degraded", "cache": "redis", "cache_up": False}


async def test_a_master_killed_mid_load_is_failed_over_and_the_cache_comes_back(
    cluster: LoopbackCluster,
    peer: JavaPeer,
    settings_factory: SettingsFactory,
    client_factory: ClientFactory,
) -> None:
    """Runs last in this module: it kills a master of the module's cluster (and restarts it)."""
    settings = settings_factory(
        redis_url=cluster.url,
        cache_ttl_status=1,
        cache_ttl_players=1,
        cache_stale_seconds=0,
        redis_backoff=0.2,
    )
    owner_port = await synced_owner(cluster, f"{java_base(peer)}:status")
    paths = [
        (f"/api/v1/status/{peer.address}", "java"),
        (f"/api/v1/players/{peer.address}", "java"),
        (f"/api/v1/status/{peer.address}", "auto"),
    ]
    codes: list[int] = []
    stop = asyncio.Event()
    answering = asyncio.Event()

    async def load(client: httpx.AsyncClient, worker: int) -> None:
        while not stop.is_set():
            path, edition = paths[worker % len(paths)]
            codes.append((await client.get(path, params={"edition": edition})).status_code)
            answering.set()
            await asyncio.sleep(0.01)

    async with client_factory(settings) as client:
        workers = [asyncio.create_task(load(client, i)) for i in range(12)]
        try:
            async with asyncio.timeout(30):  # answers before the kill (a busy machine takes longer)
                await answering.wait()
            await asyncio.sleep(1.0)
            before = len(codes)
            killed = cluster.kill_master(owner_port)
            promoted = await asyncio.to_thread(cluster.wait_for_failover, killed)
            await asyncio.sleep(2.0)
        finally:
            stop.set()
            await asyncio.gather(*workers)
        assert before > 0
        assert len(codes) > before, "requests went on during the failover"
        assert set(codes) == {200}, "every request answered, never a 5xx"

        # By itself, the cache is used again: an offline answer (10 s TTL) is stored in the cluster.
        refused = f"{LOOPBACK}:{free_port()}"
        await until_cache_up(client)
        first = await client.get(f"/api/v1/status/{refused}", params={"edition": "java"})
        second = await client.get(f"/api/v1/status/{refused}", params={"edition": "java"})
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")
    direct = await direct_client(cluster)
    try:
        base = key_base(parse_address(refused), Edition.JAVA)
        assert await direct.exists(f"{base}:error") == 1
        assert promoted in cluster.master_ports()
    finally:
        await direct.aclose()
    await asyncio.to_thread(cluster.restart_node, killed)
