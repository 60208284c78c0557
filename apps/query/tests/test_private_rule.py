"""The private-address rule: refused by default (403 forbidden_address), allowed with the flag.

No packet leaves loopback: for non-loopback private addresses (10.x, 169.254.169.254) the "allowed" side is
checked at the resolver (what the probe would connect to), not by connecting.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from mcstatbot_common.models import ServerStatus
from mcstatbot_query.errors import ForbiddenAddressError
from mcstatbot_query.resolver import Resolver, forbidden_reason
from mcstatbot_query.settings import QuerySettings

if TYPE_CHECKING:
    from mcstatbot_testkit.minecraft import JavaPeer

SettingsFactory = Callable[..., QuerySettings]
ClientFactory = Callable[[QuerySettings], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.mark.parametrize(
    "server_url",
    [
        "127.0.0.1:25565",
        "127.5.6.7",
        "10.1.2.3:25565",
        "192.168.1.10",
        "172.16.0.1",
        "169.254.169.254",
        "169.254.1.1:80",
        "100.64.0.1",
        "[::1]:25565",
        "[::ffff:127.0.0.1]:25565",
        "[::ffff:10.0.0.1]",
        "[fd00:ec2::254]",
        "[fe80::1]",
        "224.0.0.1",
        "0.0.0.0",
        "240.0.0.1",
        "localhost:25565",
        "localhost",
    ],
)
async def test_private_addresses_refused_by_default(
    server_url: str, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    async with client_factory(settings_factory(allow_private_addresses=False)) as client:
        for edition in ("auto", "java", "bedrock"):
            status = await client.post("/api/v1/status", json={"server_url": server_url, "edition": edition})
            players = await client.get(f"/api/v1/players/{server_url}", params={"edition": edition})
            for response in (status, players):
                assert response.status_code == 403, response.text
                detail = response.json()["detail"]
                assert detail["code"] == "forbidden_address"
                assert detail["message"]


async def test_name_resolving_to_private_address_refused(
    loopback_dns: Any, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    dns = loopback_dns  # conftest.LoopbackDns
    dns.add("internal.test", "A", "10.0.0.7")
    dns.add("mixed.test", "A", "93.184.215.14", "127.0.0.1")
    settings = settings_factory(allow_private_addresses=False, dns_nameservers=dns.nameserver)
    async with client_factory(settings) as client:
        internal = await client.get("/api/v1/status/internal.test:25565")
        mixed = await client.get("/api/v1/status/mixed.test:25565")
    assert internal.status_code == 403
    assert "10.0.0.7" in internal.json()["detail"]["message"]
    assert mixed.status_code == 403  # ANY resolved address counts


async def test_loopback_allowed_with_flag(
    java_peer: JavaPeer, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    async with client_factory(settings_factory(allow_private_addresses=True)) as client:
        by_ip = await client.get(f"/api/v1/status/127.0.0.1:{java_peer.port}", params={"edition": "java"})
        by_name = await client.get(f"/api/v1/status/localhost:{java_peer.port}", params={"edition": "java"})
        by_v6 = await client.get("/api/v1/status/[::1]:1", params={"edition": "java"})
    assert ServerStatus.model_validate(by_ip.json()).online
    named = ServerStatus.model_validate(by_name.json())
    assert named.online
    assert named.host == "localhost"
    assert java_peer.last_handshake_host == "localhost"  # the handshake carries the typed name
    assert by_v6.status_code == 200
    assert by_v6.json()["online"] is False  # nothing listens there, but it was not refused


@pytest.mark.parametrize("host", ["10.1.2.3", "169.254.169.254", "100.64.0.1", "::1", "fd00:ec2::254"])
async def test_resolver_allows_private_with_flag_and_refuses_without(host: str) -> None:
    allowed = await Resolver(allow_private=True).resolve(host, 1.0)
    assert allowed == [ipaddress.ip_address(host)]
    with pytest.raises(ForbiddenAddressError):
        await Resolver(allow_private=False).resolve(host, 1.0)


@pytest.mark.parametrize(
    ("ip", "reason"),
    [
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("::ffff:169.254.169.254", "metadata"),
        ("::ffff:10.0.0.1", "private"),
        ("100.127.255.255", "CGNAT"),
        ("ff02::1", "multicast"),
        ("::", "unspecified"),
        ("2002:7f00:1::", "loopback"),
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_forbidden_reason(ip: str, reason: str | None) -> None:
    result = forbidden_reason(ipaddress.ip_address(ip))
    if reason is None:
        assert result is None
    else:
        assert result is not None
        assert reason in result
