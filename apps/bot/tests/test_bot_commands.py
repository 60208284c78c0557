"""The bot as users see it: python-telegram-bot in the real bot service process, talking HTTP to the
Bot API test server, with the real query service and a real Java peer (npm minecraft-protocol) behind it.
Long polling and SQLite state (what `make run` uses)."""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING

import httpx
from mcstatbot_testkit.net import LOOPBACK, free_port

if TYPE_CHECKING:
    from collections.abc import Callable

    from mcstatbot_testkit.minecraft import JavaPeer
    from mcstatbot_testkit.services import ServiceProcess
    from mcstatbot_testkit.telegram import ApiCall, BotApiServer


def to(chat_id: int) -> Callable[[ApiCall], bool]:
    return lambda call: call.chat_id == chat_id and call.ok


def button(call: ApiCall, label: str) -> str:
    markup = call.params["reply_markup"]
    for row in markup["inline_keyboard"]:
        for b in row:
            if b["text"] == label:
                return str(b["callback_data"])
    raise AssertionError(f"no {label} button in {markup}")


def metric(text: str, name: str, labels: str = "") -> float:
    pattern = (
        re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else r"(?:\{\})?") + r" ([0-9.e+-]+)"
    )
    match = re.search(pattern, text)
    return float(match.group(1)) if match else 0.0


