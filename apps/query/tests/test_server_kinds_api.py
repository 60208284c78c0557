"""Placeholders and what a server runs, through the real service and real peers on loopback.

A Java peer answering like Aternos's proxy for a stopped server, a Forge peer with its mod list, a Paper
peer with a Query responder listing plugins, and a real server whose MOTD says "offline mode".
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from mcstatbot_common.models import MAX_ITEM_NAME, MAX_ITEM_VERSION, MAX_ITEMS, PlayerList, ServerStatus
from mcstatbot_query.settings import QuerySettings
from mcstatbot_testkit.gamespy import GameSpyResponder
from mcstatbot_testkit.minecraft import JavaPeer

if TYPE_CHECKING:
    from collections.abc import Iterator

SettingsFactory = Callable[..., QuerySettings]
ClientFactory = Callable[[QuerySettings], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JavaPeer]:
    with JavaPeer(tmp_path_factory.mktemp("kinds") / "java.log") as java:
        yield java


def answer_like(peer: JavaPeer, **config: Any) -> None:
    """The peer answers with `config` over a plain 1.21.1 server's answer."""
    base: dict[str, Any] = {
        "version": {"name": "1.21.1", "protocol": 767},
        "motd": "§aA Minecraft Server",
        "online": 2,
        "maxPlayers": 20,
        "extra": None,
        "omitSample": False,
    }
    peer.configure(**{**base, **config})
    peer.reset_counts()


ATERNOS_STOPPED = {
    "version": {"name": "§4● Offline", "protocol": 46},
    "motd": "§fMy Aternos SMP",
    "online": 0,
    "maxPlayers": 0,
    "omitSample": True,
}


