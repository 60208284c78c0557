"""Names, SRV records and DNS failures, against a DNS server on loopback (DNS_NAMESERVERS)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import httpx
from mcstatbot_common.models import ServerStatus
from mcstatbot_query.settings import QuerySettings

if TYPE_CHECKING:
    from mcstatbot_testkit.minecraft import JavaPeer

SettingsFactory = Callable[..., QuerySettings]
ClientFactory = Callable[[QuerySettings], AbstractAsyncContextManager[httpx.AsyncClient]]


async def test_srv_record_followed_when_no_port_given(
    loopback_dns: Any, java_peer: JavaPeer, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    loopback_dns.add("_minecraft._tcp.play.test", "SRV", f"0 5 {java_peer.port} mc.play.test.")
    loopback_dns.add("mc.play.test", "A", "127.0.0.1")
    settings = settings_factory(dns_srv=True, dns_nameservers=loopback_dns.nameserver)
    async with client_factory(settings) as client:
        response = await client.get("/api/v1/status/play.test", params={"edition": "java"})
    status = ServerStatus.model_validate(response.json())
    assert status.online, status.error
    assert status.address == "play.test:25565"
    assert status.srv is not None
    assert (status.srv.target, status.srv.port) == ("mc.play.test", java_peer.port)
    assert java_peer.last_handshake_host == "play.test"


async def test_srv_ignored_when_port_given(
    loopback_dns: Any, java_peer: JavaPeer, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    loopback_dns.add("_minecraft._tcp.direct.test", "SRV", "0 5 1 elsewhere.test.")
    loopback_dns.add("direct.test", "A", "127.0.0.1")
    settings = settings_factory(dns_srv=True, dns_nameservers=loopback_dns.nameserver)
    async with client_factory(settings) as client:
        response = await client.get(
            f"/api/v1/status/direct.test:{java_peer.port}", params={"edition": "java"}
        )
    status = ServerStatus.model_validate(response.json())
    assert status.online
    assert status.srv is None
    assert loopback_dns.queries[("_minecraft._tcp.direct.test", "SRV")] == 0


async def test_name_resolved_once_no_rebinding(
    loopback_dns: Any, java_peer: JavaPeer, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    loopback_dns.add("rebind.test", "A", "127.0.0.1")
    settings = settings_factory(dns_nameservers=loopback_dns.nameserver)
    async with client_factory(settings) as client:
        response = await client.get(
            f"/api/v1/status/rebind.test:{java_peer.port}", params={"edition": "java"}
        )
    assert response.json()["online"] is True
    # One look-up, checked, then connected to: nothing asks DNS a second time.
    assert loopback_dns.queries[("rebind.test", "A")] == 1


async def test_srv_target_is_checked_by_the_private_rule(
    loopback_dns: Any, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    loopback_dns.add("_minecraft._tcp.sneaky.test", "SRV", "0 5 25565 inside.test.")
    loopback_dns.add("sneaky.test", "A", "93.184.215.14")
    loopback_dns.add("inside.test", "A", "10.20.30.40")
    settings = settings_factory(
        dns_srv=True, dns_nameservers=loopback_dns.nameserver, allow_private_addresses=False
    )
    async with client_factory(settings) as client:
        response = await client.get("/api/v1/status/sneaky.test", params={"edition": "java"})
    assert response.status_code == 403
    assert response.json()["detail"]["code"] == "forbidden_address"
    assert "10.20.30.40" in response.json()["detail"]["message"]


async def test_unknown_name_is_dns_error(
    loopback_dns: Any, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    settings = settings_factory(dns_srv=True, dns_nameservers=loopback_dns.nameserver)
    async with client_factory(settings) as client:
        status = await client.get("/api/v1/status/nowhere.test", params={"edition": "java"})
        auto = await client.post("/api/v1/status", json={"server_url": "nowhere.test"})
        players = await client.get("/api/v1/players/nowhere.test")
    for response in (status, auto, players):
        assert response.status_code == 200
        body = response.json()
        assert body["online"] is False
        assert body["error"]["code"] == "dns"
    assert status.json()["edition"] == "java"
    assert auto.json()["edition"] == "auto"  # none answered: the requested edition


async def test_every_resolved_address_is_checked_not_only_those_tried(
    loopback_dns: Any, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    """Nine addresses (more than the eight tried), the last (IPv6 comes after IPv4) private: refused."""
    loopback_dns.add("many.test", "A", *(f"93.184.215.{n}" for n in range(10, 18)))
    loopback_dns.add("many.test", "AAAA", "fd00::9")
    settings = settings_factory(dns_nameservers=loopback_dns.nameserver, allow_private_addresses=False)
    async with client_factory(settings) as client:
        response = await client.get("/api/v1/status/many.test", params={"edition": "java"})
    assert response.status_code == 403
    assert response.json()["detail"]["code"] == "forbidden_address"
    assert "fd00::9" in response.json()["detail"]["message"]
