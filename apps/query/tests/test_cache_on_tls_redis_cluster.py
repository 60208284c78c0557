"""The query service's cache on a Redis Cluster as ElastiCache runs it with in-transit encryption and an
AUTH token: the testkit's 3 masters + 3 replicas with TLS only (no plain port; the cluster bus and
replication on TLS too), `requirepass` + `masterauth`, and a test CA given in REDIS_URL's
`ssl_ca_certs` parameter. The client keeps TLS and the token for every node the cluster announces (a
plain connection to any node would get nothing). And one TLS-only redis-server, the single-node path.

Everything here goes through `mcstatbot_common.redis.connect`, which the watcher's slots use too.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import pytest
from mcstatbot_common.addresses import parse_address
from mcstatbot_common.models import Edition
from mcstatbot_common.redis import SharedContextSSLConnection, connect
from mcstatbot_query.redis_cache import RedisCache
from mcstatbot_query.service import key_base
from mcstatbot_query.settings import QuerySettings
from mcstatbot_testkit.minecraft import JavaPeer
from mcstatbot_testkit.net import LOOPBACK, free_port
from mcstatbot_testkit.redis import RedisServer
from mcstatbot_testkit.redis_cluster import RedisCluster as LoopbackCluster
from mcstatbot_testkit.tls import TestCertificates
from pydantic import ValidationError
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import SSLConnection

if TYPE_CHECKING:
    from collections.abc import Iterator
    from contextlib import AbstractAsyncContextManager
    from pathlib import Path

    import httpx
    from mcstatbot_testkit.services import ServiceProcess

SettingsFactory = Callable[..., QuerySettings]
ClientFactory = Callable[[QuerySettings], "AbstractAsyncContextManager[httpx.AsyncClient]"]
TOKEN = secrets.token_urlsafe(24)
DEGRADED = "cache backend unavailable"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> TestCertificates:
    return TestCertificates.make(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCertificates:
    """Another test CA: a client that trusts only this one does not trust the cluster's certificates."""
    return TestCertificates.make(tmp_path_factory.mktemp("other-certs"), name="some other CA")


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, certificates: TestCertificates
) -> Iterator[LoopbackCluster]:
    with LoopbackCluster(tmp_path_factory.mktemp("tls-cluster"), password=TOKEN, tls=certificates) as started:
        yield started


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[JavaPeer]:
    with JavaPeer(tmp_path / "java.log") as started:
        yield started


def as_user(url: str, user: str = "default") -> str:
    """The URL with the token as `user:token@` (ElastiCache RBAC users; `default` is the AUTH token's)."""
    return url.replace(f"://:{TOKEN}@", f"://{user}:{TOKEN}@")


def refused_addresses_on_every_master(client: RedisCluster, per_master: int = 2) -> list[str]:
    """Loopback addresses nobody listens on, chosen so that their keys land on every master."""
    chosen: dict[str, list[str]] = {}
    while len(chosen) < 3 or any(len(found) < per_master for found in chosen.values()):
        address = f"{LOOPBACK}:{free_port()}"
        node = client.get_node_from_key(f"{key_base(parse_address(address), Edition.JAVA)}:error")
        assert node is not None
        found = chosen.setdefault(node.name, [])
        if len(found) < per_master:
            found.append(address)
    return [address for found in chosen.values() for address in found]


def degraded_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and DEGRADED in r.getMessage()
    ]


async def test_connect_finds_the_cluster_over_tls_and_keeps_tls_and_auth_for_every_node(
    cluster: LoopbackCluster,
) -> None:
    """`connect` with REDIS_CLUSTER=auto asks `INFO cluster` over TLS; the cluster client then talks TLS
    with the token and the URL's CA to every node CLUSTER SLOTS announced (they have no plain port)."""
    assert cluster.url.startswith(f"rediss://:{TOKEN}@{LOOPBACK}:")
    assert "ssl_ca_certs=" in cluster.url
    client = await connect(cluster.url, cluster=None)
    try:
        assert isinstance(client, RedisCluster)
        keys = [f"{{mc:server{i}.example.com:25565}}:status" for i in range(30)]
        for key in keys:
            await client.set(key, b"v", ex=60)
        owners = {client.get_node_from_key(key).name for key in keys}  # type: ignore[union-attr]
        assert len(owners) == 3, "the keys landed on every master, each reached over TLS"
        assert [await client.get(key) for key in keys] == [b"v"] * len(keys)
        nodes = client.get_nodes()
        assert {node.port for node in nodes} == set(cluster.master_ports()), "their TLS ports, as announced"
        contexts = set()
        for node in nodes:
            assert issubclass(node.connection_class, SSLConnection)
            assert node.connection_kwargs["password"] == TOKEN
            assert node.connection_kwargs["ssl_ca_certs"] == str(cluster.tls.ca)  # type: ignore[union-attr]
            # one SSLContext for every connection (redis-py alone parses the CA bundle per connection)
            assert node.connection_class is SharedContextSSLConnection
            contexts |= {id(node.connection_class(**node.connection_kwargs).ssl_context.get()) for _ in "12"}
        assert len(contexts) == 1
    finally:
        await client.aclose()


