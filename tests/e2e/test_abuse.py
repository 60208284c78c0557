"""Hostile input through the front door: forged webhooks, junk bodies, random commands and buttons.

Nothing may crash, every request gets a 4xx at worst, and no reply shows a user a stack trace or an
exception class name. Random addresses stay on this machine: the query services' DNS goes to a dead
loopback port (see the harness), and the strategy keeps IP literals to loopback.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, TypeVar

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from mcstatbot_common.addresses import InvalidAddressError, parse_address
from mcstatbot_testkit.harness import System, TelegramUser, leaks

if TYPE_CHECKING:
    from collections.abc import Callable

    from mcstatbot_testkit.telegram import ApiCall

pytestmark = pytest.mark.e2e
T = TypeVar("T")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name, not a secret
COMMANDS = ["/start", "/help", "/status", "/players", "/about", "/status@mcstatbot_test_bot", "/", "/x"]
# Telegram never delivers lone surrogates (its JSON is valid UTF-8), so neither does this test.
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=80)


def stays_on_this_machine(text: str) -> bool:
    """False when some word of `text` is an IP literal off loopback (the query service would probe it)."""
    for word in text.split():
        try:
            address = parse_address(word)
        except InvalidAddressError:
            continue
        ip = address.ip
        if ip is not None and not ip.is_loopback:
            return False
    return True


command_strings = st.one_of(
    st.tuples(st.sampled_from(COMMANDS), st.sampled_from([" ", "  ", "\n", ""]), TEXT).map("".join),
    st.builds("/status 127.0.0.1:{}".format, st.sampled_from(["-1", "0", "65536", "99999", "x", ""])),
    TEXT,
).filter(stays_on_this_machine)


callback_payloads = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=64),
    # shaped like the bot's own callback data: fields joined by "|"
    st.builds("|".join, st.lists(st.text(st.characters(codec="ascii"), max_size=20), max_size=6)),
).filter(lambda d: 1 <= len(d.encode()) <= 64 and stays_on_this_machine(d.replace("|", " ")))


def generate(strategy: st.SearchStrategy[T], count: int) -> list[T]:
    """`count` examples of `strategy`, drawn by hypothesis before anything is sent (so the test server's
    own work cannot disturb generation). Every example is kept: the checks run on all of them at once."""
    examples: list[T] = []

    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(example: T) -> None:
        examples.append(example)

    collect()
    return examples


def webhook(system: System, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    base = {"Content-Type": "application/json", SECRET_HEADER: system.webhook_secret}
    return httpx.post(system.webhook_url, content=body, headers={**base, **(headers or {})}, timeout=30)


def pace(system: System, in_flight: int = 40) -> None:
    """Wait while `in_flight` updates are unacknowledged: Telegram keeps at most max_connections (40,
    what the bot registers) webhook requests open, and the test server does not limit itself."""
    deadline = time.monotonic() + 60
    while len(system.api.pending_update_ids) >= in_flight:
        assert time.monotonic() < deadline, "the bot stopped acknowledging updates"
        time.sleep(0.01)


def wait_until_quiet(system: System, quiet_s: float = 2.0, limit_s: float = 150.0) -> None:
    """Until every update is acknowledged and the bot has made no Bot API call for `quiet_s`."""
    deadline = time.monotonic() + limit_s
    last, last_change = system.api.last_seq, time.monotonic()
    while time.monotonic() - last_change < quiet_s or system.api.pending_update_ids:
        assert time.monotonic() < deadline, (
            f"the bot is still busy: {len(system.api.pending_update_ids)} pending"
        )
        time.sleep(0.2)
        if system.api.last_seq != last:
            last, last_change = system.api.last_seq, time.monotonic()


def user_visible_texts(calls: list[ApiCall]) -> list[str]:
    return [str(c.params.get("text", "")) for c in calls if c.params.get("text")]


def log_offsets(system: System) -> dict[str, int]:
    return {str(s.log_path): len(s.log_text()) for s in (system.bot, *system.query)}


def assert_alive(system: System, offsets: dict[str, int]) -> None:
    """Every service runs, answers /health, and logged no ERROR record since `offsets` were taken."""
    for service in (system.bot, *system.query):
        assert service.running, f"{service.argv} died"
        assert httpx.get(f"{service.url}/health", timeout=5).status_code == httpx.codes.OK
        new_records = service.log_text()[offsets[str(service.log_path)] :].splitlines()
        errors = [line[:500] for line in new_records if '"level": "ERROR"' in line]
        assert errors == [], f"{service.log_path.name} logged errors"


def test_forged_and_broken_webhook_posts(system: System, new_user: Callable[[], TelegramUser]) -> None:
    user = new_user()
    update = {
        "update_id": 1,
        "message": {
            "message_id": 1,
            "date": int(time.time()),
            "text": "/start",
            "chat": {"id": user.chat_id, "type": "private"},
            "from": {"id": user.chat_id, "is_bot": False, "first_name": "Mallory"},
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }
    body = json.dumps(update).encode()
    since = system.api.last_seq
    offsets = log_offsets(system)

    assert webhook(system, body, {SECRET_HEADER: "guessed"}).status_code == httpx.codes.FORBIDDEN
    no_secret = httpx.post(system.webhook_url, content=body, headers={"Content-Type": "application/json"})
    assert no_secret.status_code == httpx.codes.FORBIDDEN
    for junk in (os.urandom(4096), b"", b"{", b"[]", b"null", json.dumps({"update_id": "x"}).encode()):
        status = webhook(system, junk).status_code
        assert 200 <= status < 500, status
    big = webhook(system, b'{"update_id": 5, "message": {"text": "' + b"a" * (5 * 1024 * 1024) + b'"}}')
    assert big.status_code == httpx.codes.REQUEST_ENTITY_TOO_LARGE
    wait_until_quiet(system)

    # The forged /start did nothing.
    assert system.api.calls_to("sendMessage", user.chat_id, since=since) == []
    assert_alive(system, offsets)
    assert "/status" in user.send("/start").text  # and the bot still serves real users


@pytest.mark.timeout(300)
def test_a_thousand_random_commands(system: System, new_user: Callable[[], TelegramUser]) -> None:
    users = [new_user() for _ in range(20)]
    since = system.api.last_seq
    offsets = log_offsets(system)
    messages = generate(st.tuples(command_strings, st.sampled_from(users)), 1000)

    sent: list[str] = []
    for text, user in messages:
        if text.strip():
            pace(system)
            system.api.send_text(user.chat_id, text)
            sent.append(text)
    wait_until_quiet(system)

    assert len(sent) >= 900
    calls = [c for c in system.api.calls if c.seq > since]
    texts = user_visible_texts(calls)
    assert texts, "the bot answered none of the commands"
    leaked = {t: leaks(t) for t in texts if leaks(t)}
    assert leaked == {}
    assert_alive(system, offsets)


@pytest.mark.timeout(180)
def test_random_callback_payloads(system: System, new_user: Callable[[], TelegramUser]) -> None:
    user = new_user()
    reply = user.send(f"/status {system.java.address}")
    since = system.api.last_seq
    offsets = log_offsets(system)
    payloads = generate(callback_payloads, 300)

    pressed: list[str] = []
    for data in payloads:
        pace(system)
        update = system.api.press_button(reply.result, data, check=False)
        pressed.append(update["callback_query"]["id"])
    wait_until_quiet(system)

    calls = [c for c in system.api.calls if c.seq > since]
    answered = {
        str(c.params.get("callback_query_id")) for c in calls if c.method.lower() == "answercallbackquery"
    }
    assert set(pressed) <= answered  # every press is answered (so the user's spinner stops)
    leaked = {t: leaks(t) for t in user_visible_texts(calls) if leaks(t)}
    assert leaked == {}
    assert_alive(system, offsets)
    # The real buttons under the message still work (Players: a Status press on a card the query service
    # still has cached is answered "up to date" and edits nothing).
    assert system.java.address in user.press(reply, "Players").text


def test_ipv4_filter_keeps_probes_on_loopback() -> None:
    """The strategy's own guard: an off-machine IP literal is refused, loopback and junk pass."""
    assert not stays_on_this_machine("/status 10.0.0.1:25565")
    assert not stays_on_this_machine("/status 8.8.8.8")
    assert stays_on_this_machine("/status 127.0.0.1:25565")
    assert stays_on_this_machine("/status not an address ::: []")
