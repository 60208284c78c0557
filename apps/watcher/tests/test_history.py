"""History end to end: the watcher records one sample per check of a real Java peer that stops and
starts; /history, the History button and the Watch button through a real bot process; the chart arrives
as a sendPhoto upload the Bot API test server checks against Telegram's photo limits, and is decoded."""

from __future__ import annotations

import asyncio
import io
import time
from typing import TYPE_CHECKING

from mcstatbot_bot.state import ServerRef
from mcstatbot_bot.state.sqlite import SqliteStore
from mcstatbot_testkit.telegram import parse_html
from mcstatbot_testkit.watching import WatchStack, ask, checks, wait_checks, wait_until
from PIL import Image

if TYPE_CHECKING:
    from mcstatbot_bot.state.base import Sample
    from mcstatbot_testkit.minecraft import JavaPeer
    from mcstatbot_testkit.telegram import ApiCall, BotApiServer

GROUP = -100888


def samples(stack: WatchStack, address: str) -> list[Sample]:
    async def read() -> list[Sample]:
        store = SqliteStore(str(stack.tmp_path / "state.db"))
        await store.open()
        try:
            now = int(time.time())
            return await store.samples(ServerRef(address), now - 86400, now + 60)
        finally:
            await store.close()

    return asyncio.run(read())


def photo_after(api: BotApiServer, chat_id: int, since: int) -> ApiCall:
    return api.wait_for_call_sync("sendPhoto", lambda c: c.chat_id == chat_id, timeout=90, since=since)


def chart_of(api: BotApiServer, call: ApiCall) -> Image.Image:
    assert call.ok, call.result
    data = api.photo(int(call.result["chat"]["id"]), int(call.result["message_id"]))
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.format == "PNG"
    assert image.size == (1280, 960)
    assert len(data) < 10 * 1024 * 1024
    return image


def test_samples_recorded_per_check_and_drawn(stack: WatchStack, api: BotApiServer, peer: JavaPeer) -> None:
    stack.bot()
    watcher = stack.watcher()
    first, second = 701, 702
    assert "Watching" in ask(api, first, f"/watch {peer.address}")
    assert "Watching" in ask(api, second, f"/watch {peer.address}")  # two chats: still one sample a check
    wait_checks(watcher, "up", 3)
    peer.stop()
    wait_checks(watcher, "failed", 2)
    peer.start()
    wait_checks(watcher, "up", 2)

    before = checks(watcher, "up") + checks(watcher, "failed")
    found = samples(stack, peer.address)
    after = checks(watcher, "up") + checks(watcher, "failed")
    # never more samples than checks (two chats watch: one sample a check, not one per chat); a check in
    # flight is counted before its sample is written, and a fresh watch's first two checks may fall in
    # one second (one sample per second and server): at most two fewer
    assert before - 2 <= len(found) <= after
    assert [s.at for s in found] == sorted({s.at for s in found})
    online = [s for s in found if s.online]
    offline = [s for s in found if not s.online]
    assert len(offline) >= 2
    assert len(online) >= 5
    assert all(s.max_players == 20 and s.latency_ms is not None for s in online)
    assert all(s.players is None and s.latency_ms is None for s in offline)

    since = api.last_seq
    api.send_text(first, f"/history {peer.address}")
    call = photo_after(api, first, since)
    chart_of(api, call)
    caption = parse_html(call.params["caption"])
    assert peer.address in caption
    assert "last 24 hours" in caption
    assert "Uptime: " in caption
    assert "100.0%" not in caption  # it was down for a while


def test_history_button_on_watched_cards_and_the_watch_button(
    stack: WatchStack, api: BotApiServer, peer: JavaPeer
) -> None:
    stack.bot()
    stack.watcher()
    chat = 711
    history_data = f"v1|h|a|{peer.address}"

    since = api.last_seq
    api.send_text(chat, f"/status {peer.address}")
    card = api.wait_for_call_sync("sendMessage", lambda c: c.chat_id == chat, timeout=15, since=since)
    assert history_data not in card.button_data()  # not watched: no History button

    since = api.last_seq
    api.send_text(chat, f"/history {peer.address} 7d")
    offer = api.wait_for_call_sync("sendMessage", lambda c: c.chat_id == chat, timeout=15, since=since)
    assert "No history for" in parse_html(offer.text)
    assert offer.button_data() == [f"v1|w|a|{peer.address}"]
    since = api.last_seq
    api.press_button(offer, f"v1|w|a|{peer.address}")
    edit = api.wait_for_call_sync("editMessageText", lambda c: c.chat_id == chat, timeout=15, since=since)
    assert f"Watching {peer.address}" in parse_html(edit.text)
    assert peer.address in ask(api, chat, "/watches")

    since = api.last_seq
    api.send_text(chat, f"/status {peer.address}")
    card = api.wait_for_call_sync("sendMessage", lambda c: c.chat_id == chat, timeout=15, since=since)
    assert history_data in card.button_data()
    # an old card's buttons still work, and a refresh of it shows the History button now
    since = api.last_seq
    api.press_button(card, f"v1|s|a|{peer.address}")
    api.wait_for_call_sync("answerCallbackQuery", timeout=15, since=since)

    wait_until(lambda: samples(stack, peer.address), what="a first sample")
    since = api.last_seq
    api.press_button(card, history_data)
    chart_of(api, photo_after(api, chat, since))

    since = api.last_seq
    api.send_text(chat, f"/history {peer.address} 30d")
    call = photo_after(api, chat, since)
    chart_of(api, call)
    assert "last 30 days" in parse_html(call.params["caption"])


def test_history_usage_languages_and_group_rules(
    stack: WatchStack, api: BotApiServer, peer: JavaPeer
) -> None:
    stack.bot()
    chat = 721
    assert "Which server, and how far back?" in ask(api, chat, "/history")
    assert "Which server, and how far back?" in ask(api, chat, f"/history {peer.address} 1y")
    assert "is not a server address" in ask(api, chat, "/history bad_host!:99999")

    api.set_admins(GROUP, [31])
    since = api.last_seq
    api.send_text(GROUP, f"/history {peer.address}", chat_type="supergroup", user_id=32)
    offer = api.wait_for_call_sync("sendMessage", lambda c: c.chat_id == GROUP, timeout=15, since=since)
    since = api.last_seq
    api.press_button(offer, f"v1|w|a|{peer.address}", user_id=32)  # a member may not
    answer = api.wait_for_call_sync("answerCallbackQuery", timeout=15, since=since)
    assert "only its administrators" in str(answer.params.get("text"))
    assert "watches no server" in ask(api, GROUP, "/watches", chat_type="supergroup", user_id=32)

    assert "Watching" in ask(api, chat, f"/watch {peer.address}")
    since = api.last_seq
    api.send_text(chat, f"/history {peer.address}", language_code="uk")
    call = photo_after(api, chat, since)
    chart_of(api, call)
    caption = parse_html(call.params["caption"])
    assert "останні 24 години" in caption
    assert "Перевірок у цьому вікні ще немає" in caption  # noqa: RUF001 - no watcher ran: an empty chart