async def test_answers_from_every_master_and_after_a_redirect(
    cluster: LoopbackCluster,
    peer: JavaPeer,
    settings_factory: SettingsFactory,
    client_factory: ClientFactory,
) -> None:
    """Detected (REDIS_CLUSTER unset), `default:<token>@` as ElastiCache's AUTH token user: answers stored
    on all three masters; then a manual failover moves a server's slot, and the cache, still holding the
    old layout, is redirected (MOVED) to the new master, again over TLS with the token: a HIT."""
    url = as_user(cluster.url)
    direct = await connect(url, cluster=True)
    assert isinstance(direct, RedisCluster)
    try:
        addresses = refused_addresses_on_every_master(direct)
        # Redis given time (a busy machine): this is about TLS, the token and redirects, not a slow Redis
        async with client_factory(settings_factory(redis_url=url, redis_timeout=5.0)) as client:
            first = [await client.get(f"/api/v1/status/{a}", params={"edition": "java"}) for a in addresses]
            again = [await client.get(f"/api/v1/status/{a}", params={"edition": "java"}) for a in addresses]
            online = [
                await client.get(f"/api/v1/status/{peer.address}", params={"edition": "java"}) for _ in "12"
            ]
            assert [r.headers["X-Cache"] for r in first] == ["MISS"] * len(addresses)
            assert [r.headers["X-Cache"] for r in again] == ["HIT"] * len(addresses)
            assert all(r.status_code == 200 and r.json()["error"]["code"] == "refused" for r in again)
            assert [(r.json()["online"], r.headers["X-Cache"]) for r in online] == [
                (True, "MISS"),
                (True, "HIT"),
            ]
            assert (await client.get("/ready")).json() == {
                "status": "ready",
                "cache": "redis",
                "cache_up": True,
            }

            moved = addresses[0]
            key = f"{key_base(parse_address(moved), Edition.JAVA)}:error"
            old_master = direct.get_node_from_key(key)
            assert old_master is not None
            assert await direct.execute_command("WAIT", "1", "5000", target_nodes=old_master) == 1
            new_master = await asyncio.to_thread(cluster.promote_replica, int(old_master.port))
            after = await client.get(f"/api/v1/status/{moved}", params={"edition": "java"})
            ready = (await client.get("/ready")).json()
        assert after.headers["X-Cache"] == "HIT", "redirected to the new master, over TLS, with the token"
        assert ready["cache_up"] is True
        assert new_master in cluster.master_ports()
        assert int(old_master.port) not in cluster.master_ports()
    finally:
        await direct.aclose()


async def test_two_replicas_many_clients_one_probe_per_ttl_on_the_tls_cluster(
    peer: JavaPeer,
    replicas: list[ServiceProcess],
    one_probe_per_ttl: Callable[[JavaPeer, list[ServiceProcess]], Awaitable[None]],
) -> None:
    """Two replicas on the TLS cluster, REDIS_URL (`rediss://:<token>@...?ssl_ca_certs=...`) exactly as an
    operator writes it."""
    await one_probe_per_ttl(peer, replicas)


def wrong_token(url: str, _certificates: TestCertificates, _other: TestCertificates) -> str:
    return url.replace(TOKEN, "not-the-token")


def untrusted_ca(url: str, certificates: TestCertificates, other: TestCertificates) -> str:
    return url.replace(str(certificates.ca), str(other.ca))


def no_ca(url: str, _certificates: TestCertificates, _other: TestCertificates) -> str:
    """No `ssl_ca_certs`: the system's trust store, which does not have the test CA."""
    return url.split("?", 1)[0]


def plain_tcp(url: str, _certificates: TestCertificates, _other: TestCertificates) -> str:
    """`redis://` to a TLS port (the CA parameter left out: it needs rediss://)."""
    return url.split("?", 1)[0].replace("rediss://", "redis://")


MISTAKES = [
    pytest.param(wrong_token, "AUTH refused", id="wrong-token"),
    pytest.param(untrusted_ca, "TLS certificate not trusted", id="untrusted-ca"),
    pytest.param(no_ca, "TLS certificate not trusted", id="system-trust-store"),
    pytest.param(plain_tcp, "", id="plain-tcp-to-tls"),
]


