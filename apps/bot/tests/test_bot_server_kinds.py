"""Placeholders and what a server runs, as users see them: the bot service process, the Bot API test
server (which rejects bad or over-long HTML as Telegram does), the real query service and real Java peers
answering like Aternos's proxy for a stopped server and like a Forge server with a long mod list."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest
from mcstatbot_testkit.minecraft import JavaPeer

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from mcstatbot_testkit.services import ServiceProcess
    from mcstatbot_testkit.telegram import ApiCall, BotApiServer


def to(chat_id: int) -> Callable[[ApiCall], bool]:
    return lambda call: call.chat_id == chat_id and call.ok


@pytest.fixture(scope="module")
def aternos(logs: Path) -> Iterator[JavaPeer]:
    with JavaPeer(
        logs / "aternos.log",
        version={"name": "§4● Offline", "protocol": 46},
        motd="§fMy Aternos SMP",
        online=0,
        max_players=0,
        omit_sample=True,
    ) as peer:
        yield peer


FORGE_DATA: dict[str, Any] = {
    "fmlNetworkVersion": 2,
    "channels": [],
    "mods": [
        {"modId": "minecraft", "modmarker": "1.20.1"},
        {"modId": "forge", "modmarker": "47.2.0"},
        {"modId": "<jei>", "modmarker": "15.2.0.27"},
        *({"modId": f"mod{i}-{'x' * 40}", "modmarker": "1.0.0"} for i in range(300)),
    ],
}


@pytest.fixture(scope="module")
def forge(logs: Path) -> Iterator[JavaPeer]:
    with JavaPeer(
        logs / "forge.log", version={"name": "1.20.1", "protocol": 763}, extra={"forgeData": FORGE_DATA}
    ) as peer:
        yield peer


async def test_placeholder_card_and_software_line_and_about(
    api: BotApiServer, start_bot: Callable[..., ServiceProcess], aternos: JavaPeer, forge: JavaPeer
) -> None:
    start_bot()

    api.send_text(40, f"/status {aternos.address}")
    card = await api.wait_for_call("sendMessage", to(40), timeout=15)
    assert "🔴 <b>Offline</b>" in card.text
    assert "The server is offline (the host shows a placeholder)." in card.text
    assert "Placeholder (Aternos): <i>● Offline</i>" in card.text
    assert "could not be reached" not in card.text

    api.send_text(41, f"/status {forge.address}")
    card = await api.wait_for_call("sendMessage", to(41), timeout=15)
    assert "🟢 <b>Online</b>" in card.text
    assert "Software: Forge 47.2.0 · 256+ mods" in card.text

    since = api.last_seq
    api.press_button(card, next(d for d in card.button_data() if d.startswith("v1|a|")))
    about = await api.wait_for_call("editMessageText", to(41), since=since, timeout=15)
    assert "Software: Forge 47.2.0 (Minecraft 1.20.1)" in about.text
    assert "Mods (256+ mods): &lt;jei&gt; 15.2.0.27, mod0-" in about.text
    assert re.search(r"…and \d+\+ more", about.text)
