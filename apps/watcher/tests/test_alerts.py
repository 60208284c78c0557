"""Down/up and join/leave alerts from a real watcher process: a Java peer that stops, starts and shows
Aternos's placeholder, the real query service, the Bot API test server, and the bot for /watch."""

from __future__ import annotations

import functools
import re
import time
from typing import TYPE_CHECKING, TypeVar

from mcstatbot_testkit.telegram import parse_html
from mcstatbot_testkit.watching import PLACEHOLDER, WatchStack, alerts, ask, checks, wait_checks, wait_until

if TYPE_CHECKING:
    from mcstatbot_testkit.minecraft import JavaPeer
    from mcstatbot_testkit.telegram import BotApiServer

T = TypeVar("T")


def test_down_after_three_failures_and_not_before_then_up(
    stack: WatchStack, api: BotApiServer, peer: JavaPeer
) -> None:
    stack.bot()
    watcher = stack.watcher()
    chat = 601
    assert "Watching" in ask(api, chat, f"/watch {peer.address}")
    wait_checks(watcher, "up")
    peer.stop()
    seen_two_failures_quietly = False
    deadline = time.monotonic() + 30
    while True:
        down = alerts(api, chat, "is down")  # read before the count: a later count is never smaller
        failed = checks(watcher, "failed")
        if down:
            break
        seen_two_failures_quietly |= failed == 2
        assert time.monotonic() < deadline, f"{failed} failed checks and still no alert"
        time.sleep(0.05)
    assert seen_two_failures_quietly
    assert failed >= 3
    assert len(down) == 1
    assert f"{peer.address} is down: the connection was refused" in down[0]
    # decided at the third failure (on a loaded machine a fourth check may be counted before the alert
    # arrives: the alert's own count says when it was decided)
    assert "3 failed checks in a row" in down[0]
    peer.start()
    up = wait_until(lambda: alerts(api, chat, "back up"), what="the up alert")
    assert re.search(rf"{re.escape(peer.address)} is back up after \d+ seconds? down\.", up[0])
    wait_checks(watcher, "up", 2)
    assert len(alerts(api, chat, "is down")) == 1
    assert len(alerts(api, chat, "back up")) == 1


def test_every_watching_chat_alerted_once_placeholder_counts_as_down(
    stack: WatchStack, api: BotApiServer, peer: JavaPeer
) -> None:
    stack.bot()
    watcher = stack.watcher(WATCH_DOWN_AFTER="1")
    chats = [611, 612, 613]
    for chat in chats:
        assert "Watching" in ask(api, chat, f"/watch {peer.address}")
    wait_checks(watcher, "up")
    peer.configure(version=PLACEHOLDER)
    for chat in chats:
        down = wait_until(functools.partial(alerts, api, chat, "is down"), what=f"down alert in {chat}")
        assert "the host shows a placeholder" in down[0]
    peer.configure(version={"name": "1.21.1", "protocol": 767})
    for chat in chats:
        wait_until(functools.partial(alerts, api, chat, "back up"), what=f"up alert in {chat}")
    wait_checks(watcher, "up", 2)
    for chat in chats:
        assert len(alerts(api, chat, "is down")) == 1
        assert len(alerts(api, chat, "back up")) == 1


def test_flapping_is_held_back_and_then_said(stack: WatchStack, api: BotApiServer, peer: JavaPeer) -> None:
    stack.bot()
    watcher = stack.watcher(WATCH_DOWN_AFTER="1", WATCH_FLAP_SECONDS="15")
    chat = 621
    normal = {"name": "1.21.1", "protocol": 767}
    assert "Watching" in ask(api, chat, f"/watch {peer.address}")
    wait_checks(watcher, "up")
    peer.configure(version=PLACEHOLDER)
    wait_until(lambda: alerts(api, chat, "is down"), what="the first down alert")
    peer.configure(version=normal)
    wait_until(lambda: alerts(api, chat, "back up"), what="the first up alert")
    for version in (PLACEHOLDER, normal, PLACEHOLDER):  # within the 15 s: nothing said
        peer.configure(version=version)
        wait_checks(watcher, "failed" if version is PLACEHOLDER else "up", 2)
        assert len(alerts(api, chat, "is down")) == 1
        assert len(alerts(api, chat, "back up")) == 1
    # still down when the period is over: said once, with the flapping
    down = wait_until(lambda: alerts(api, chat, "is down")[1:], what="the held down alert")
    assert "changed state 3 times since the last report (flapping)" in down[0]
    assert len(alerts(api, chat, "back up")) == 1


