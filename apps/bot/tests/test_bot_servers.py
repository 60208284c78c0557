"""/servers through the Bot API test server, with the real bot process, the real query service and
real Java peers (packages/testkit), some of them offline: one line per server the chat watches or asked
about, a button per server that sends its card, and Refresh, which edits in place or, when nothing
changed, says so like the Status button."""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING

import pytest
from mcstatbot_testkit.minecraft import JavaPeer
from mcstatbot_testkit.net import LOOPBACK, free_port
from mcstatbot_testkit.services import query_service
from mcstatbot_testkit.telegram import parse_html

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from mcstatbot_testkit.services import ServiceProcess
    from mcstatbot_testkit.telegram import ApiCall, BotApiServer

STATUS_TTL = 3


def to(chat_id: int) -> Callable[[ApiCall], bool]:
    return lambda call: call.chat_id == chat_id and call.ok


def keyboard(call: ApiCall) -> list[tuple[str, str]]:
    markup = call.params.get("reply_markup") or {}
    return [(b["text"], b["callback_data"]) for row in markup.get("inline_keyboard", []) for b in row]


@pytest.fixture(scope="module")
def cached_query(logs: Path) -> Iterator[ServiceProcess]:
    """A query service that keeps an answer STATUS_TTL seconds, online or not (the shared one: 1 s)."""
    env = {
        "DNS_NAMESERVERS": f"{LOOPBACK}:{free_port()}",  # nothing answers: no lookup leaves the machine
        "MC_TIMEOUT": "2",
        "CACHE_TTL_STATUS": str(STATUS_TTL),
        "CACHE_TTL_PLAYERS": str(STATUS_TTL),
        "CACHE_TTL_OFFLINE": str(STATUS_TTL),
        "ALLOW_PRIVATE_ADDRESSES": "true",
    }
    with query_service(logs / "query-servers.log", env) as service:
        yield service


@pytest.fixture
def peers(logs: Path, tmp_path: Path) -> Iterator[tuple[JavaPeer, JavaPeer]]:
    with (
        JavaPeer(logs / f"java-servers-a-{tmp_path.name}.log", online=3, max_players=20) as first,
        JavaPeer(logs / f"java-servers-b-{tmp_path.name}.log", online=1, max_players=10) as second,
    ):
        yield first, second


async def test_servers_lists_watched_and_recent_servers_opens_cards_and_refreshes(
    api: BotApiServer,
    start_bot: Callable[..., ServiceProcess],
    cached_query: ServiceProcess,
    peers: tuple[JavaPeer, JavaPeer],
) -> None:
    start_bot(QUERY_SERVICE_URL=cached_query.url, FLOOD_MAX_PROBES="50")
    up, stopped = peers
    nothing = f"{LOOPBACK}:{free_port()}"  # nothing listens: refused, offline
    chat = 901

    since = api.last_seq
    api.send_text(chat, "/servers")
    empty = await api.wait_for_call("sendMessage", to(chat), since=since, timeout=15)
    assert "no servers yet" in empty.text

    stopped.stop()
    for text in (f"/status {stopped.address}", f"/status {up.address}", f"/watch {nothing}"):
        since = api.last_seq
        api.send_text(chat, text)
        await api.wait_for_call("sendMessage", to(chat), since=since, timeout=15)

    since = api.last_seq
    api.send_text(chat, "/servers")
    board = await api.wait_for_call("sendMessage", to(chat), since=since, timeout=15)
    lines = parse_html(board.text).split("\n")
    assert lines[0] == "📋 This chat's servers"
    # the watched server first, then the recent ones, the most recent first
    assert lines[1] == f"🔴 {nothing} · offline"
    assert re.fullmatch(rf"🟢 {re.escape(up.address)} · online · 👥 3/20 · \S+ \d+ ms", lines[2])
    assert lines[3] == f"🔴 {stopped.address} · offline"
    assert len(lines) == 4
    buttons = keyboard(board)
    assert [label for label, _ in buttons] == [nothing, up.address, stopped.address, "Refresh"]

    # a server's button: its status card as a new message (with its buttons); the dashboard stays
    since = api.last_seq
    api.press_button(board, buttons[1][1])
    card = await api.wait_for_call("sendMessage", to(chat), since=since, timeout=15)
    assert "Online" in parse_html(card.text)
    assert [label for label, _ in keyboard(card)] == ["Status", "Players", "About"]
    await api.wait_for_call("answerCallbackQuery", since=since, timeout=15)
    assert api.calls_to("editMessageText", chat, since=since) == []
    await refresh_then_change(api, chat, board, up, stopped)


async def refresh_then_change(
    api: BotApiServer, chat: int, board: ApiCall, up: JavaPeer, stopped: JavaPeer
) -> None:
    # Refresh within the answers' TTL: nothing would change, so a notice and no edit
    since = api.last_seq
    api.press_button(board, "v1|d|refresh")
    notice = await api.wait_for_call("answerCallbackQuery", since=since, timeout=15)
    assert notice.params["text"].startswith("✅ Up to date: checked")
    await asyncio.sleep(0.5)
    assert api.calls_to("editMessageText", chat, since=since) == []

    # the server comes back and the other gains players: Refresh edits the message in place
    stopped.start()
    up.configure(online=5)
    await asyncio.sleep(STATUS_TTL + 0.5)
    # (a refresh edits for any change, a new latency too: pressed until both changes show)
    shown = ""
    for _ in range(20):
        since = api.last_seq
        api.press_button(board, "v1|d|refresh")
        await api.wait_for_call("answerCallbackQuery", since=since, timeout=15)
        edits = api.calls_to("editMessageText", chat, since=since)
        for edit in edits:
            assert edit.ok
            assert edit.params["message_id"] == board.result["message_id"]
            shown = parse_html(edit.text)
        if "👥 5/20" in shown and f"🟢 {stopped.address}" in shown:
            break
        await asyncio.sleep(0.5)
    assert "👥 5/20" in shown
    assert re.search(rf"🟢 {re.escape(stopped.address)} · online · 👥 1/10", shown)


async def test_servers_in_the_users_language(
    api: BotApiServer, start_bot: Callable[..., ServiceProcess], cached_query: ServiceProcess, logs: Path
) -> None:
    start_bot(QUERY_SERVICE_URL=cached_query.url)
    with JavaPeer(logs / "java-servers-de.log", online=2, max_players=8) as peer:
        chat = 911
        since = api.last_seq
        api.send_text(chat, f"/status {peer.address}", language_code="de")
        await api.wait_for_call("sendMessage", to(chat), since=since, timeout=15)
        since = api.last_seq
        api.send_text(chat, "/servers", language_code="de")
        board = await api.wait_for_call("sendMessage", to(chat), since=since, timeout=15)
    shown = parse_html(board.text)
    assert shown.startswith("📋 Die Server dieses Chats\n")
    assert f"🟢 {peer.address} · erreichbar · 👥 2/8" in shown
    assert [label for label, _ in keyboard(board)] == [peer.address, "Aktualisieren"]
