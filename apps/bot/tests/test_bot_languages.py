"""The bot process in every language, its chat settings, the refresh notice and inline mode, through the
Bot API test server: German- and Russian-speaking users answered in their language, /language switching
a chat (kept across a restart), command menus per language, /settings in a private chat and a group,
a Status press that changes nothing answered with a notice and no edit, and inline cards whose buttons
edit the inline message (also after a restart)."""
# ruff: noqa: RUF001 - the replies are in Russian and Turkish: their letters are meant

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING

import pytest
from mcstatbot_bot import formatting, i18n
from mcstatbot_testkit.minecraft import JavaPeer
from mcstatbot_testkit.net import LOOPBACK, free_port
from mcstatbot_testkit.services import ServiceProcess, query_service

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from mcstatbot_testkit.telegram import ApiCall, BotApiServer

STATUS_TTL = 3
STALE_SECONDS = 5
"""The status TTL of this module's query service: a press within it is answered from the cache."""


def to(chat_id: int) -> Callable[[ApiCall], bool]:
    return lambda call: call.chat_id == chat_id


def offline_in(chat_id: int) -> Callable[[ApiCall], bool]:
    return lambda call: call.chat_id == chat_id and "Offline" in call.text


def answer_to(query_id: str) -> Callable[[ApiCall], bool]:
    return lambda call: call.params.get("inline_query_id") == query_id


def labels(call: ApiCall) -> list[str]:
    markup = call.params.get("reply_markup") or {}
    return [b["text"] for row in markup.get("inline_keyboard", []) for b in row]


@pytest.fixture(scope="module")
def peer(logs: Path) -> Iterator[JavaPeer]:
    """A Java peer of this module's own."""
    with JavaPeer(logs / "java-languages.log", motd="Hallo", online=3, max_players=20) as java:
        yield java


@pytest.fixture
def changing_peer(logs: Path) -> Iterator[JavaPeer]:
    """A peer of the refresh test alone: it changes what the peer reports, and the query service keeps
    (and, stale, still answers) what it reported for a while after."""
    with JavaPeer(logs / "java-languages-refresh.log", motd="Hallo", online=3, max_players=20) as java:
        yield java


@pytest.fixture(scope="module")
def cached_query(logs: Path) -> Iterator[ServiceProcess]:
    """A query service that keeps a status STATUS_TTL seconds (the shared one keeps it 1 s)."""
    env = {
        "DNS_NAMESERVERS": f"{LOOPBACK}:{free_port()}",  # nothing answers: no lookup leaves the machine
        "MC_TIMEOUT": "2",
        "CACHE_TTL_STATUS": str(STATUS_TTL),
        "CACHE_TTL_PLAYERS": str(STATUS_TTL),
        "CACHE_TTL_OFFLINE": "1",
        "CACHE_STALE_SECONDS": str(STALE_SECONDS),
        "ALLOW_PRIVATE_ADDRESSES": "true",
    }
    with query_service(logs / "query-languages.log", env) as service:
        yield service


@pytest.fixture
def start(
    start_bot: Callable[..., ServiceProcess], cached_query: ServiceProcess
) -> Callable[..., ServiceProcess]:
    def run(**env: str) -> ServiceProcess:
        return start_bot(QUERY_SERVICE_URL=cached_query.url, FLOOD_MAX_PROBES="50", **env)

    return run