@pytest.mark.parametrize("edition", ["java", "auto"])
async def test_aternos_placeholder_is_offline_with_its_text(
    peer: JavaPeer, edition: str, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    answer_like(peer, **ATERNOS_STOPPED)
    settings = settings_factory(cache_ttl_offline=17)
    async with client_factory(settings) as client:
        first = await client.get(f"/api/v1/status/{peer.address}", params={"edition": edition})
        again = await client.get(f"/api/v1/status/{peer.address}", params={"edition": edition})
        players = await client.get(f"/api/v1/players/{peer.address}", params={"edition": edition})
    assert first.status_code == 200
    status = ServerStatus.model_validate(first.json())
    assert not status.online
    assert status.edition == edition
    assert status.error is not None
    assert status.error.code == "placeholder"
    assert status.placeholder is not None
    assert (status.placeholder.rule, status.placeholder.host) == ("aternos-offline", "Aternos")
    assert status.placeholder.text == "● Offline"
    assert status.version is not None
    assert status.version.name == "§4● Offline"
    assert status.motd is not None
    assert status.motd.clean == "My Aternos SMP"
    assert status.players is None
    assert status.software is None
    assert "max-age=17" in first.headers["cache-control"]
    # cached as offline: the second status and the player list come from the cache, one probe in all
    cached = ServerStatus.model_validate(again.json())
    assert cached.cached
    assert cached.placeholder == status.placeholder
    listed = PlayerList.model_validate(players.json())
    assert not listed.online
    assert listed.error is not None
    assert listed.error.code == "placeholder"
    assert peer.status_requests == 1


async def test_real_server_saying_offline_mode_in_its_motd_stays_online(
    peer: JavaPeer, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    answer_like(peer, motd="§6Survival §7- offline mode, cracked clients welcome", online=3)
    async with client_factory(settings_factory()) as client:
        response = await client.get(f"/api/v1/status/{peer.address}", params={"edition": "java"})
    status = ServerStatus.model_validate(response.json())
    assert status.online
    assert status.error is None
    assert status.placeholder is None
    assert status.software is not None
    assert (status.software.name, status.software.version) == ("vanilla", "1.21.1")


async def test_forge_server_answers_software_and_mods(
    peer: JavaPeer, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    forge_data = {
        "fmlNetworkVersion": 2,
        "channels": [],
        "mods": [
            {"modId": "minecraft", "modmarker": "1.16.5"},
            {"modId": "forge", "modmarker": "36.2.39"},
            {"modId": "jei", "modmarker": "7.7.1.152"},
            {"modId": "create", "modmarker": "0.5.1.f"},
        ],
    }
    answer_like(peer, version={"name": "1.16.5", "protocol": 754}, extra={"forgeData": forge_data})
    async with client_factory(settings_factory()) as client:
        response = await client.get(f"/api/v1/status/{peer.address}", params={"edition": "java"})
    status = ServerStatus.model_validate(response.json())
    assert status.online
    assert status.software is not None
    assert status.software.model_dump() == {
        "name": "forge",
        "version": "36.2.39",
        "minecraft_version": "1.16.5",
    }
    assert [(m.name, m.version) for m in status.mods] == [("jei", "7.7.1.152"), ("create", "0.5.1.f")]
    assert not status.mods_truncated
    assert status.plugins == []


async def test_a_hostile_mod_list_is_cut_to_the_caps(
    peer: JavaPeer, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    # a status answer is one protocol string (at most 32767 characters): 400 short mods and a long one
    mods = [
        {"modId": "forge", "modmarker": "47.2.0"},
        {"modId": "long-" + "x" * 300, "modmarker": "1." + "9" * 300},
        *({"modId": f"m{i}", "modmarker": "1.0"} for i in range(400)),
    ]
    forge_data = {"fmlNetworkVersion": 2, "channels": [], "mods": mods}
    answer_like(peer, version={"name": "1.20.1", "protocol": 763}, extra={"forgeData": forge_data})
    async with client_factory(settings_factory()) as client:
        response = await client.get(f"/api/v1/status/{peer.address}", params={"edition": "java"})
    status = ServerStatus.model_validate(response.json())
    assert status.online
    assert status.software is not None
    assert status.software.name == "forge"
    assert len(status.mods) == MAX_ITEMS
    assert status.mods_truncated
    assert (status.software.version, status.software.minecraft_version) == ("47.2.0", "1.20.1")
    assert len(status.mods[0].name) == MAX_ITEM_NAME
    assert status.mods[0].name.startswith("long-xxx")
    assert status.mods[0].version is not None
    assert len(status.mods[0].version) == MAX_ITEM_VERSION
    assert status.mods[-1].name == f"m{MAX_ITEMS - 2}"


async def test_paper_with_query_lists_plugins_on_players(
    peer: JavaPeer, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    answer_like(peer, version={"name": "Paper 1.21.1", "protocol": 767})
    plugins = "Paper on 1.21.1-R0.1-SNAPSHOT: LuckPerms 5.4.141; EssentialsX 2.20.1"
    async with (
        GameSpyResponder(port=peer.port, plugins=plugins, players=["Steve", "Alex"]) as query,
        client_factory(settings_factory(mc_query_timeout=1.5)) as client,
    ):
        before = await client.get(f"/api/v1/status/{peer.address}", params={"edition": "java"})
        listed = await client.get(f"/api/v1/players/{peer.address}", params={"edition": "java"})
        after = await client.get(f"/api/v1/status/{peer.address}", params={"edition": "java"})
        assert query.full_stat_requests == 1
    status = ServerStatus.model_validate(before.json())
    assert status.software is not None
    assert status.software.name == "paper"
    assert status.plugins == []  # a status probe does not ask Query
    players = PlayerList.model_validate(listed.json())
    assert players.source == "query"
    assert [(p.name, p.version) for p in players.plugins] == [
        ("LuckPerms", "5.4.141"),
        ("EssentialsX", "2.20.1"),
    ]
    # the status stored by the players probe carries the plugins too
    stored = ServerStatus.model_validate(after.json())
    assert stored.software is not None
    assert (stored.software.name, stored.software.minecraft_version) == ("paper", "1.21.1")
    assert [p.name for p in stored.plugins] == ["LuckPerms", "EssentialsX"]
