"""The service against real peers on loopback: the npm Java and Bedrock servers and a GameSpy4 responder."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

import httpx
from mcstatbot_common.models import PlayerList, ServerStatus
from mcstatbot_query.settings import QuerySettings
from mcstatbot_testkit.gamespy import GameSpyResponder
from mcstatbot_testkit.net import free_port

if TYPE_CHECKING:
    from mcstatbot_testkit.minecraft import BedrockPeer, JavaPeer

SettingsFactory = Callable[..., QuerySettings]
ClientFactory = Callable[[QuerySettings], AbstractAsyncContextManager[httpx.AsyncClient]]


async def test_java_status_has_coloured_two_line_motd_and_sample(
    java_peer: JavaPeer, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    async with client_factory(settings_factory()) as client:
        response = await client.get(f"/api/v1/status/{java_peer.address}", params={"edition": "java"})
    assert response.status_code == 200
    status = ServerStatus.model_validate(response.json())
    assert status.online
    assert status.edition == "java"
    assert status.port == java_peer.port
    assert status.version is not None
    assert status.version.name == "1.21.1"
    assert status.version.protocol == 767
    assert status.motd is not None
    assert status.motd.clean == "A Minecraft Server\nsecond line"
    assert status.motd.raw == "§aA Minecraft Server\n§6§lsecond line"
    assert status.motd.html == (
        '<span style="color:#55ff55">A Minecraft Server</span><br>'
        '<span style="color:#ffaa00;font-weight:bold">second line</span>'
    )
    assert status.players is not None
    assert (status.players.online, status.players.max) == (2, 20)
    assert [p.name for p in status.players.sample] == ["Steve", "Alex"]
    assert status.latency_ms is not None
    assert status.latency_ms > 0
    assert status.error is None
    assert java_peer.last_handshake_host == "127.0.0.1"


async def test_auto_answers_with_java_for_a_java_server(
    java_peer: JavaPeer, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    async with client_factory(settings_factory()) as client:
        response = await client.post("/api/v1/status", json={"server_url": java_peer.address})
    status = ServerStatus.model_validate(response.json())
    assert status.online
    assert status.edition == "java"


async def test_bedrock_status(
    bedrock_peer: BedrockPeer, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    async with client_factory(settings_factory()) as client:
        explicit = await client.get(f"/api/v1/status/{bedrock_peer.address}", params={"edition": "bedrock"})
        auto = await client.post(
            "/api/v1/status", json={"server_url": bedrock_peer.address, "edition": "auto"}
        )
    for response in (explicit, auto):
        status = ServerStatus.model_validate(response.json())
        assert status.online, status.error
        assert status.edition == "bedrock"
        assert status.motd is not None
        assert status.motd.clean == "mcstatbot bedrock peer"
        assert status.players is not None
        assert status.players.max == 10
        assert status.bedrock is not None
        assert status.bedrock.map_name == "peer world"


async def test_players_from_status_sample_when_query_is_off(
    java_peer: JavaPeer, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    async with client_factory(settings_factory()) as client:
        response = await client.post(
            "/api/v1/players", json={"server_url": java_peer.address, "edition": "java"}
        )
    players = PlayerList.model_validate(response.json())
    assert players.online
    assert players.source == "sample"
    assert players.names == ["Steve", "Alex"]
    assert players.players is not None
    assert players.players.online == 2


async def test_players_full_list_over_query_protocol(
    java_peer: JavaPeer, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    names = [f"player{i}" for i in range(40)]
    async with GameSpyResponder(port=java_peer.port, players=names) as query:
        async with client_factory(settings_factory(mc_query_timeout=1.5)) as client:
            response = await client.get(f"/api/v1/players/{java_peer.address}", params={"edition": "java"})
        assert query.full_stat_requests == 1
    players = PlayerList.model_validate(response.json())
    assert players.online
    assert players.source == "query"
    assert players.names == names


async def test_players_of_bedrock_server_have_counts_only(
    bedrock_peer: BedrockPeer, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    async with client_factory(settings_factory()) as client:
        response = await client.get(f"/api/v1/players/{bedrock_peer.address}", params={"edition": "bedrock"})
    players = PlayerList.model_validate(response.json())
    assert players.online
    assert players.source == "none"
    assert players.names == []


async def test_offline_server_is_refused_not_an_error(
    settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    port = free_port()
    async with client_factory(settings_factory()) as client:
        response = await client.get(f"/api/v1/status/127.0.0.1:{port}", params={"edition": "java"})
    assert response.status_code == 200
    status = ServerStatus.model_validate(response.json())
    assert not status.online
    assert status.error is not None
    assert status.error.code == "refused"


async def test_hostile_markup_from_a_real_server_stays_data(
    java_peer: JavaPeer, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    original = dict(java_peer.config)
    evil_name = "<script>alert('x')</script>"
    java_peer.configure(
        motd="§c<script>alert(1)</script>\n§a<b>bold?</b> & more",
        sample=[{"name": evil_name, "id": "00000000-0000-0000-0000-000000000001"}],
        version={"name": '<img src=x onerror="alert(1)">', "protocol": 767},
    )
    try:
        async with client_factory(settings_factory()) as client:
            response = await client.get(f"/api/v1/status/{java_peer.address}", params={"edition": "java"})
    finally:
        java_peer.configure(motd=original["motd"], sample=original["sample"], version=original["version"])
    status = ServerStatus.model_validate(response.json())
    assert status.motd is not None
    assert "<script" not in status.motd.html
    assert "<b>" not in status.motd.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in status.motd.html
    assert "&amp; more" in status.motd.html
    assert status.motd.clean == "<script>alert(1)</script>\n<b>bold?</b> & more"
    assert status.players is not None
    assert status.players.sample[0].name == evil_name  # data, exactly as sent, in a JSON string
    assert status.version is not None
    assert status.version.name == '<img src=x onerror="alert(1)">'
    assert response.headers["content-type"] == "application/json"


async def test_bedrock_peer_counts_the_ping(
    bedrock_peer: BedrockPeer, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    before = bedrock_peer.status_requests
    async with client_factory(settings_factory()) as client:
        first = await client.get(f"/api/v1/status/{bedrock_peer.address}", params={"edition": "bedrock"})
        cached = await client.get(f"/api/v1/status/{bedrock_peer.address}", params={"edition": "bedrock"})
    assert first.json()["online"] is True
    assert cached.headers["X-Cache"] == "HIT"
    assert bedrock_peer.status_requests == before + 1


async def test_bedrock_port_without_server_is_refused(
    settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    import socket  # noqa: PLC0415 - only this test needs a UDP port

    port = free_port(socket.SOCK_DGRAM)
    async with client_factory(settings_factory()) as client:
        response = await client.get(f"/api/v1/status/127.0.0.1:{port}", params={"edition": "bedrock"})
    body = response.json()
    assert body["online"] is False
    assert body["error"]["code"] == "refused"  # the ICMP port-unreachable answer, not a timeout
