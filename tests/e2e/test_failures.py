"""The architecture's failure scenarios, each against the whole running system.

1. the query service dies (or hangs) mid-session: stored answers with their age, or a friendly error,
   within the bot's 3 s timeout plus one retry; once it is back the breaker closes by itself;
2. Redis dies: answers keep coming (every request probes the peer); Redis back: caching resumes;
3. DynamoDB stops: every user still gets a reply; state writes resume when it returns.
"""

from __future__ import annotations

import signal
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from mcstatbot_testkit.harness import System, TelegramUser, leaks

if TYPE_CHECKING:
    from collections.abc import Callable

    from mcstatbot_testkit.telegram import ApiCall

pytestmark = pytest.mark.e2e

QUERY_TIMEOUT = 3.0  # the bot's per-request timeout (QUERY_TIMEOUT default)
FAILOVER_BOUND = 2 * QUERY_TIMEOUT + 1.0 + 3.0  # two attempts, the back-off, a margin for this machine


def metric(url: str, name: str) -> float:
    """The value of an unlabelled metric on a service's /metrics page."""
    for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith((f"{name} ", f"{name}{{")):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} is not on {url}/metrics")


def timed_send(user: TelegramUser, text: str, timeout: float = 30.0) -> tuple[str, float]:
    start = time.monotonic()
    reply = user.send(text, timeout=timeout)
    return reply.text, time.monotonic() - start


def fresh_reply_after_recovery(user: TelegramUser, address: str, deadline_s: float = 30.0) -> str:
    """Ask until an answer that is not a stored one comes back (the breaker's cool-down is 3 s)."""
    deadline = time.monotonic() + deadline_s
    text = ""
    while time.monotonic() < deadline:
        text = user.send(f"/status {address}").text
        if is_fresh(text):
            return text
        time.sleep(1.0)
    raise AssertionError(f"no fresh answer within {deadline_s} s; last reply: {text!r}")


STALE = "the last answer i have"  # the bot's note under a stored answer (with its age)
UNAVAILABLE = "temporarily unavailable"  # the bot's friendly error when it has nothing stored


def is_fresh(text: str) -> bool:
    return STALE not in text.casefold() and UNAVAILABLE not in text.casefold()


def to_chat(chat_id: int) -> Callable[[ApiCall], bool]:
    return lambda call: call.chat_id == chat_id


def test_query_service_killed_mid_session(system: System, new_user: Callable[[], TelegramUser]) -> None:
    java, bedrock = system.java.address, system.bedrock.address
    bot_pid = system.bot.pid
    user = new_user()
    card = user.send(f"/status {java}")
    assert "1.21.1" in card.text
    assert is_fresh(card.text)

    system.query_for_bot.kill()

    # A server this chat asked about before: the stored answer, saying how old it is.
    text, elapsed = timed_send(user, f"/status {java}")
    assert elapsed < FAILOVER_BOUND
    assert "1.21.1" in text
    assert STALE in text.casefold()
    assert "ago" in text.casefold()
    # The Players button on the earlier card: the stored player sample, marked as stored.
    players = user.press(card, "Players").text
    assert "Steve" in players
    assert STALE in players.casefold()
    # A server nobody asked about: a friendly error, no internals.
    stranger = new_user()
    text, elapsed = timed_send(stranger, f"/status {bedrock}")
    assert elapsed < FAILOVER_BOUND
    assert UNAVAILABLE in text.casefold()
    assert not leaks(text)
    # After BREAKER_FAILURE_THRESHOLD (3) failed requests the breaker opens: answers come at once,
    # without waiting for timeouts.
    for _ in range(3):
        if metric(system.bot.url, "mcstatbot_circuit_breaker_state") == 2:
            break
        assert UNAVAILABLE in stranger.send(f"/status {bedrock}").text.casefold()
    assert metric(system.bot.url, "mcstatbot_circuit_breaker_state") == 2
    text, elapsed = timed_send(stranger, f"/status {bedrock}")
    assert elapsed < QUERY_TIMEOUT
    assert UNAVAILABLE in text.casefold()

    system.query_for_bot.start()

    # Without restarting the bot: after the cool-down, the trial request closes the breaker.
    fresh = fresh_reply_after_recovery(user, java)
    assert "1.21.1" in fresh
    assert metric(system.bot.url, "mcstatbot_circuit_breaker_state") == 0
    assert is_fresh(stranger.send(f"/status {bedrock}").text)
    assert system.bot.pid == bot_pid  # the same bot process all along