async def test_menus_and_replies_in_the_users_language_and_language_per_chat(
    api: BotApiServer, start: Callable[..., ServiceProcess], peer: JavaPeer
) -> None:
    bot = start()
    # the command menu in every language, and English for everyone else
    assert [c["description"] for c in api.commands][:2] == [
        "Is a Minecraft server online? /status host[:port]",
        "Who is playing? /players host[:port]",
    ]
    expected = {"de": "Wer spielt gerade?", "es": "¿Quién", "pt": "Quem está jogando?", "ru": "Кто играет?"}
    expected |= {"uk": "Хто грає?", "tr": "Kimler oynuyor?"}
    for code, start_of_players in expected.items():
        menu = api.commands_for(code)
        assert [c["command"] for c in menu] == [c["command"] for c in api.commands]
        assert menu[1]["description"].startswith(start_of_players), code

    # a German-speaking user: the card, its buttons and numbers in German
    api.send_text(501, f"/status {peer.address}", language_code="de")
    card = await api.wait_for_call("sendMessage", to(501), timeout=15)
    assert "🟢 <b>Online</b>" in card.text
    assert "Spieler: 3/20 (15 % voll)" in card.text
    assert re.search(r"Geprüft: \d\d\.\d\d\.\d{4}, \d\d:\d\d:\d\d UTC", card.text)
    assert labels(card) == ["Status", "Spieler", "Info"]
    # and an address the bot refuses, with the reason in German too (the parser's reasons are translated)
    api.send_text(501, "/status play.example.com:99999", language_code="de")
    refused = await api.wait_for_call("sendMessage", to(501), since=card.seq, timeout=15)
    assert "der Port muss eine Zahl von 1 bis 65535 sein" in refused.text
    api.send_text(501, "/watch " + "a" * 64 + ".example.com", language_code="de")
    refused = await api.wait_for_call("sendMessage", to(501), since=refused.seq, timeout=15)
    assert "ein Teil des Hostnamens ist länger als 63 Zeichen" in refused.text
    # a Russian-speaking user (Telegram's `ru-RU` form too)
    api.send_text(502, "/help", language_code="ru-RU")
    help_text = await api.wait_for_call("sendMessage", to(502))
    assert help_text.text.startswith("<b>Команды</b>")
    api.send_text(502, f"/status {peer.address}", language_code="ru")
    russian = await api.wait_for_call("sendMessage", lambda c: to(502)(c) and "В сети" in c.text, timeout=15)
    assert "Игроки: 3/20 (заполнено на 15 %)" in russian.text
    assert labels(russian) == ["Статус", "Игроки", "О сервере"]
    # anyone else: English
    api.send_text(503, "/help", language_code="fr")
    assert (await api.wait_for_call("sendMessage", to(503))).text.startswith("<b>Commands</b>")

    # /language: one button per language; a press switches the chat and edits the message in place
    api.send_text(502, "/language", language_code="ru")
    prompt = await api.wait_for_call("sendMessage", lambda c: to(502)(c) and "🌐" in c.text)
    assert labels(prompt) == [i18n.LANGUAGE_NAMES[code] for code in i18n.LANGUAGES]
    since = api.last_seq
    api.press_button(prompt, "v1|l|de", language_code="ru")
    edit = await api.wait_for_call("editMessageText", to(502), since=since)
    assert edit.params["message_id"] == prompt.result["message_id"]
    assert "Ich antworte in diesem Chat auf <b>Deutsch</b>" in edit.text
    await api.wait_for_call("answerCallbackQuery", since=since)
    api.send_text(502, "/help", language_code="ru")
    assert (await api.wait_for_call("sendMessage", to(502), since=since)).text.startswith("<b>Befehle</b>")

    # kept in the state store across a restart
    bot.stop()
    start()
    since = api.last_seq
    api.send_text(502, f"/players {peer.address}", language_code="ru")
    players = await api.wait_for_call("sendMessage", to(502), since=since, timeout=15)
    assert "👥 <b>Spieler auf</b>" in players.text


