"""What a server runs, from real answers: a Java peer configured like each kind of server, probed by
mcstatus, and the GameSpy4 Query responder of the testkit serving a `plugins` field.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from mcstatbot_query.software import (
    Mod,
    Plugin,
    ServerSoftware,
    Software,
    detect,
    detect_from,
    names,
    parse_plugins,
)
from mcstatbot_testkit.gamespy import GameSpyResponder
from mcstatbot_testkit.minecraft import JavaPeer
from mcstatus import JavaServer

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JavaPeer]:
    with JavaPeer(tmp_path_factory.mktemp("software") / "java.log") as java:
        yield java


async def answer_as(
    peer: JavaPeer,
    version: str,
    protocol: int = 767,
    extra: dict[str, Any] | None = None,
    query: GameSpyResponder | None = None,
) -> ServerSoftware:
    peer.configure(version={"name": version, "protocol": protocol}, extra=extra)
    server = JavaServer("127.0.0.1", peer.port, timeout=5, query_port=query.port if query else None)
    status = await server.async_status(tries=1)
    answered_query = await server.async_query(tries=1) if query is not None else None
    return detect_from(status, answered_query)


FORGE_DATA = {  # Forge 1.13-1.17 (FML2): mods with modId/modmarker, channels
    "fmlNetworkVersion": 2,
    "channels": [{"res": "forge:tier_sorting", "version": "1.0", "required": False}],
    "mods": [
        {"modId": "minecraft", "modmarker": "1.16.5"},
        {"modId": "forge", "modmarker": "36.2.39"},
        {"modId": "jei", "modmarker": "7.7.1.152"},
        {"modId": "create", "modmarker": "0.5.1.f"},
        {"modId": "serverutils", "modmarker": "ANY"},
    ],
}


async def test_forge_with_forge_data_lists_its_mods(peer: JavaPeer) -> None:
    found = await answer_as(peer, "1.16.5", 754, extra={"forgeData": FORGE_DATA})
    assert found.software is Software.FORGE
    assert found.version == "36.2.39"
    assert found.minecraft_version == "1.16.5"
    assert found.mods == (
        Mod("jei", "7.7.1.152"),
        Mod("create", "0.5.1.f"),
        Mod("serverutils", None),
    )
    assert found.modded
    assert not found.mods_truncated
    assert names(found.mods) == ["jei 7.7.1.152", "create 0.5.1.f", "serverutils"]


async def test_old_forge_modinfo_lists_its_mods(peer: JavaPeer) -> None:
    modinfo = {
        "type": "FML",
        "modList": [
            {"modid": "minecraft", "version": "1.12.2"},
            {"modid": "mcp", "version": "9.42"},
            {"modid": "FML", "version": "8.0.99.99"},
            {"modid": "forge", "version": "14.23.5.2847"},
            {"modid": "pixelmon", "version": "7.2.0"},
        ],
    }
    found = await answer_as(peer, "1.12.2", 340, extra={"modinfo": modinfo})
    assert found.software is Software.FORGE
    assert found.version == "14.23.5.2847"
    assert found.mods == (Mod("pixelmon", "7.2.0"),)


async def test_neoforge_saying_only_is_modded(peer: JavaPeer) -> None:
    found = await answer_as(peer, "1.21.4", 769, extra={"isModded": True})
    assert found.software is Software.NEOFORGE
    assert found.minecraft_version == "1.21.4"
    assert found.mods == ()
    assert found.modded


async def test_neoforge_with_forge_data(peer: JavaPeer) -> None:
    forge_data = {
        "fmlNetworkVersion": 3,
        "channels": [],
        "mods": [
            {"modId": "minecraft", "modmarker": "1.20.1"},
            {"modId": "neoforge", "modmarker": "47.1.84"},
            {"modId": "sodium", "modmarker": "0.5.3"},
        ],
    }
    found = await answer_as(peer, "1.20.1", 763, extra={"forgeData": forge_data})
    assert found.software is Software.NEOFORGE
    assert found.version == "47.1.84"
    assert found.mods == (Mod("sodium", "0.5.3"),)


async def test_fabric_named_in_the_version(peer: JavaPeer) -> None:
    found = await answer_as(peer, "Fabric 1.21.1")
    assert found.software is Software.FABRIC
    assert found.minecraft_version == "1.21.1"
    assert found.modded


async def test_paper_with_query_plugins(peer: JavaPeer) -> None:
    plugins = "Paper on 1.21.1-R0.1-SNAPSHOT: LuckPerms 5.4.141; EssentialsX 2.20.1; WorldEdit"
    async with GameSpyResponder(plugins=plugins, version="1.21.1") as query:
        found = await answer_as(peer, "Paper 1.21.1", query=query)
    assert query.full_stat_requests == 1
    assert found.software is Software.PAPER
    assert found.version == "1.21.1"
    assert found.minecraft_version == "1.21.1"
    assert found.plugins == (
        Plugin("LuckPerms", "5.4.141"),
        Plugin("EssentialsX", "2.20.1"),
        Plugin("WorldEdit", None),
    )
    assert not found.modded


async def test_paper_in_the_version_name_alone(peer: JavaPeer) -> None:
    found = await answer_as(peer, "Paper 1.21.1")
    assert (found.software, found.version, found.plugins) == (Software.PAPER, "1.21.1", ())


async def test_query_brand_wins_over_a_plain_version(peer: JavaPeer) -> None:
    async with GameSpyResponder(plugins="CraftBukkit on Bukkit 1.20.4-R0.1-SNAPSHOT: Vault 1.7.3") as query:
        found = await answer_as(peer, "1.20.4", 765, query=query)
    assert found.software is Software.CRAFTBUKKIT
    assert found.version == "1.20.4"
    assert found.plugins == (Plugin("Vault", "1.7.3"),)


@pytest.mark.parametrize(
    ("version_name", "software", "version"),
    [
        ("Velocity 3.4.0-SNAPSHOT (git-8e2f1a2b-b436)", Software.VELOCITY, "3.4.0-SNAPSHOT"),
        ("BungeeCord 1.8.x-1.21.x", Software.BUNGEECORD, "1.8.x-1.21.x"),
        ("Waterfall 1.21", Software.WATERFALL, "1.21"),
        ("Purpur 1.21.1", Software.PURPUR, "1.21.1"),
        ("Spigot 1.8.8", Software.SPIGOT, "1.8.8"),
    ],
)
async def test_named_software_in_the_version(
    peer: JavaPeer, version_name: str, software: Software, version: str
) -> None:
    found = await answer_as(peer, version_name)
    assert found.software is software
    assert found.version == version
    assert found.is_proxy == (software in {Software.VELOCITY, Software.BUNGEECORD, Software.WATERFALL})


async def test_vanilla_with_an_empty_query_plugins_field(peer: JavaPeer) -> None:
    async with GameSpyResponder(plugins="", version="1.21.1") as query:
        found = await answer_as(peer, "1.21.1", query=query)
    assert found == ServerSoftware(software=Software.VANILLA, version="1.21.1", minecraft_version="1.21.1")


async def test_unknown_version_text_says_nothing(peer: JavaPeer) -> None:
    found = await answer_as(peer, "Requires MC 1.8 / 1.21", 47)
    assert found.software is None
    assert found.mods == ()


def test_parse_plugins_shapes() -> None:
    assert parse_plugins("") == (None, None, ())
    assert parse_plugins("Paper on 1.21.1-R0.1-SNAPSHOT") == ("Paper", "1.21.1", ())
    assert parse_plugins("Purpur on 1.21.1: ViaVersion v5.0.3; Chunky 1.4.16") == (
        "Purpur",
        "1.21.1",
        (Plugin("ViaVersion", "5.0.3"), Plugin("Chunky", "1.4.16")),
    )


def test_detect_without_a_network() -> None:
    assert detect("24w14a").software is Software.VANILLA
    assert detect("§cPaper 1.21.1").software is Software.PAPER
    assert detect("1.20.1", is_modded=True).software is Software.NEOFORGE