def test_query_service_hangs(system: System, new_user: Callable[[], TelegramUser]) -> None:
    """A frozen query service (SIGSTOP): connections hang, so each attempt runs into the 3 s timeout."""
    java = system.java.address
    user = new_user()
    assert "1.21.1" in user.send(f"/status {java}").text
    system.query_for_bot.send_signal(signal.SIGSTOP)
    try:
        text, elapsed = timed_send(user, f"/status {java}")
        assert elapsed < FAILOVER_BOUND
        assert "1.21.1" in text
        assert STALE in text.casefold()
    finally:
        system.query_for_bot.send_signal(signal.SIGCONT)
    assert "1.21.1" in fresh_reply_after_recovery(user, java)


def test_redis_killed_and_back(system: System, new_user: Callable[[], TelegramUser]) -> None:
    java = system.java.address
    user = new_user()
    system.flush_cache()
    system.java.reset_counts()
    assert "1.21.1" in user.send(f"/status {java}").text
    assert "1.21.1" in user.send(f"/status {java}").text
    assert system.java.status_requests == 1  # the second answer came from Redis

    system.redis.kill()

    for _ in range(3):
        text = user.send(f"/status {java}").text
        assert "1.21.1" in text
        assert is_fresh(text)
    # Degraded mode: no cache, so every answer is a real probe of the peer.
    assert system.java.status_requests == 4
    assert metric(system.query_for_bot.url, "mcstatbot_cache_backend_up") == 0

    system.redis.start()  # the same port, empty

    # Caching resumes by itself (after REDIS_BACKOFF): soon an answer costs no probe. Redis came back
    # empty and the replicas keep no other cache, so that answer came from Redis, filled after the return.
    deadline = time.monotonic() + 15
    while True:
        before = system.java.status_requests
        text = user.send(f"/status {java}").text
        assert "1.21.1" in text
        assert is_fresh(text)
        if system.java.status_requests == before:
            break
        assert time.monotonic() < deadline, "caching did not resume after Redis came back"
        time.sleep(0.3)
    # ... and the other replica, idle during the outage, answers from the same Redis at once (its dead
    # pooled connection is replaced on the spot: no degraded answer after Redis is back).
    probes = system.java.status_requests
    hit = system.query_status(system.query_other, java)
    assert hit.headers["X-Cache"] == "HIT"
    assert system.java.status_requests == probes
    assert metric(system.query_for_bot.url, "mcstatbot_cache_backend_up") == 1


def test_dynamodb_stopped_and_back(
    system: System,
    new_user: Callable[[], TelegramUser],
    state_item: Callable[[int], dict[str, Any] | None],
) -> None:
    java, bedrock = system.java.address, system.bedrock.address
    users = [new_user() for _ in range(3)]
    users[0].send(f"/status {bedrock}")
    assert state_item(users[0].chat_id) is not None

    system.dynamodb.stop()

    # All at once, as real users would write (each reply waits for the state store's retries).
    since = system.api.last_seq
    for user in users:
        system.api.send_text(user.chat_id, f"/status {java}")
    for user in users:
        reply = system.api.wait_for_call_sync("sendMessage", to_chat(user.chat_id), timeout=30, since=since)
        assert "1.21.1" in reply.text
        assert not leaks(reply.text)
    # /status without a server needs the state: a friendly answer, no internals.
    text = users[1].send("/status", timeout=30).text
    assert text
    assert not leaks(text)

    system.dynamodb.start()  # same port, same data directory: the table is still there

    deadline = time.monotonic() + 30
    while True:
        users[2].send(f"/status {bedrock}", timeout=30)
        item = state_item(users[2].chat_id)
        if item is not None and item["last_url"]["S"] == bedrock:
            break
        assert time.monotonic() < deadline, f"state writes did not resume: {item}"
        time.sleep(1.0)
    assert bedrock in users[2].send("/status").text


def test_dynamodb_hangs(system: System, new_user: Callable[[], TelegramUser]) -> None:
    """A frozen DynamoDB (SIGSTOP): state calls time out instead of being refused; users still get
    answers, and once it thaws the state is written again."""
    java = system.java.address
    user = new_user()
    system.dynamodb.pause()
    try:
        start = time.monotonic()
        text = user.send(f"/status {java}", timeout=60).text
        print(f"reply with a frozen DynamoDB after {time.monotonic() - start:.1f} s")  # noqa: T201 - shown with -s
        assert "1.21.1" in text
        assert not leaks(text)
    finally:
        system.dynamodb.resume()
    # The answer given while frozen could not be stored; ask again until the chat's last server sticks.
    deadline = time.monotonic() + 60
    while True:
        user.send(f"/status {java}", timeout=30)
        if java in user.send("/status", timeout=30).text:
            break
        assert time.monotonic() < deadline, "state writes did not resume after DynamoDB thawed"
        time.sleep(1.0)