async def test_settings_in_a_private_chat_and_a_group(  # noqa: PLR0915 - one bot for the whole journey
    api: BotApiServer, start: Callable[..., ServiceProcess], peer: JavaPeer
) -> None:
    start()
    dead = f"{LOOPBACK}:{free_port()}"
    # private chat: nothing set
    api.send_text(601, "/settings")
    shown = await api.wait_for_call("sendMessage", to(601))
    assert "Language: <b>English</b> (from your Telegram app)" in shown.text
    assert "Default server: none" in shown.text
    # a default server: /status alone checks it, even after another server was asked about
    api.send_text(601, f"/settings server {peer.address}")
    assert (
        "✅ Default server:"
        in (await api.wait_for_call("sendMessage", lambda c: to(601)(c) and "✅" in c.text)).text
    )
    since = api.last_seq
    api.send_text(601, f"/status {dead}")
    await api.wait_for_call(
        "sendMessage", lambda c: to(601)(c) and "Offline" in c.text, since=since, timeout=15
    )
    since = api.last_seq
    api.send_text(601, "/status")
    alone = await api.wait_for_call("sendMessage", to(601), since=since, timeout=15)
    assert f"<code>{peer.address}</code>" in alone.text
    assert "Online" in alone.text
    # the settings message's button removes it again (edited in place, the press answered)
    api.send_text(601, "/settings")
    view = await api.wait_for_call("sendMessage", lambda c: to(601)(c) and "Settings" in c.text, since=since)
    assert f"Default server: <code>{peer.address}</code>" in view.text
    since = api.last_seq
    api.press_button(view, "v1|set|clear")
    cleared = await api.wait_for_call("editMessageText", to(601), since=since)
    assert "Default server: none" in cleared.text
    answer = await api.wait_for_call("answerCallbackQuery", since=since)
    assert "No default server" in answer.params["text"]
    since = api.last_seq
    api.send_text(601, f"/status {dead}")
    await api.wait_for_call("sendMessage", offline_in(601), since=since, timeout=15)
    since = api.last_seq
    api.send_text(601, "/status")
    last = await api.wait_for_call("sendMessage", to(601), since=since, timeout=15)
    assert f"<code>{dead}</code>" in last.text  # without a default: the last server again

    # a group: only administrators change its settings
    group = -100601
    api.set_admins(group, [71])
    api.send_text(group, f"/settings server {peer.address}", chat_type="supergroup", user_id=72)
    refused = await api.wait_for_call("sendMessage", to(group))
    assert refused.text == formatting.admins_only()
    api.send_text(group, "/language", chat_type="supergroup", user_id=72)
    assert (
        await api.wait_for_call("sendMessage", to(group), since=refused.seq)
    ).text == formatting.admins_only()
    since = api.last_seq
    api.send_text(group, f"/settings server {peer.address}", chat_type="supergroup", user_id=71)
    done = await api.wait_for_call("sendMessage", to(group), since=since)
    assert done.text.startswith("✅ Default server:")
    since = api.last_seq
    api.send_text(group, "/status", chat_type="supergroup", user_id=72)  # anyone may use it
    card = await api.wait_for_call("sendMessage", to(group), since=since, timeout=15)
    assert f"<code>{peer.address}</code>" in card.text
    # the language buttons: a member's press is refused with an alert, an admin's switches the group
    api.send_text(group, "/language", chat_type="supergroup", user_id=71)
    prompt = await api.wait_for_call("sendMessage", lambda c: to(group)(c) and "🌐" in c.text)
    since = api.last_seq
    api.press_button(prompt, "v1|l|tr", user_id=72)
    alert = await api.wait_for_call("answerCallbackQuery", since=since)
    assert alert.params["show_alert"] is True
    assert api.calls_to("editMessageText", group, since=since) == []
    api.press_button(prompt, "v1|l|tr", user_id=71)
    switched = await api.wait_for_call("editMessageText", to(group), since=since)
    assert "<b>Türkçe</b>" in switched.text
    since = api.last_seq
    api.send_text(group, "/settings", chat_type="supergroup", user_id=72)
    turkish = await api.wait_for_call("sendMessage", to(group), since=since)
    assert "Dil: <b>Türkçe</b>" in turkish.text
    assert f"Varsayılan sunucu: <code>{peer.address}</code>" in turkish.text


