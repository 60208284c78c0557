"""Fixtures for the query service tests: real peers on loopback, a loopback DNS server, app clients.

Every test that probes loopback peers sets ALLOW_PRIVATE_ADDRESSES=true. DNS lookups never leave the
machine: tests that use names point DNS_NAMESERVERS at the loopback DNS server below.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import httpx
import pytest
from mcstatbot_query.app import create_app
from mcstatbot_query.settings import QuerySettings
from mcstatbot_testkit.minecraft import BedrockPeer, JavaPeer
from mcstatbot_testkit.services import ServiceProcess, query_service

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator


class LoopbackDns:
    """An authoritative-only DNS server on 127.0.0.1 (UDP) for the tests, answering from `records`.

    `records[(name, "A")] = ["127.0.0.1"]`, `records[(name, "SRV")] = ["0 5 25565 target.test."]`;
    unknown names answer NXDOMAIN. `queries` counts (name, type) pairs asked.
    """

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[str]] = {}
        self.queries: Counter[tuple[str, str]] = Counter()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> LoopbackDns:
        self.sock.settimeout(0.2)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()

    def add(self, name: str, rdtype: str, *values: str) -> None:
        self.records[(name.lower().rstrip("."), rdtype)] = list(values)

    def _serve(self) -> None:
        while not self._stop:
            try:
                data, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with contextlib.suppress(Exception):
                self.sock.sendto(self._answer(data), addr)

    def _answer(self, data: bytes) -> bytes:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries[(name, rdtype)] += 1
        values = self.records.get((name, rdtype))
        if values:
            response.answer.append(
                dns.rrset.from_text_list(question.name, 30, dns.rdataclass.IN, rdtype, values)
            )
        elif not any(key[0] == name for key in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        response.flags |= dns.flags.AA
        return response.to_wire()


@pytest.fixture(scope="session")
def loopback_dns() -> Iterator[LoopbackDns]:
    server = LoopbackDns().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def java_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JavaPeer]:
    """One Java peer for the session (coloured two-line MOTD, two players in the sample)."""
    with JavaPeer(tmp_path_factory.mktemp("peers") / "java.log") as peer:
        yield peer


@pytest.fixture(scope="session")
def bedrock_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BedrockPeer]:
    with BedrockPeer(tmp_path_factory.mktemp("peers") / "bedrock.log") as peer:
        yield peer


def make_settings(**overrides: Any) -> QuerySettings:
    """Test settings: loopback allowed, short timeouts, no SRV lookups unless asked for."""
    base: dict[str, Any] = {
        "allow_private_addresses": True,
        "mc_timeout": 2.0,
        "mc_query_timeout": 0.5,
        "dns_srv": False,
        "redis_url": None,
    }
    base.update(overrides)
    return QuerySettings(**base)


@asynccontextmanager
async def app_client(settings: QuerySettings) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to a fresh app (its lifespan running) in this process."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://query.test", timeout=30) as client:
            yield client


@pytest.fixture
def settings_factory() -> Callable[..., QuerySettings]:
    return make_settings


@pytest.fixture
def client_factory() -> Callable[[QuerySettings], Any]:
    """`async with client_factory(settings) as client:` an httpx client on a fresh app."""
    return app_client


@pytest.fixture(scope="module")
def replicas(cluster: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ServiceProcess]]:
    """Two query-service processes on the module's own `cluster` fixture (a Redis Cluster of the test kit,
    plain or TLS), REDIS_URL its `url` as an operator writes it and REDIS_CLUSTER unset (detected)."""
    tmp_path = tmp_path_factory.mktemp("replicas")
    env = {
        "REDIS_URL": getattr(cluster, "url"),  # noqa: B009 - the module's fixture decides the kind
        "ALLOW_PRIVATE_ADDRESSES": "true",
        "MC_TIMEOUT": "3",
        "MC_QUERY_TIMEOUT": "0.5",
        "DNS_SRV": "false",
        "CACHE_TTL_STATUS": "2",
        "LOG_LEVEL": "WARNING",
    }
    services = [query_service(tmp_path / f"query{i}.log", env) for i in range(2)]
    try:
        for service in services:
            service.start()
        yield services
    finally:
        for service in services:
            service.stop()


async def assert_one_probe_per_ttl(peer: JavaPeer, replicas: list[ServiceProcess]) -> None:
    """100 clients on two replicas: one probe of `peer`; once the 2 s TTL ran out, the next 100 are answered
    stale and refreshed once for both replicas; the cache is up on both."""
    async with httpx.AsyncClient(timeout=30) as client:

        async def burst() -> list[httpx.Response]:
            return await asyncio.gather(
                *(
                    client.post(
                        f"{replicas[i % 2].url}/api/v1/status",
                        json={"server_url": peer.address, "edition": "java"},
                    )
                    for i in range(100)
                )
            )

        peer.reset_counts()
        first = await burst()
        assert all(r.status_code == 200 and r.json()["online"] for r in first)
        assert peer.status_requests == 1, "one probe for 100 clients on two replicas"
        await asyncio.sleep(2.2)  # the 2 s TTL runs out: the next burst is answered stale, refreshed once
        second = await burst()
        assert all(r.status_code == 200 and r.json()["online"] for r in second)
        async with asyncio.timeout(10):  # waits for the one background refresh, measures nothing
            while peer.status_requests < 2:  # noqa: ASYNC110 - the peer is another process: poll it
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        assert peer.status_requests == 2, "one refresh for both replicas in the next TTL window"
        for replica in replicas:
            assert (await client.get(f"{replica.url}/ready")).json()["cache_up"] is True


OneProbePerTtl = Callable[[JavaPeer, list[ServiceProcess]], Awaitable[None]]


@pytest.fixture
def one_probe_per_ttl() -> OneProbePerTtl:
    """`await one_probe_per_ttl(peer, replicas)`: `assert_one_probe_per_ttl` for the cluster test modules."""
    return assert_one_probe_per_ttl
