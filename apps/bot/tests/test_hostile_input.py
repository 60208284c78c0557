"""Hostile input against the bot process: poison updates, a hostile or buggy answer behind one server,
bodies and update ids no Telegram would send, bidirectional control characters.

- A Bot API 4xx is permanent: the update is acknowledged once (webhook 200, or the polling offset
  moves on), counted (`mcstatbot_updates_total{outcome="refused"}`), never redelivered.
- No input a user or a Minecraft server controls opens the query-service circuit breaker.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response
from mcstatbot_testkit.hostile import Behaviour, HostileServer
from mcstatbot_testkit.net import LOOPBACK, async_wait_for_tcp, free_port
from mcstatbot_testkit.telegram import QUERY_TOO_OLD

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from mcstatbot_testkit.minecraft import JavaPeer
    from mcstatbot_testkit.services import ServiceProcess
    from mcstatbot_testkit.telegram import ApiCall, BotApiServer

HOOK = "/telegram/webhook"
POISON = "/status " + "a" * 4088  # the longest message Telegram lets a user send
BIDI = "\u202e\u2066\u200f"


def to(chat_id: int) -> Callable[[ApiCall], bool]:
    return lambda call: call.chat_id == chat_id


def in_chat(chat_id: int) -> Callable[[dict[str, Any]], bool]:
    return lambda params: params.get("chat_id") == chat_id


def metric(text: str, name: str, labels: str = "") -> float:
    pattern = (
        rf"^{re.escape(name)}{{{re.escape(labels)}}} (\S+)$" if labels else rf"^{re.escape(name)} (\S+)$"
    )
    found = re.search(pattern, text, flags=re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def settled(api: BotApiServer, update_id: int, *, webhook: bool = True) -> list[int | None]:
    """Wait until `update_id` is acknowledged, give a redelivery time to happen, return the statuses
    of its deliveries (webhook)."""
    for _ in range(300):
        if update_id not in api.pending_update_ids:
            break
        await asyncio.sleep(0.05)
    assert update_id not in api.pending_update_ids
    await asyncio.sleep(1.0)  # five redelivery delays: a refused update would be back by now
    assert update_id not in api.pending_update_ids
    return [d.status for d in api.deliveries if d.update_id == update_id] if webhook else []


async def test_poison_updates_are_acknowledged_once(
    api: BotApiServer, start_bot: Callable[..., ServiceProcess], java_peer: JavaPeer
) -> None:
    bot = start_bot(webhook=True)

    # the longest /status a user can send: the reply cuts and escapes what it echoes, and is sent
    update = api.send_text(500, POISON)
    reply = await api.wait_for_call("sendMessage", to(500), timeout=15)
    assert reply.ok
    assert "is not a server address" in reply.text
    assert "a" * 65 not in reply.text
    assert await settled(api, update["update_id"]) == [200]

    # sendMessage refused for good (400, 403): acknowledged, not retried
    for chat_id, code, description in [
        (501, 400, "Bad Request: message is too long"),
        (502, 400, "Bad Request: chat not found"),
        (503, 403, "Forbidden: bot was blocked by the user"),
    ]:
        api.fail_next("sendMessage", code, description, predicate=in_chat(chat_id))
        update = api.send_text(chat_id, "/help")
        assert await settled(api, update["update_id"]) == [200]
        assert [c.ok for c in api.calls_to("sendMessage", chat_id)] == [False]

    # editMessageText: the message was deleted ("message to edit not found")
    api.send_text(510, f"/status {java_peer.address}")
    card = await api.wait_for_call("sendMessage", lambda c: c.chat_id == 510 and c.ok, timeout=15)
    api.delete_message(510, card.result["message_id"])
    since = api.last_seq
    update = api.press_button(card, f"v1|a|a|{java_peer.address}")
    assert await settled(api, update["update_id"]) == [200]
    edits = api.calls_to("editMessageText", 510, since=since)
    assert [(c.ok, c.error_code) for c in edits] == [(False, 400)]
    assert len(api.calls_to("answerCallbackQuery", since=since)) == 1

    # a press whose message Telegram sends as inaccessible (chat, id, date 0), and it is gone too
    since = api.last_seq
    update = api.press_button(card, f"v1|a|a|{java_peer.address}", inaccessible=True)
    assert await settled(api, update["update_id"]) == [200]
    assert [c.error_code for c in api.calls_to("editMessageText", 510, since=since)] == [400]
    assert [c.ok for c in api.calls_to("answerCallbackQuery", since=since)] == [True]

    # answerCallbackQuery refused ("query is too old"): still acknowledged, and the card is still edited
    api.send_text(511, f"/status {java_peer.address}")
    card = await api.wait_for_call("sendMessage", lambda c: c.chat_id == 511 and c.ok, timeout=15)
    since = api.last_seq
    api.fail_next("answerCallbackQuery", 400, QUERY_TOO_OLD)
    update = api.press_button(card, f"v1|a|a|{java_peer.address}")
    assert await settled(api, update["update_id"]) == [200]
    assert [c.error_code for c in api.calls_to("answerCallbackQuery", since=since)] == [400]
    assert [c.ok for c in api.calls_to("editMessageText", 511, since=since)] == [True]

    async with httpx.AsyncClient() as http:
        metrics = (await http.get(f"{bot.url}/metrics")).text
    assert metric(metrics, "mcstatbot_updates_total", 'outcome="refused"') == 6
    assert metric(metrics, "mcstatbot_updates_total", 'outcome="failed"') == 0
    log = bot.log_text()
    assert "refused a reply for good" in log
    assert "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" not in log  # the user's text is not logged


async def test_poison_update_in_polling_mode_moves_the_offset_on(
    api: BotApiServer, start_bot: Callable[..., ServiceProcess]
) -> None:
    start_bot()
    api.fail_next("sendMessage", 400, "Bad Request: message is too long")
    update = api.send_text(520, "/help")
    await api.wait_for_call("sendMessage", to(520), timeout=15)
    await settled(api, update["update_id"], webhook=False)
    assert len(api.calls_to("sendMessage", 520)) == 1
    api.send_text(520, "/about")  # the next update is handled as usual
    assert (await api.wait_for_call("sendMessage", lambda c: c.chat_id == 520 and c.ok, timeout=15)).ok


def _message(update_id: int, chat_id: int, text: str) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": 1,
            "date": 1_700_000_000,
            "chat": {"id": chat_id, "type": "private", "first_name": "T"},
            "from": {"id": chat_id, "is_bot": False, "first_name": "T"},
            "text": text,
            "entities": [{"type": "bot_command", "offset": 0, "length": len(text.split(maxsplit=1)[0])}],
        },
    }


async def test_bodies_and_update_ids_no_telegram_would_send(
    api: BotApiServer, start_bot: Callable[..., ServiceProcess]
) -> None:
    bot = start_bot(webhook=True)
    url = f"{bot.url}{HOOK}"
    async with httpx.AsyncClient(timeout=20) as http:
        # nested deeper than a JSON parser goes, as a bare value and inside an update
        for body in [
            "[" * 100_000 + "]" * 100_000,
            '{"update_id": 1, "x": ' + "[" * 50_000 + "]" * 50_000 + "}",
        ]:
            answer = await http.post(url, content=body, headers={"Content-Type": "application/json"})
            assert answer.status_code == 400
            assert answer.json() == {"ok": False, "detail": "malformed JSON"}
        nested: dict[str, Any] = {"message_id": 1, "date": 1, "chat": {"id": 1, "type": "private"}}
        for _ in range(700):  # valid JSON, but a reply chain no parser of updates should recurse through
            nested = {
                "message_id": 1,
                "date": 1,
                "chat": {"id": 1, "type": "private"},
                "reply_to_message": nested,
            }
        answer = await http.post(url, content=json.dumps({"update_id": 2, "message": nested}))
        assert answer.status_code == 400
        assert answer.json()["ok"] is False

        # an update_id beyond 64 bits (SQLite's INTEGER): handled once, its redelivery a duplicate
        huge = 2**70
        for _ in range(2):
            answer = await http.post(url, content=json.dumps(_message(huge, 530, "/help")))
            assert answer.status_code == 200
        assert answer.json()["outcome"] == "duplicate"
    await api.wait_for_call("sendMessage", to(530), timeout=15)
    await asyncio.sleep(0.5)
    assert len(api.calls_to("sendMessage", 530)) == 1


async def test_bidi_controls_from_users_are_not_echoed(
    api: BotApiServer, start_bot: Callable[..., ServiceProcess]
) -> None:
    start_bot()
    api.send_text(540, f"/status {BIDI}moc.elpmaxe", first_name=f"{BIDI}Eve")
    reply = await api.wait_for_call("sendMessage", to(540), timeout=15)
    api.send_text(540, "/start", first_name=f"{BIDI}Eve")
    hello = await api.wait_for_call("sendMessage", lambda c: c.chat_id == 540 and "Hi" in c.text, timeout=15)
    for text in (reply.text, hello.text):
        assert not set(BIDI) & set(text)
    assert "moc.elpmaxe" in reply.text
    assert "Hi Eve!" in hello.text


# ---------------------------------------------------------------------------------------- the breaker
class BuggyQueryService:
    """A small real HTTP server standing in for a query service with a bug: it answers 500 for one
    server and passes every other request on to the real query service. The real service cannot be
    made to answer 500 on demand (its hostile-input bugs are fixed), so this stand-in is the way to
    show what the bot does when it does."""

    def __init__(self, real_url: str, broken_server: str) -> None:
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.broken = 0
        app = FastAPI()
        client = httpx.AsyncClient(base_url=real_url, timeout=10)
        self.client = client

        @app.api_route("/{path:path}", methods=["GET", "POST"])
        async def forward(path: str, request: Request) -> Response:
            body = await request.body()
            if request.method == "POST" and broken_server in body.decode():
                self.broken += 1
                return Response('{"detail":"Internal Server Error"}', 500, media_type="application/json")
            answer = await client.request(
                request.method, f"/{path}", content=body, headers={"Content-Type": "application/json"}
            )
            return Response(answer.content, answer.status_code, media_type="application/json")

        self.server = uvicorn.Server(uvicorn.Config(app, host=LOOPBACK, port=self.port, log_level="warning"))


@pytest.fixture
async def buggy_query(query: ServiceProcess) -> AsyncIterator[BuggyQueryService]:
    stand_in = BuggyQueryService(query.url, "hostile.example")
    task = asyncio.create_task(stand_in.server.serve())
    await async_wait_for_tcp(stand_in.port)
    try:
        yield stand_in
    finally:
        stand_in.server.should_exit = True
        await task
        await stand_in.client.aclose()


async def _three_chats_then_a_healthy_server(
    api: BotApiServer, bot: ServiceProcess, hostile: str, healthy: str, first_chat: int
) -> None:
    for chat_id in range(first_chat, first_chat + 3):
        api.send_text(chat_id, f"/status {hostile}")
        reply = await api.wait_for_call("sendMessage", to(chat_id), timeout=30)
        assert "🟢 <b>Online</b>" not in reply.text
    api.send_text(first_chat + 3, f"/status {healthy}")
    card = await api.wait_for_call("sendMessage", to(first_chat + 3), timeout=30)
    assert "🟢 <b>Online</b>" in card.text
    assert "temporarily unavailable" not in card.text
    async with httpx.AsyncClient() as http:
        ready = (await http.get(f"{bot.url}/ready")).json()
        metrics = (await http.get(f"{bot.url}/metrics")).text
    assert ready["query_breaker"] == "closed"
    assert metric(metrics, "mcstatbot_circuit_breaker_transitions_total", 'state="open"') == 0


async def test_a_500_for_one_server_does_not_open_the_breaker(
    api: BotApiServer,
    start_bot: Callable[..., ServiceProcess],
    buggy_query: BuggyQueryService,
    java_peer: JavaPeer,
) -> None:
    bot = start_bot(QUERY_SERVICE_URL=buggy_query.url, BREAKER_FAILURE_THRESHOLD="3")
    await _three_chats_then_a_healthy_server(api, bot, "hostile.example", java_peer.address, 550)
    assert buggy_query.broken >= 3


async def test_a_silent_minecraft_server_does_not_open_the_breaker(
    api: BotApiServer, start_bot: Callable[..., ServiceProcess], java_peer: JavaPeer
) -> None:
    # the real query service (MC_TIMEOUT=2) probing a server that never answers; the bot's own
    # timeout is shorter still, so each of its requests times out, which the server controls
    bot = start_bot(QUERY_TIMEOUT="0.5", QUERY_RETRIES="0", BREAKER_FAILURE_THRESHOLD="3")
    async with HostileServer(Behaviour.SILENT) as silent:
        await _three_chats_then_a_healthy_server(
            api, bot, f"{LOOPBACK}:{silent.port}", java_peer.address, 560
        )