async def test_a_refresh_that_changes_nothing_says_so_and_edits_nothing(
    api: BotApiServer, start: Callable[..., ServiceProcess], changing_peer: JavaPeer
) -> None:
    peer = changing_peer
    start()
    api.send_text(701, f"/status {peer.address}", language_code="de")
    card = await api.wait_for_call("sendMessage", to(701), timeout=15)
    # pressed within the status TTL: the query service answers from its cache, the card would not change
    since = api.last_seq
    api.press_button(card, f"v1|s|a|{peer.address}", language_code="de")
    notice = await api.wait_for_call("answerCallbackQuery", since=since, timeout=15)
    assert re.fullmatch(
        r"✅ Aktuell: geprüft vor \d+ Sekunden?, nächste Prüfung in \d+ Sekunden?\.", notice.params["text"]
    )
    await asyncio.sleep(0.5)  # an edit, had there been one, would come before the answer: none came
    assert api.calls_to("editMessageText", 701, since=since) == []
    # the peer's answer changes; once the entry has expired the query service still answers the old one
    # (stale) and refreshes it in the background, so that press changes nothing; the next one edits the card
    peer.configure(online=7)
    await asyncio.sleep(STATUS_TTL + 0.5)
    since = api.last_seq
    api.press_button(card, f"v1|s|a|{peer.address}", language_code="de")
    await api.wait_for_call("answerCallbackQuery", since=since, timeout=15)
    assert api.calls_to("editMessageText", 701, since=since) == []
    await asyncio.sleep(1.0)  # the background refresh has probed the peer by now
    since = api.last_seq
    api.press_button(card, f"v1|s|a|{peer.address}", language_code="de")
    edit = await api.wait_for_call("editMessageText", to(701), since=since, timeout=15)
    assert "Spieler: 7/20 (35 % voll)" in edit.text
    answer = await api.wait_for_call("answerCallbackQuery", since=since)
    assert "text" not in answer.params or not answer.params["text"]


async def test_inline_mode_cards_and_their_buttons(
    api: BotApiServer, start: Callable[..., ServiceProcess], peer: JavaPeer
) -> None:
    bot = start()
    # an empty query and an invalid one: a short help result each, never an error
    for text in ("", "exa<mple com"):
        help_id = api.send_inline_query(801, text)["inline_query"]["id"]
        await api.wait_for_call("answerInlineQuery", answer_to(help_id))
        answer = api.inline_answer(help_id)
        assert answer is not None
        assert len(answer["results"]) == 1
        assert f"@{api.bot_username}" in answer["results"][0]["input_message_content"]["message_text"]
        assert 0 < answer["cache_time"] <= 60  # the query service's default status TTL

    # `@bot host:port`: the card with its buttons, cached no longer than the query service keeps it
    update = api.send_inline_query(802, peer.address, language_code="de")
    query_id = update["inline_query"]["id"]
    await api.wait_for_call("answerInlineQuery", answer_to(query_id), timeout=15)
    answer = api.inline_answer(query_id)
    assert answer is not None
    (result,) = answer["results"]
    assert result["type"] == "article"
    assert result["title"] == f"🟢 {peer.address}"
    assert "Spieler: 3/20" in result["input_message_content"]["message_text"]
    assert [b["text"] for b in result["reply_markup"]["inline_keyboard"][0]] == ["Status", "Spieler", "Info"]
    assert 0 <= answer["cache_time"] <= STATUS_TTL

    # chosen and sent into some chat: its buttons edit THAT inline message, by inline_message_id
    inline_id = api.choose_inline_result(query_id, result["id"])
    since = api.last_seq
    api.press_inline_button(inline_id, f"v1|p|a|{peer.address}", language_code="de")
    edit = await api.wait_for_call("editMessageText", since=since, timeout=15)
    assert edit.params["inline_message_id"] == inline_id
    assert "chat_id" not in edit.params
    assert "👥 <b>Spieler auf</b>" in api.inline_message(inline_id)["text"]
    await api.wait_for_call("answerCallbackQuery", since=since)

    # after a restart too (the buttons carry the server)
    bot.stop()
    start()
    since = api.last_seq
    api.press_inline_button(inline_id, f"v1|a|a|{peer.address}", language_code="de")
    await api.wait_for_call("editMessageText", since=since, timeout=15)
    assert f"Server dieser Karte: <code>{peer.address}</code>" in api.inline_message(inline_id)["text"]
