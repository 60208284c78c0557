"""Placeholder answers: a real Java peer answers like each host does, mcstatus reads it, classify() judges.

One Java peer (npm minecraft-protocol) serves the whole module; each case reconfigures what it reports
(version name and protocol, MOTD, player counts) over its control endpoint, then the test probes it with
mcstatus's own client, as the query service does.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

import pytest
from mcstatbot_query.placeholders import (
    RULES_RESOURCE,
    StatusFields,
    classify,
    load_rules,
    normalise,
    parse_rules,
)
from mcstatbot_testkit.minecraft import JavaPeer
from mcstatus import JavaServer

if TYPE_CHECKING:
    from collections.abc import Iterator


@dataclass(frozen=True)
class Answer:
    """What the peer reports: a version (name, protocol), a MOTD, players online and max."""

    version: str
    motd: str | dict[str, Any]
    online: int = 0
    max_players: int = 20
    protocol: int = 767


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JavaPeer]:
    with JavaPeer(tmp_path_factory.mktemp("placeholders") / "java.log", omit_sample=True) as java:
        yield java


async def probe_as(peer: JavaPeer, answer: Answer) -> StatusFields:
    peer.configure(
        version={"name": answer.version, "protocol": answer.protocol},
        motd=answer.motd,
        online=answer.online,
        maxPlayers=answer.max_players,
        sample=[],
    )
    response = await JavaServer("127.0.0.1", peer.port, timeout=5).async_status(tries=1)
    return StatusFields.from_java_response(response)


# rule id -> (how that host answers, the placeholder text kept)
HOST_ANSWERS: dict[str, tuple[Answer, str]] = {
    "aternos-offline": (
        Answer(version="§4● Offline", protocol=46, motd="§fMy Aternos SMP", max_players=0),
        "● Offline",
    ),
    "aternos-transition": (
        Answer(version="§7◌ Loading...", protocol=46, motd="§fMy Aternos SMP", max_players=0),
        "◌ Loading...",
    ),
    "aternos-offline-motd": (
        Answer(version="1.21.1", motd="§cThis server is offline.", max_players=20),
        "This server is offline.",
    ),
    # The sources give only this answer's MOTD, so the version here is a neutral one.
    "aternos-not-found": (
        Answer(version="1.21.1", protocol=46, motd="§4Server not found.", max_players=0),
        "Server not found.",
    ),
    "exaroton-sleeping": (
        Answer(version="§9◉ Sleeping", motd="The Unofficial LoadingArtist Community Server", max_players=10),
        "◉ Sleeping",
    ),
    "minehut-offline": (
        Answer(
            version="Velocity 3.3.0",
            motd="§cServer is offline.\n§7Start via the lobby with §b/join mysmp",
            max_players=100,
        ),
        "Server is offline. Start via the lobby with /join mysmp",
    ),
    "velocity-default": (
        Answer(version="Velocity 3.4.0-SNAPSHOT", motd={"text": "A Velocity Server", "color": "#09add3"}),
        "A Velocity Server",
    ),
    "bungeecord-default": (
        Answer(version="BungeeCord 1.8.x-1.21.x", motd="§1Another Bungee server", max_players=1),
        "Another Bungee server",
    ),
    "offline-version-text": (
        Answer(version="§c§lOFFLINE", protocol=-1, motd="§eBack soon!"),
        "OFFLINE",
    ),
    "zero-slots-offline-motd": (
        Answer(version="1.21.1", motd="§cThis server is offline, please try again later.", max_players=0),
        "This server is offline, please try again later.",
    ),
}


def test_every_rule_has_a_host_answer() -> None:
    assert {rule.id for rule in load_rules()} == set(HOST_ANSWERS)


@pytest.mark.parametrize("rule_id", sorted(HOST_ANSWERS))
async def test_host_placeholder_is_recognised(peer: JavaPeer, rule_id: str) -> None:
    answer, text = HOST_ANSWERS[rule_id]
    placeholder = classify(await probe_as(peer, answer))
    assert placeholder is not None
    assert placeholder.rule == rule_id
    assert placeholder.text == text


async def test_minehut_hibernation_is_a_placeholder(peer: JavaPeer) -> None:
    fields = await probe_as(
        peer,
        Answer(
            version="1.21.1",
            motd="§eThis server is currently hibernating.\n§7Type /join mysmp in the lobby",
            max_players=100,
        ),
    )
    placeholder = classify(fields)
    assert placeholder is not None
    assert placeholder.host == "Minehut"


REAL_SERVERS: dict[str, Answer] = {
    "offline mode in the MOTD": Answer(
        version="Paper 1.21.1", motd="§aCracked SMP §7- offline mode allowed", online=5, max_players=100
    ),
    "offline mode with no slots": Answer(version="Paper 1.21.1", motd="§7offline mode", max_players=0),
    "not offline": Answer(version="1.21.1", motd="§aWelcome! Not offline", online=3),
    "not offline with no slots": Answer(version="1.21.1", motd="§aWelcome! Not offline", max_players=0),
    "sleeping in the name": Answer(version="Paper 1.21.1", motd="§dSleeping beauty SMP", online=1),
    "a plain Paper server": Answer(version="Paper 1.21.1", motd="A Minecraft Server", online=0),
    "a proxy with its own MOTD": Answer(
        version="Velocity 3.4.0", motd="§bMyNetwork §7| §aSurvival, Skyblock", online=40, max_players=500
    ),
    "a join command that is not Minehut's": Answer(
        version="Purpur 1.21.1", motd="§6Towny server §7- /join a town today!", online=12
    ),
    "not found in a sentence": Answer(version="1.21.1", motd="Server not found your base? Ask staff"),
    "offline raids": Answer(version="1.20.4", motd="§cOffline raid protection §7on all claims", online=7),
    "a version range": Answer(version="Requires MC 1.8 / 1.21", protocol=47, motd="§eBig Network"),
}


@pytest.mark.parametrize("case", sorted(REAL_SERVERS))
async def test_real_server_with_similar_words_is_not_a_placeholder(peer: JavaPeer, case: str) -> None:
    fields = await probe_as(peer, REAL_SERVERS[case])
    assert classify(fields) is None


def test_normalise_removes_codes_and_folds_whitespace() -> None:
    assert normalise("§4● Offline") == "● Offline"
    assert normalise("  §cServer is offline.\n§7Start  it  ") == "Server is offline. Start it"
    assert normalise("trailing §") == "trailing"


def test_rules_data_is_rejected_when_malformed() -> None:
    with pytest.raises(ValueError, match="unknown keys"):
        parse_rules({"rule": [{"id": "x", "host": "h", "motd": "a", "colour": "red"}]})
    with pytest.raises(ValueError, match="must check"):
        parse_rules({"rule": [{"id": "x", "host": "h", "max_players": 0}]})
    with pytest.raises(ValueError, match="twice"):
        parse_rules({"rule": [{"id": "x", "host": "h", "motd": "a"}, {"id": "x", "host": "h", "motd": "b"}]})


def test_rules_file_is_valid_toml_with_a_source_for_every_rule() -> None:
    text = resources.files("mcstatbot_query.data").joinpath(RULES_RESOURCE).read_text(encoding="utf-8")
    tomllib.loads(text)
    blocks = text.split("[[rule]]")[1:]
    preceding = text.split("[[rule]]")[:-1]
    assert len(blocks) == len(load_rules())
    for before in preceding:
        comment = before.strip().splitlines()[-1]
        assert comment.startswith("#"), "every rule is preceded by a comment naming its source"
