"""/live cards: posted by the bot, kept current by the watcher (edited only when what they show changed,
never a "not modified" call), pinned in groups when the bot may pin, stopped when the message is deleted
and by /live stop. Real processes: bot, watcher, query service, a Java peer, the Bot API test server."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mcstatbot_testkit.telegram import parse_html
from mcstatbot_testkit.watching import WatchStack, alerts, ask, checks, wait_checks, wait_until

if TYPE_CHECKING:
    from mcstatbot_testkit.minecraft import JavaPeer
    from mcstatbot_testkit.telegram import ApiCall, BotApiServer

LIVE = {"LIVE_INTERVAL_SECONDS": "1"}


def edits(api: BotApiServer, chat_id: int) -> list[ApiCall]:
    return api.calls_to("editMessageText", chat_id)


def test_live_card_edited_only_on_change_and_stopped_when_deleted(
    stack: WatchStack, api: BotApiServer, peer: JavaPeer
) -> None:
    stack.bot(**LIVE)
    watcher = stack.watcher(**LIVE)
    chat = 801
    assert "Watching" in ask(api, 802, f"/watch {peer.address}")  # keeps the server checked throughout
    since = api.last_seq
    card = ask(api, chat, f"/live {peer.address}")
    assert "Online" in card
    assert "Players: 2/20: Steve, Alex" in card
    message_id = api.wait_for_call_sync("sendMessage", lambda c: c.chat_id == chat, since=since).result[
        "message_id"
    ]
    wait_checks(watcher, "up", 3)
    assert edits(api, chat) == []  # nothing changed: no call at all

    peer.configure(online=5)
    wait_until(lambda: edits(api, chat), what="the card's edit")
    assert "Players: 5/20" in parse_html(api.message(chat, message_id)["text"])
    wait_checks(watcher, "up", 3)
    assert len(edits(api, chat)) == 1
    assert all(call.ok for call in edits(api, chat))  # never "message is not modified"

    api.delete_message(chat, message_id)
    peer.configure(online=6)
    wait_until(lambda: [c for c in edits(api, chat) if not c.ok], what="the edit of the deleted card")
    wait_checks(watcher, "up", 3)
    assert len(edits(api, chat)) == 2  # stopped: never tried again
    assert "no live status message" in ask(api, chat, "/live stop")
    assert checks(watcher, "failed") == 0


def test_live_cards_pinned_when_allowed_and_stopped_by_command(
    stack: WatchStack, api: BotApiServer, peer: JavaPeer
) -> None:
    stack.bot(**LIVE, WATCH_MAX_PER_CHAT="2")
    watcher = stack.watcher(**LIVE)
    pins, no_pins = -100801, -100802
    for group in (pins, no_pins):
        api.set_admins(group, [5])
    api.allow_pins(pins)
    group_kwargs = {"chat_type": "supergroup", "user_id": 5}
    assert "Online" in ask(api, pins, f"/live {peer.address}", **group_kwargs)
    assert "Online" in ask(api, no_pins, f"/live {peer.address}", **group_kwargs)
    wait_until(lambda: api.calls_to("pinChatMessage", no_pins), what="the refused pin")
    pinned = wait_until(lambda: api.pinned(pins), what="the pin")
    assert len(pinned) == 1
    assert api.pinned(no_pins) == []
    assert "only its administrators" in ask(api, pins, "/live stop", chat_type="supergroup", user_id=6)
    # the limit counts watches and live cards together
    assert "Watching" in ask(api, pins, f"/watch {peer.address}", **group_kwargs)
    assert "the most it may" in ask(api, pins, f"/live {peer.address}", **group_kwargs)
    assert "Stopped 1 live status message" in ask(api, pins, "/live stop", **group_kwargs)
    peer.configure(online=7)
    wait_until(lambda: edits(api, no_pins), what="the other group's card edited")
    wait_checks(watcher, "up", 2)
    assert edits(api, pins) == []


def test_live_card_stops_after_the_server_was_down_long_enough(
    stack: WatchStack, api: BotApiServer, peer: JavaPeer
) -> None:
    """LIVE_OFFLINE_SECONDS (7 days by default) set to 2 s: the peer stops, the card shows it offline,
    and once the server has been down that long the card stops; the peer back up edits it no more."""
    stack.bot(**LIVE)
    watcher = stack.watcher(**LIVE, LIVE_OFFLINE_SECONDS="2")
    chat = 811
    assert "Watching" in ask(api, 812, f"/watch {peer.address}")  # keeps the server checked throughout
    since = api.last_seq
    assert "Online" in ask(api, chat, f"/live {peer.address}")
    message_id = api.wait_for_call_sync("sendMessage", lambda c: c.chat_id == chat, since=since).result[
        "message_id"
    ]
    wait_checks(watcher, "up", 2)

    peer.stop()
    wait_until(lambda: edits(api, chat), what="the card's edit to offline")
    assert "Offline" in parse_html(api.message(chat, message_id)["text"])
    wait_until(lambda: alerts(api, 812, "is down"), what="the down alert")  # down: 3 failed checks
    wait_checks(watcher, "failed", 4)  # down for more than 2 s by now
    assert "no live status message" in ask(api, chat, "/live stop")  # the watcher stopped the card

    edited = len(edits(api, chat))
    peer.start()
    wait_until(lambda: alerts(api, 812, "back up"), what="the up alert")
    wait_checks(watcher, "up", 3)
    assert len(edits(api, chat)) == edited  # stopped: the server back up edits it no more
