"""Buttons on old messages after a restart (SQLite and DynamoDB), and the query service going away:
stored answers with their age, the circuit breaker opening and closing again. Real processes throughout:
bot service, query service, Java peer, DynamoDB Local, the Bot API test server."""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING

import httpx
import pytest
from mcstatbot_testkit.net import LOOPBACK, free_port
from mcstatbot_testkit.services import query_service

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from mcstatbot_testkit.dynamodb import DynamoDBLocal
    from mcstatbot_testkit.minecraft import JavaPeer
    from mcstatbot_testkit.services import ServiceProcess
    from mcstatbot_testkit.telegram import ApiCall, BotApiServer


def to(chat_id: int) -> Callable[[ApiCall], bool]:
    return lambda call: call.chat_id == chat_id and call.ok


def labelled(call: ApiCall, label: str) -> str:
    for row in call.params["reply_markup"]["inline_keyboard"]:
        for b in row:
            if b["text"] == label:
                return str(b["callback_data"])
    raise AssertionError(label)


async def gauge(url: str, name: str) -> float:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{url}/metrics")).text
    match = re.search(rf"^{name} ([0-9.]+)$", text, flags=re.MULTILINE)
    assert match, name
    return float(match.group(1))


@pytest.mark.parametrize("backend", ["sqlite", "dynamodb"])
async def test_button_on_an_old_message_after_restart(
    backend: str,
    api: BotApiServer,
    start_bot: Callable[..., ServiceProcess],
    java_peer: JavaPeer,
    request: pytest.FixtureRequest,
) -> None:
    env: dict[str, str] = {"STATE_BACKEND": backend}
    if backend == "dynamodb":
        ddb: DynamoDBLocal = request.getfixturevalue("dynamodb")
        env.update(ddb.env())
    chat = 5000 + (backend == "dynamodb")
    bot = start_bot(**env)
    api.send_text(chat, f"/status {java_peer.address}")
    old = await api.wait_for_call("sendMessage", to(chat), timeout=15)
    # a long name: its buttons carry a short reference resolved through the state store
    long_host = "a" * 55 + ".example"
    api.send_text(chat, f"/status {long_host}")
    long_card = await api.wait_for_call(
        "sendMessage", lambda c: to(chat)(c) and long_host in c.text, timeout=20
    )
    assert all(data.startswith(("v1|s|#", "v1|p|#", "v1|a|#")) for data in long_card.button_data())
    # the chat's last server is now the long one; the old message still names the peer
    bot.stop()
    start_bot(**env)

    since = api.last_seq
    api.press_button(old, labelled(old, "Players"))
    edit = await api.wait_for_call("editMessageText", to(chat), since=since, timeout=15)
    assert edit.params["message_id"] == old.result["message_id"]
    assert "Alex" in edit.text
    assert java_peer.address in edit.text

    since = api.last_seq
    api.press_button(long_card, labelled(long_card, "About"))
    edit = await api.wait_for_call("editMessageText", to(chat), since=since, timeout=15)
    assert edit.params["message_id"] == long_card.result["message_id"]
    assert long_host in edit.text

    since = api.last_seq
    api.press_button(old, "v1|p|#doesnotexist", check=False)
    # (the earlier presses' answers come after their edits, maybe after `since`: this one is an alert)
    answer = await api.wait_for_call(
        "answerCallbackQuery", lambda c: bool(c.params.get("show_alert")), since=since
    )
    assert "expired" in answer.params["text"]


async def test_query_service_outage_falls_back_and_breaker_recovers(
    api: BotApiServer, start_bot: Callable[..., ServiceProcess], java_peer: JavaPeer, logs: Path
) -> None:
    env = {
        "ALLOW_PRIVATE_ADDRESSES": "true",
        "DNS_NAMESERVERS": f"{LOOPBACK}:{free_port()}",
        "CACHE_TTL_STATUS": "1",
    }
    query = query_service(logs / "query-outage.log", env)
    query.start()
    try:
        bot = start_bot(
            QUERY_SERVICE_URL=query.url,
            BREAKER_FAILURE_THRESHOLD="2",
            BREAKER_RESET_SECONDS="2",
            QUERY_TIMEOUT="1",
        )
        peer = java_peer.address
        api.send_text(6000, f"/status {peer}")
        fresh = await api.wait_for_call("sendMessage", to(6000), timeout=15)
        assert "Online" in fresh.text
        assert "not answering" not in fresh.text

        query.stop()
        await asyncio.sleep(1.2)
        api.send_text(6001, f"/status {peer}")
        stale = await api.wait_for_call("sendMessage", to(6001), timeout=15)
        assert "🟢 <b>Online</b>" in stale.text
        assert re.search(r"last answer I have, from \d+ seconds? ago", stale.text)
        assert stale.button_data()  # still a server card with buttons

        api.send_text(6002, f"/players {peer}")
        stale_players = await api.wait_for_call("sendMessage", to(6002), timeout=15)
        assert "Alex" in stale_players.text  # from the stored sample
        assert "last answer I have" in stale_players.text

        api.send_text(6003, "/status never-seen.example")
        nothing = await api.wait_for_call("sendMessage", to(6003), timeout=15)
        assert "temporarily unavailable" in nothing.text
        assert await gauge(bot.url, "mcstatbot_circuit_breaker_state") == 2.0  # open

        query.start()
        await asyncio.sleep(2.2)  # the cool-down: the next call is the half-open trial
        api.send_text(6004, f"/status {peer}")
        back = await api.wait_for_call("sendMessage", to(6004), timeout=15)
        assert "Online" in back.text
        assert "not answering" not in back.text
        assert await gauge(bot.url, "mcstatbot_circuit_breaker_state") == 0.0
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"{bot.url}/metrics")).text
        assert 'mcstatbot_fallback_replies_total{kind="stored"} 2.0' in metrics
        assert 'mcstatbot_fallback_replies_total{kind="unavailable"} 1.0' in metrics
        assert 'mcstatbot_circuit_breaker_transitions_total{state="open"}' in metrics
        assert 'mcstatbot_circuit_breaker_transitions_total{state="closed"} 1.0' in metrics
        assert re.search(
            r'mcstatbot_query_requests_total\{endpoint="\w+",outcome="short_circuited"\} [1-9]', metrics
        )
    finally:
        query.stop()
