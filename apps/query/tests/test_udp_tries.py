"""MC_TRIES: a UDP exchange whose first datagram is lost is sent again within MC_TIMEOUT.

The peers are real (the npm Bedrock server, the GameSpy4 responder); between them and the service sits a
relay that loses the first datagram, as a lossy network does.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

import httpx
import pytest
from mcstatbot_common.models import PlayerList, ServerStatus
from mcstatbot_query.settings import QuerySettings
from mcstatbot_testkit.gamespy import GameSpyResponder
from mcstatbot_testkit.udp import LossyUdpRelay

if TYPE_CHECKING:
    from mcstatbot_testkit.minecraft import BedrockPeer, JavaPeer

SettingsFactory = Callable[..., QuerySettings]
ClientFactory = Callable[[QuerySettings], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.mark.parametrize(("tries", "online"), [(2, True), (1, False)])
async def test_bedrock_ping_is_sent_again_after_a_lost_datagram(
    tries: int,
    online: bool,
    bedrock_peer: BedrockPeer,
    settings_factory: SettingsFactory,
    client_factory: ClientFactory,
) -> None:
    before = bedrock_peer.status_requests
    async with LossyUdpRelay(upstream_port=bedrock_peer.port, drop=1) as relay:
        settings = settings_factory(mc_timeout=2.0, mc_tries=tries)
        async with client_factory(settings) as client:
            url = f"/api/v1/status/127.0.0.1:{relay.port}"
            response = await client.get(url, params={"edition": "bedrock"})
    status = ServerStatus.model_validate(response.json())
    assert relay.dropped == 1
    assert status.online is online
    if online:
        assert relay.forwarded == 1
        assert relay.answered == 1
        assert bedrock_peer.status_requests == before + 1
        assert status.version is not None
        assert status.version.name  # the peer's real answer, relayed
    else:
        assert relay.forwarded == 0  # one try: nothing is sent again
        assert bedrock_peer.status_requests == before
        assert status.error is not None
        assert status.error.code == "timeout"


@pytest.mark.parametrize(("tries", "source"), [(2, "query"), (1, "sample")])
async def test_query_handshake_is_sent_again_after_a_lost_datagram(
    tries: int,
    source: str,
    java_peer: JavaPeer,
    settings_factory: SettingsFactory,
    client_factory: ClientFactory,
) -> None:
    names = [f"player{i}" for i in range(12)]
    async with (
        GameSpyResponder(players=names) as query,
        LossyUdpRelay(upstream_port=query.port, port=java_peer.port, drop=1) as relay,
    ):
        settings = settings_factory(mc_timeout=3.0, mc_query_timeout=1.5, mc_tries=tries)
        async with client_factory(settings) as client:
            response = await client.get(f"/api/v1/players/{java_peer.address}", params={"edition": "java"})
    players = PlayerList.model_validate(response.json())
    assert relay.dropped == 1
    assert players.online
    assert players.source == source
    if source == "query":
        assert query.handshakes == 1  # the lost one never reached it
        assert query.full_stat_requests == 1
        assert players.names == names
    else:
        assert query.handshakes == 0
        assert players.names == ["Steve", "Alex"]  # the status sample
