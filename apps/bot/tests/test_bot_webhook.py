"""Webhook mode: the secret, bad bodies, acknowledging only handled updates, one handling per update_id
across two bot instances sharing the state store, and SIGTERM during a burst losing nothing.

The Bot API test server delivers updates as Telegram does: POSTs with the secret header, redelivered
after a non-2xx answer or a refused connection until acknowledged."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from mcstatbot_testkit.net import LOOPBACK, free_port

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from mcstatbot_testkit.dynamodb import DynamoDBLocal
    from mcstatbot_testkit.minecraft import JavaPeer
    from mcstatbot_testkit.services import ServiceProcess
    from mcstatbot_testkit.telegram import ApiCall, BotApiServer

SECRET = "webhook-secret-for-tests-0123456789"  # noqa: S105 - a test value
HOOK = "/telegram/webhook"


def to(chat_id: int) -> Callable[[ApiCall], bool]:
    return lambda call: call.chat_id == chat_id and call.ok


def update_body(update_id: int, chat_id: int, text: str) -> dict[str, Any]:
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


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=20) as client:
        yield client


async def test_secret_bad_bodies_and_redelivery(
    api: BotApiServer, start_bot: Callable[..., ServiceProcess], http: httpx.AsyncClient
) -> None:
    bot = start_bot(webhook=True, WEBHOOK_SECRET=SECRET)
    assert api.webhook_url == f"{bot.url}{HOOK}"  # registered at start, with the secret
    url = f"{bot.url}{HOOK}"
    good = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
    body = json.dumps(update_body(1, 900, "/help"))

    assert (
        await http.post(url, content=body, headers={**good, "X-Telegram-Bot-Api-Secret-Token": "x"})
    ).status_code == 403
    assert (await http.post(url, content=body)).status_code == 403
    assert (await http.post(url, content="{not json", headers=good)).status_code == 400
    assert (await http.post(url, content="[1, 2]", headers=good)).status_code == 400
    assert (await http.post(url, content=json.dumps({"update_id": "x"}), headers=good)).status_code == 400
    for broken in ({"update_id": 9, "message": "x"}, {"update_id": 9, "message": {"chat": 1}}):
        assert (await http.post(url, content=json.dumps(broken), headers=good)).status_code == 400
    oversize = b'{"update_id": 5, "pad": "' + b"x" * (1024 * 1024) + b'"}'
    assert (await http.post(url, content=oversize, headers=good)).status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the stream itself is capped
        for _ in range(40):
            yield b"x" * 65536

    assert (await http.post(url, content=chunks(), headers=good)).status_code == 413
    assert api.calls_to("sendMessage", 900) == []

    # still alive and serving real deliveries
    assert (await http.get(f"{bot.url}/health")).status_code == 200
    api.send_text(901, "/help")
    await api.wait_for_call("sendMessage", to(901))

    # a handling that fails (the Bot API answers 500 once) is not acknowledged: Telegram redelivers
    api.fail_next("sendMessage", 500, "Internal Server Error", predicate=lambda p: p.get("chat_id") == 902)
    update = api.send_text(902, "/about")
    await api.wait_for_call("sendMessage", to(902), timeout=15)
    for _ in range(100):
        if update["update_id"] not in api.pending_update_ids:
            break
        await asyncio.sleep(0.05)
    statuses = [d.status for d in api.deliveries if d.update_id == update["update_id"]]
    assert statuses == [500, 200]
    assert [c.ok for c in api.calls_to("sendMessage", 902)] == [False, True]

    metrics = (await http.get(f"{bot.url}/metrics")).text
    assert 'mcstatbot_updates_total{outcome="rejected"} 9.0' in metrics
    assert 'mcstatbot_updates_total{outcome="failed"} 1.0' in metrics
    assert SECRET not in bot.log_text()


@pytest.mark.parametrize("backend", ["sqlite", "dynamodb"])
async def test_duplicate_update_handled_once_across_two_instances(  # noqa: PLR0917 - fixtures
    backend: str,
    api: BotApiServer,
    start_bot: Callable[..., ServiceProcess],
    java_peer: JavaPeer,
    http: httpx.AsyncClient,
    request: pytest.FixtureRequest,
) -> None:
    env: dict[str, str] = {"STATE_BACKEND": backend, "WEBHOOK_SECRET": SECRET, "WEBHOOK_URL": ""}
    if backend == "dynamodb":
        ddb: DynamoDBLocal = request.getfixturevalue("dynamodb")
        env.update(ddb.env())
    first = start_bot(webhook=True, **env)
    second = start_bot(webhook=True, **env)
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    base = 7_000_000 + (backend == "dynamodb") * 1000
    for n in range(3):
        body = update_body(base + n, base + n, f"/status {java_peer.address}")

        async def deliver(instance: ServiceProcess, body: dict[str, Any] = body) -> int:
            # like Telegram: retry until a 2xx (a BUSY 503 means the other replica is on it)
            for _ in range(100):
                response = await http.post(f"{instance.url}{HOOK}", json=body, headers=headers)
                if response.is_success:
                    return response.status_code
                await asyncio.sleep(0.1)
            raise AssertionError("never acknowledged")

        assert list(await asyncio.gather(deliver(first), deliver(second))) == [200, 200]
        await api.wait_for_call("sendMessage", to(base + n), timeout=15)
        await asyncio.sleep(0.3)
        assert len(api.calls_to("sendMessage", base + n)) == 1
        # and a late redelivery to either replica is acknowledged without a second reply
        assert await deliver(second) == 200
        assert await deliver(first) == 200
        assert len(api.calls_to("sendMessage", base + n)) == 1


async def test_sigterm_during_a_burst_loses_nothing(
    api: BotApiServer, start_bot: Callable[..., ServiceProcess], java_peer: JavaPeer
) -> None:
    # A listener that accepts connections and never answers: probes of it take the query service's whole
    # MC_TIMEOUT, so those updates are surely in flight when SIGTERM arrives.
    silent = socket.socket()
    silent.bind((LOOPBACK, 0))
    silent.listen(64)
    slow = f"{LOOPBACK}:{silent.getsockname()[1]}"
    port = free_port()
    try:
        bot = start_bot(port=port, webhook=True, WEBHOOK_SECRET=SECRET, GRACEFUL_SHUTDOWN_SECONDS="20")
        slow_chats = list(range(8000, 8010))
        fast_chats = list(range(8100, 8120))
        for chat in slow_chats:
            api.send_text(chat, f"/status {slow}")
        for chat in fast_chats:
            api.send_text(chat, f"/status {java_peer.address}")
        await api.wait_for_call("sendMessage", lambda c: c.ok and c.chat_id in fast_chats, timeout=15)
        sigterm_at = time.time()
        bot.stop()  # SIGTERM mid-burst: in-flight updates finish, then it exits; new deliveries are refused
        assert bot.proc is not None
        assert bot.proc.returncode in {0, -15}  # uvicorn re-raises SIGTERM after a clean shutdown
        finished_after_sigterm = [c for c in api.calls_to("sendMessage") if c.ok and c.at > sigterm_at]
        assert finished_after_sigterm  # the slow ones were in flight and were still answered
        start_bot(port=port, webhook=True, WEBHOOK_SECRET=SECRET)  # the replacement, same URL
        for _ in range(600):
            if not api.pending_update_ids:
                break
            await asyncio.sleep(0.05)
        assert api.pending_update_ids == []
        replies = [int(c.chat_id or 0) for c in api.calls_to("sendMessage") if c.ok]
        assert sorted(replies) == slow_chats + fast_chats  # every chat answered exactly once
        slow_replies = [c.text for c in api.calls_to("sendMessage") if c.chat_id in slow_chats]
        assert all("Offline" in text for text in slow_replies)
        assert f"http://{LOOPBACK}:{port}{HOOK}" == api.webhook_url
    finally:
        silent.close()