def test_joins_and_leaves_batched_and_partial_list_said(
    stack: WatchStack, api: BotApiServer, peer: JavaPeer
) -> None:
    stack.bot()
    watcher = stack.watcher()
    chat = 631
    plain = 632
    assert "joins and leaves" in ask(api, chat, f"/watch {peer.address} players")
    assert "Watching" in ask(api, plain, f"/watch {peer.address}")
    wait_checks(watcher, "up", 2)
    peer.configure(
        online=3,
        sample=[
            {"name": "Alex", "id": "ec561538-f3fd-461d-aff5-086b22154bce"},
            {"name": "Notch", "id": "069a79f4-44e9-4726-a5be-fca90e38aaf5"},
            {"name": "<jeb>", "id": "853c80ef-3c37-49fd-aa49-938b674adae6"},
        ],
    )
    joined = wait_until(lambda: alerts(api, chat, "joined"), what="the players alert")
    assert f"{peer.address}: Notch, <jeb> joined · Steve left" in joined[0]
    assert "only part of its player list" in joined[0]  # no Query: the status sample
    wait_checks(watcher, "up", 2)
    assert len(alerts(api, chat, "joined")) == 1
    assert alerts(api, plain, "joined") == []


def test_failed_sends_are_retried_and_a_blocked_chat_loses_its_watch(
    stack: WatchStack, api: BotApiServer, peer: JavaPeer
) -> None:
    stack.bot()
    watcher = stack.watcher(WATCH_DOWN_AFTER="1")
    kept, blocked = 641, 642
    assert "Watching" in ask(api, kept, f"/watch {peer.address}")
    assert "Watching" in ask(api, blocked, f"/watch {peer.address}")
    wait_checks(watcher, "up")
    api.fail_next(
        "sendMessage",
        500,
        "Internal Server Error",
        times=2,
        predicate=lambda p: str(p.get("chat_id")) == str(kept),
    )
    api.fail_next(
        "sendMessage",
        403,
        "Forbidden: bot was blocked by the user",
        predicate=lambda p: str(p.get("chat_id")) == str(blocked),
    )
    peer.stop()
    down = wait_until(lambda: alerts(api, kept, "is down"), what="the retried down alert")
    assert len(down) == 1
    assert "watches no server" in ask(api, blocked, "/watches")
    attempts = [c for c in api.calls_to("sendMessage", kept) if "is down" in parse_html(c.text)]
    assert [c.error_code for c in attempts] == [500, 500, None]  # delayed, not dropped
    assert peer.address in ask(api, kept, "/watches")


def test_an_undelivered_alert_survives_a_restart_of_the_watcher(
    stack: WatchStack, api: BotApiServer, peer: JavaPeer
) -> None:
    stack.bot()
    watcher = stack.watcher(WATCH_DOWN_AFTER="1")
    chat = 651
    assert "Watching" in ask(api, chat, f"/watch {peer.address}")
    wait_checks(watcher, "up")
    refused = 1000  # every attempt, until the reset below
    api.fail_next(
        "sendMessage", 502, "Bad Gateway", times=refused, predicate=lambda p: p.get("chat_id") == chat
    )
    peer.stop()
    wait_until(
        lambda: [c for c in api.calls_to("sendMessage", chat) if c.error_code == 502],
        what="a refused attempt",
    )
    watcher.stop()
    api.reset()  # Telegram answers again; the calls so far are forgotten
    stack.watcher(WATCH_DOWN_AFTER="1")
    down = wait_until(lambda: alerts(api, chat, "is down"), what="the alert kept in the state store")
    assert len(down) == 1
    assert "1 failed check in a row" in down[0]