async def test_commands_buttons_and_replies(  # noqa: PLR0915 - one bot process for the whole journey
    api: BotApiServer, start_bot: Callable[..., ServiceProcess], java_peer: JavaPeer
) -> None:
    # TYPING_DELAY_SECONDS=0: "typing…" at once, so even a fast first probe shows it
    bot = start_bot(FLOOD_MAX_PROBES="3", FLOOD_WINDOW_SECONDS="60", TYPING_DELAY_SECONDS="0")
    peer = java_peer.address
    assert [c["command"] for c in api.commands] == [
        *("status", "players", "watch", "unwatch", "watches", "history", "live", "servers"),
        *("settings", "language", "help", "about", "start"),
    ]

    api.send_text(1, "/start")
    start = await api.wait_for_call("sendMessage", to(1))
    assert "Hi Tester!" in start.text
    assert "/status" in start.text
    assert start.params["parse_mode"] == "HTML"

    api.send_text(2, "/help")
    assert "/players" in (await api.wait_for_call("sendMessage", to(2))).text
    api.send_text(3, "/about")
    assert "mcstatbot" in (await api.wait_for_call("sendMessage", to(3))).text

    # /status: the card, escaped, with the three buttons naming this server
    api.send_text(10, f"/status {peer}")
    card = await api.wait_for_call("sendMessage", to(10), timeout=15)
    assert "🟢 <b>Online</b>" in card.text
    assert f"<code>{peer}</code>" in card.text
    assert "MOTD: <i>Hello &amp; &lt;welcome&gt;</i>" in card.text
    assert "Players: 3/20 (15% full)" in card.text
    assert "Edition: Java" in card.text
    assert re.search(r"Latency: [🟢🟡🔴] \d+ ms", card.text)
    assert card.button_data() == [f"v1|s|a|{peer}", f"v1|p|a|{peer}", f"v1|a|a|{peer}"]
    typing = api.calls_to("sendChatAction", 10)
    assert typing
    assert typing[0].params["action"] == "typing"

    # each button edits THAT message in place
    message_id = card.result["message_id"]
    since = api.last_seq
    api.press_button(card, button(card, "Players"))
    edit = await api.wait_for_call("editMessageText", to(10), since=since, timeout=15)
    assert edit.params["message_id"] == message_id
    assert re.findall(r"• (.+)", edit.text) == ["&lt;b&gt;", "Alex", "zed"]
    assert "only a sample" in edit.text
    await api.wait_for_call("answerCallbackQuery", since=since)

    since = api.last_seq
    api.press_button(card, button(card, "About"))
    edit = await api.wait_for_call("editMessageText", to(10), since=since)
    assert f"Server on this card: <code>{peer}</code>" in edit.text
    assert edit.button_data() == card.button_data()

    since = api.last_seq
    api.press_button(card, button(card, "Status"))
    edit = await api.wait_for_call("editMessageText", to(10), since=since, timeout=15)
    assert "🟢 <b>Online</b>" in edit.text
    assert api.message(10, message_id)["text"] == edit.text

    # "message is not modified" is not an error: the press is answered, nothing fails
    since = api.last_seq
    api.not_modified_next()
    api.press_button(card, button(card, "About"))
    await api.wait_for_call("answerCallbackQuery", since=since)
    await api.wait_for_call("editMessageText", lambda c: c.error_code == 400, since=since)

    # /players, and /status alone uses the chat's last server
    api.send_text(11, f"/players {peer}")
    players = await api.wait_for_call("sendMessage", to(11), timeout=15)
    assert "👥 <b>Players on</b>" in players.text
    assert "3/20" in players.text
    api.send_text(11, "/status")
    again = await api.wait_for_call("sendMessage", lambda c: to(11)(c) and "Online" in c.text, timeout=15)
    assert f"<code>{peer}</code>" in again.text

    # a group, with the bot's name after the command
    api.send_text(-100200, f"/status@{api.bot_username} {peer}", chat_type="group", user_id=77)
    group = await api.wait_for_call("sendMessage", to(-100200), timeout=15)
    assert "Online" in group.text

    # what goes wrong says what happened and what to do
    api.send_text(20, "/status")
    assert "Which server?" in (await api.wait_for_call("sendMessage", to(20))).text
    api.send_text(21, "/status exa<mple>.com")
    invalid = await api.wait_for_call("sendMessage", to(21))
    assert "<code>exa&lt;mple&gt;.com</code> is not a server address" in invalid.text
    api.send_text(22, "/players host:99999")
    assert "port" in (await api.wait_for_call("sendMessage", to(22))).text
    dead = f"{LOOPBACK}:{free_port()}"
    api.send_text(23, f"/status {dead}")
    offline = await api.wait_for_call("sendMessage", to(23), timeout=15)
    assert "🔴 <b>Offline</b>" in offline.text
    assert "refused" in offline.text
    assert offline.button_data()[0] == f"v1|s|a|{dead}"

    # a failing typing indicator and a 429 do not stop the reply
    api.fail_next("sendChatAction", 500, "Internal Server Error", times=5)
    api.fail_next("sendMessage", 429, retry_after=1, predicate=lambda p: p.get("chat_id") == 24)
    api.send_text(24, f"/status {peer}")
    await api.wait_for_call("sendMessage", to(24), timeout=20)
    assert [c.error_code for c in api.calls_to("sendMessage", 24)] == [429, None]

    # flood control: 3 probes per minute, then ONE "slow down"
    for _ in range(6):
        api.send_text(30, f"/status {peer}")
    await api.wait_for_call("sendMessage", lambda c: to(30)(c) and "Slow down" in c.text, timeout=20)
    for _ in range(100):
        if len(api.calls_to("sendMessage", 30)) >= 4:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)
    texts = [c.text for c in api.calls_to("sendMessage", 30)]
    assert len(texts) == 4
    assert sum("Slow down" in t for t in texts) == 1

    async with httpx.AsyncClient() as http:
        metrics = (await http.get(f"{bot.url}/metrics")).text
    assert metric(metrics, "mcstatbot_commands_total", 'command="status"') >= 8
    assert metric(metrics, "mcstatbot_callbacks_total", 'action="players"') == 1
    assert metric(metrics, "mcstatbot_flood_limited_total") == 3
    assert metric(metrics, "mcstatbot_telegram_api_errors_total", 'kind="rate_limited"') == 1
    assert metric(metrics, "mcstatbot_telegram_api_errors_total", 'kind="bad_request"') == 0
    assert metric(metrics, "mcstatbot_updates_total", 'outcome="failed"') == 0
    assert metric(metrics, "mcstatbot_query_requests_total", 'endpoint="status",outcome="ok"') >= 5
    for name in (
        "mcstatbot_circuit_breaker_state",
        "mcstatbot_state_store_operations_total",
        "mcstatbot_http_requests_total",
    ):
        assert name in metrics
    assert api.token.split(":")[1] not in bot.log_text()
    assert "/status" not in bot.log_text()  # message texts are never logged


async def test_forbidden_address(
    api: BotApiServer,
    start_bot: Callable[..., ServiceProcess],
    strict_query: ServiceProcess,
    java_peer: JavaPeer,
) -> None:
    start_bot(QUERY_SERVICE_URL=strict_query.url)
    api.send_text(40, f"/status {java_peer.address}")
    reply = await api.wait_for_call("sendMessage", to(40), timeout=15)
    assert "private or reserved network address" in reply.text
    assert "unavailable" not in reply.text