async def check_degraded(
    url: str,
    reason: str,
    *,
    peer: JavaPeer,
    settings: QuerySettings,
    client_factory: ClientFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every request answered from a probe (never a 5xx), /ready says degraded, and one warning says why."""
    caplog.set_level(logging.WARNING, logger="mcstatbot_query")
    async with client_factory(settings) as client:
        answers = [
            await client.get(f"/api/v1/status/{peer.address}", params={"edition": "java"}) for _ in "123"
        ]
        ready = (await client.get("/ready")).json()
    assert [(a.status_code, a.json()["online"]) for a in answers] == [(200, True)] * 3
    assert ready == {"status": "degraded", "cache": "redis", "cache_up": False}
    warnings = degraded_warnings(caplog)
    assert len(warnings) == 1, warnings
    assert "degraded mode" in warnings[0]
    assert reason in warnings[0]
    assert TOKEN not in warnings[0]
    assert url.split("?", 1)[0] not in warnings[0]


@pytest.mark.parametrize(("mistake", "reason"), MISTAKES)
@pytest.mark.parametrize("cluster_setting", [None, True], ids=["auto", "cluster"])
async def test_a_wrong_token_or_an_untrusted_ca_is_degraded_mode_with_a_clear_log_line(  # noqa: PLR0917
    cluster: LoopbackCluster,
    certificates: TestCertificates,
    other_ca: TestCertificates,
    java_peer: JavaPeer,
    settings_factory: SettingsFactory,
    client_factory: ClientFactory,
    caplog: pytest.LogCaptureFixture,
    mistake: Callable[[str, TestCertificates, TestCertificates], str],
    reason: str,
    cluster_setting: bool | None,
) -> None:
    url = mistake(cluster.url, certificates, other_ca)
    # time for the TLS handshake to fail as itself, not as a timeout, on a busy machine
    settings = settings_factory(redis_url=url, redis_cluster=cluster_setting, redis_timeout=5.0)
    await check_degraded(
        url, reason, peer=java_peer, settings=settings, client_factory=client_factory, caplog=caplog
    )


@pytest.fixture(scope="module")
def tls_redis(
    tmp_path_factory: pytest.TempPathFactory, certificates: TestCertificates
) -> Iterator[RedisServer]:
    """One redis-server with TLS only and an AUTH token (ElastiCache without cluster mode)."""
    directory = tmp_path_factory.mktemp("tls-redis")
    with RedisServer(directory / "redis.log", password=TOKEN, tls=certificates) as server:
        yield server


async def test_one_tls_redis_with_an_auth_token(
    tls_redis: RedisServer, peer: JavaPeer, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    """`rediss://default:<token>@...?ssl_ca_certs=<CA>`: detected as one Redis, answers cached."""
    url = as_user(tls_redis.url)
    cache = RedisCache(settings_factory(redis_url=url))
    try:
        assert await cache.healthy()
        assert cache.cluster is False
        single = await cache.client()
        assert not isinstance(single, RedisCluster)
        assert single.connection_pool.connection_class is SharedContextSSLConnection  # one SSLContext
    finally:
        await cache.close()
    async with client_factory(settings_factory(redis_url=url)) as client:
        first = await client.get(f"/api/v1/status/{peer.address}", params={"edition": "java"})
        second = await client.get(f"/api/v1/status/{peer.address}", params={"edition": "java"})
        ready = (await client.get("/ready")).json()
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")
    assert ready == {"status": "ready", "cache": "redis", "cache_up": True}


@pytest.mark.parametrize(("mistake", "reason"), MISTAKES)
async def test_one_tls_redis_a_wrong_token_or_an_untrusted_ca_is_degraded_mode(  # noqa: PLR0917
    tls_redis: RedisServer,
    certificates: TestCertificates,
    other_ca: TestCertificates,
    java_peer: JavaPeer,
    settings_factory: SettingsFactory,
    client_factory: ClientFactory,
    caplog: pytest.LogCaptureFixture,
    mistake: Callable[[str, TestCertificates, TestCertificates], str],
    reason: str,
) -> None:
    url = mistake(tls_redis.url, certificates, other_ca)
    settings = settings_factory(redis_url=url, redis_cluster=False)
    await check_degraded(
        url, reason, peer=java_peer, settings=settings, client_factory=client_factory, caplog=caplog
    )


def test_tls_parameters_on_a_plain_url_are_refused_at_start() -> None:
    """redis-py would fail every call with a TypeError (a 5xx, not degraded mode): refused instead."""
    with pytest.raises(ValidationError, match=r"ssl_ca_certs in REDIS_URL need rediss://"):
        QuerySettings(redis_url=f"redis://{LOOPBACK}:6379/0?ssl_ca_certs=/etc/ca.pem")
    assert QuerySettings(redis_url=f"rediss://{LOOPBACK}:6379/0?ssl_ca_certs=/etc/ca.pem").redis_url


async def test_rediss_to_a_port_without_tls_is_degraded_mode_saying_it_got_no_answer(
    tmp_path: Path,
    java_peer: JavaPeer,
    settings_factory: SettingsFactory,
    client_factory: ClientFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with RedisServer(tmp_path / "plain.log", password=TOKEN) as plain:
        url = plain.url.replace("redis://", "rediss://")
        settings = settings_factory(redis_url=url)
        await check_degraded(
            url,
            "no answer in time",
            peer=java_peer,
            settings=settings,
            client_factory=client_factory,
            caplog=caplog,
        )