def _choose_language(api: BotApiServer, chat: int, language: str) -> None:
    """/language in `chat` and a press of `language`'s button (the chat's choice, as a user makes it)."""
    since = api.last_seq
    api.send_text(chat, "/language")
    prompt = api.wait_for_call_sync("sendMessage", lambda c: c.chat_id == chat and c.ok, since=since)
    since = api.last_seq
    api.press_button(prompt, f"v1|l|{language}")
    api.wait_for_call_sync("editMessageText", lambda c: c.chat_id == chat and c.ok, since=since)


def test_each_chat_alerted_in_its_own_language(stack: WatchStack, api: BotApiServer, peer: JavaPeer) -> None:
    """Two chats, German and Russian, and one that chose nothing watch the same server: one check
    alerts all three, each in its chat's language (the language of one never leaks into the other's),
    and a live card is kept current in its chat's language."""
    stack.bot(LIVE_INTERVAL_SECONDS="1")
    watcher = stack.watcher(WATCH_DOWN_AFTER="1", LIVE_INTERVAL_SECONDS="1")
    german, russian, english = 641, 642, 643
    _choose_language(api, german, "de")
    _choose_language(api, russian, "ru")
    assert "Ich beobachte" in ask(api, german, f"/watch {peer.address}")
    assert "Слежу за" in ask(api, russian, f"/watch {peer.address}")
    assert "Watching" in ask(api, english, f"/watch {peer.address}")
    card = ask(api, russian, f"/live {peer.address}")
    assert "Игроки: 2/20" in card
    wait_checks(watcher, "up")
    peer.configure(version=PLACEHOLDER)
    down_de = wait_until(lambda: alerts(api, german, "ausgefallen"), what="the German down alert")
    down_ru = wait_until(lambda: alerts(api, russian, "недоступен"), what="the Russian down alert")
    down_en = wait_until(lambda: alerts(api, english, "is down"), what="the English down alert")
    assert f"{peer.address} ist ausgefallen: der Hoster zeigt einen Platzhalter" in down_de[0]
    assert "1 fehlgeschlagene Prüfung in Folge" in down_de[0]
    assert f"{peer.address} недоступен:" in down_ru[0]
    assert "1 неудачная проверка подряд" in down_ru[0]
    assert "1 failed check in a row" in down_en[0]
    # the Russian live card, edited by the watcher (no update behind it): in Russian too
    offline = "Не в сети"  # noqa: RUF001 - Russian
    edited = wait_until(lambda: [t for t in _edits(api, russian) if offline in t], what="the card's edit")
    assert "Offline" not in edited[0]
    peer.configure(version={"name": "1.21.1", "protocol": 767})
    up_de = wait_until(lambda: alerts(api, german, "Ausfall wieder da"), what="the German up alert")
    up_ru = wait_until(lambda: alerts(api, russian, "снова работает"), what="the Russian up alert")
    wait_until(lambda: alerts(api, english, "back up"), what="the English up alert")
    assert re.search(r"nach \d+ Sekunden? Ausfall", up_de[-1])
    assert re.search(r"был недоступен \d+ секунд", up_ru[-1])
    # no chat got anything in another's language
    for chat, foreign in ((german, ("недоступен", "is down")), (russian, ("ausgefallen", "is down"))):
        assert not any(alerts(api, chat, word) for word in foreign)


def _edits(api: BotApiServer, chat: int) -> list[str]:
    return [parse_html(c.text) for c in api.calls_to("editMessageText", chat) if c.ok]
