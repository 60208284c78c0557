"""The message catalogues: complete, up to date with the code, every placeholder and tag kept, and every
message in every language accepted by the Bot API test server's own checks (HTML parse mode, lengths).
The bot process answering in each language is tests/test_bot_languages.py."""

from __future__ import annotations

import asyncio
import re
import string
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from mcstatbot_bot import dashboard, formatting, i18n, watch_texts
from mcstatbot_bot.formatting import Problem
from mcstatbot_bot.handlers import chat_language, speak_to_chat
from mcstatbot_bot.state import ChatSettings, ResilientStore
from mcstatbot_bot.state.base import ServerRef
from mcstatbot_bot.state.memory import MemoryStore
from mcstatbot_common.addresses import PROBLEM_TEXTS, AddressProblem, InvalidAddressError
from mcstatbot_common.models import (
    Edition,
    ErrorCode,
    Motd,
    NamedVersion,
    PlaceholderInfo,
    PlayerCount,
    PlayerEntry,
    PlayerList,
    Players,
    ProbeError,
    ServerStatus,
    SoftwareInfo,
    Version,
)
from mcstatbot_testkit.telegram import MAX_CALLBACK_TEXT, MAX_TEXT, parse_html, utf16_length

if TYPE_CHECKING:
    from collections.abc import Iterator

    from babel.messages.catalog import Catalog

TRANSLATED = [language for language in i18n.LANGUAGES if language != i18n.DEFAULT]
NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
_TAG = re.compile(r"</?[a-z-]+>")


def catalogue(language: str) -> Catalog:
    with i18n.po_path(language).open("rb") as po:
        return read_po(po, locale=language)


def template() -> Catalog:
    with (i18n.LOCALES_DIR / f"{i18n.DOMAIN}.pot").open("rb") as pot:
        return read_po(pot)


def msgids(catalog: Catalog) -> set[str]:
    return {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id}


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


@pytest.fixture
def speak() -> Iterator[None]:
    yield
    i18n.use(i18n.DEFAULT)


def test_the_template_is_up_to_date_with_the_code() -> None:
    """`scripts/update-messages.sh` was run: extracting from the code now finds exactly the template's
    msgids (none missing, none left over)."""
    extracted = {
        message if isinstance(message, str) else message[0]
        for _, _, message, _, _ in extract_from_dir(str(i18n.LOCALES_DIR.parent))
    }
    assert extracted == msgids(template())


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_message_is_translated(language: str) -> None:
    catalog = catalogue(language)
    assert msgids(catalog) == msgids(template())
    untranslated = [m.id for m in catalog if m.id and not all(_forms(m.string))]
    assert untranslated == []
    assert [m.id for m in catalog if m.id and m.fuzzy] == []
    # each form the language's plural rule asks for (Russian and Ukrainian three, Turkish two)
    for message in catalog:
        if message.id and message.pluralizable:
            assert len(_forms(message.string)) == catalog.num_plurals, message.id


def _forms(value: str | tuple[str, ...] | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


@pytest.mark.parametrize("language", TRANSLATED)
def test_placeholders_and_tags_survive_in_every_translation(language: str) -> None:
    for message in catalogue(language):
        if not message.id:
            continue
        sources = [message.id] if isinstance(message.id, str) else list(message.id)
        names = set().union(*(placeholders(s) for s in sources))
        tags = sorted(_TAG.findall(sources[0]))
        for form in _forms(message.string):
            assert placeholders(form) == names, (language, message.id, form)
            assert sorted(_TAG.findall(form)) == tags, (language, message.id, form)
            filled = form.format(**dict.fromkeys(names, "x"))
            parse_html(filled)  # raises the 400 Telegram answers when it does not parse


def test_the_address_parsers_reasons_are_the_bots_msgids() -> None:
    """The bot translates the parser's reasons by their English text: every reason has its msgid, the same
    text, so an English reader reads what the query service answers."""
    assert {p: formatting.ADDRESS_REASONS[p] for p in AddressProblem} == PROBLEM_TEXTS


def test_telegram_language_codes_map_to_the_bots_languages() -> None:
    assert i18n.language_for("de") == "de"
    assert i18n.language_for("de-AT") == "de"
    assert i18n.language_for("pt-br") == "pt_BR"
    assert i18n.language_for("pt") == "pt_BR"
    assert i18n.language_for("uk") == "uk"
    assert i18n.language_for("ru") == "ru"
    assert i18n.language_for("tr") == "tr"
    assert i18n.language_for("fr") == "en"
    assert i18n.language_for(None) == "en"
    assert i18n.language_for("") == "en"


def status(**changes: object) -> ServerStatus:
    base = ServerStatus(
        address="play.example.com:25565",
        host="play.example.com",
        port=25565,
        online=True,
        edition=Edition.JAVA,
        version=Version(name="1.21.1", protocol=767),
        motd=Motd(raw="§aHi", clean="Hi <b>there</b>", html=""),
        players=Players(online=3, max=20, sample=[PlayerEntry(name="Steve")]),
        latency_ms=42.0,
        software=SoftwareInfo(name="paper", version="1.21.1", minecraft_version="1.21.1"),
        plugins=[NamedVersion(name="EssentialsX", version="2.20")] * 21,
        mods=[NamedVersion(name="jei", version="7.7.1")] * 3,
        retrieved_at=NOW,
    )
    return base.model_copy(update=changes)


def every_text() -> Iterator[str]:
    """Every message the bot sends, with the placeholders filled the way the bot fills them."""
    server = ServerRef("play.example.com:25565")
    yield formatting.status_card(status(), stored_at=NOW - timedelta(minutes=5), now=NOW)
    yield formatting.status_card(status(players=Players(online=0, max=0)))
    yield formatting.status_card(status(online=False, error=ProbeError(code=ErrorCode.REFUSED, message="x")))
    yield formatting.status_card(status(online=False, error=None))
    yield formatting.status_card(
        status(
            online=False,
            error=ProbeError(code=ErrorCode.PLACEHOLDER, message="x"),
            placeholder=PlaceholderInfo(rule="aternos-offline", host="Aternos", text="● Offline"),
        )
    )
    for code in ErrorCode:
        yield formatting.offline_sentence(ProbeError(code=code, message="x"))
    names = ["Alex", "<b>", *[f"player{i}" for i in range(2000)]]
    for source, listed in (("sample", names[:3]), ("query", names), ("none", [])):
        yield formatting.players_card(
            PlayerList(
                address="a:1",
                online=True,
                players=PlayerCount(online=len(listed), max=3000),
                names=listed,
                source=source,
                retrieved_at=NOW,
            ),
            stored_at=NOW,
            now=NOW,
        )
    yield formatting.players_card(PlayerList(address="a:1", online=True, names=[], source="none"))
    yield formatting.players_card(formatting.players_from_status(status(online=False)))
    fields = {"address": "<x>", "detail": "a & b", "command": "status"}
    for kind in Problem:
        yield formatting.problem(kind, **fields)
    yield formatting.invalid_address("<x>", "the port must be a number", translated=False)
    for reason in AddressProblem:
        yield formatting.refused_address("<x>", InvalidAddressError(reason, limit=253))
    yield formatting.slow_down(1, 10)
    yield formatting.slow_down(5, 10)
    yield formatting.start_text("Eve", "mcstatbot_test_bot")
    yield formatting.start_text(None, "mcstatbot_test_bot")
    yield formatting.help_text("mcstatbot_test_bot")
    yield formatting.about_text()
    yield formatting.about_text(server, status(mods_truncated=True))
    yield formatting.about_text(
        server, status(software=SoftwareInfo(name="forge", version="47.2.0", minecraft_version="1.20.1"))
    )
    yield formatting.language_prompt()
    yield formatting.language_set()
    yield formatting.admins_only()
    yield formatting.settings_text(server, chosen_language=True)
    yield formatting.settings_text(None, chosen_language=False)
    yield formatting.default_server_set(server)
    yield formatting.default_server_cleared()
    yield formatting.settings_usage()
    yield formatting.inline_help_text("mcstatbot_test_bot")
    yield formatting.unavailable(server)
    yield from watch_text_samples()
    yield dashboard.empty_text()
    yield dashboard.dashboard_text(
        [
            dashboard.server_line(server, status()),
            dashboard.server_line(server, status(latency_ms=None, players=None)),
            dashboard.server_line(ServerRef("<x>"), status(online=False)),
            dashboard.server_line(server, status(error=ProbeError(code=ErrorCode.PLACEHOLDER, message="x"))),
            dashboard.server_line(server, None),
        ]
    )


def watch_text_samples() -> Iterator[str]:
    """The texts of /watch, /unwatch, /watches, /live and the watcher's alerts and live cards."""
    address = "play.example.com:25565"
    yield watch_texts.watch_usage()
    yield watch_texts.unwatch_usage()
    yield watch_texts.live_usage()
    for players in (True, False):
        for online in (True, False, None):
            yield watch_texts.watch_added(address, players=players, online=online)
        yield watch_texts.watch_changed(address, players=players)
    yield watch_texts.watch_unchanged(address)
    for limit in (1, 2, 5, 21):
        yield watch_texts.watch_limit(limit)
    yield watch_texts.admins_only()
    yield watch_texts.unwatched(address)
    yield watch_texts.not_watched("<x>")
    yield watch_texts.no_watches()
    lines = [
        watch_texts.watch_line(address, players=players, state=state, since=since)
        for players in (True, False)
        for state in ("up", "down", None)
        for since in (NOW, None)
    ]
    yield from lines
    yield watch_texts.watches_list(lines[:1], 1)
    yield watch_texts.watches_list(lines, 25)
    for reason in (None, *(code.value for code in ErrorCode), "something_new"):
        for failures, changes in ((1, 0), (3, 2), (22, 5)):
            yield watch_texts.down_alert(
                address, reason=reason, failures=failures, since=NOW, changes=changes
            )
    for down_seconds in (None, 1, 75, 7200):
        yield watch_texts.up_alert(address, down_seconds=down_seconds, changes=3)
    many = [f"player{i}" for i in range(40)]
    yield watch_texts.players_alert(address, ["Alex"], [], partial=False)
    yield watch_texts.players_alert(address, [], ["Alex", "<jeb>"], partial=True)
    yield watch_texts.players_alert(address, many, many[:2], partial=False)
    for count in (0, 1, 3):
        yield watch_texts.live_stopped(count)
    for card in (
        status(),
        status(players=Players(online=0, max=20, sample=[])),
        status(online=False, error=ProbeError(code=ErrorCode.TIMEOUT, message="x")),
        status(online=True, error=ProbeError(code=ErrorCode.PLACEHOLDER, message="x")),
    ):
        yield watch_texts.live_card(card, 60)


def plain_texts() -> Iterator[tuple[str, int]]:
    """Texts Telegram takes as plain text, with their limits: callback answers, buttons, menus, inline
    result titles and descriptions."""
    yield formatting.up_to_date(20, 40), MAX_CALLBACK_TEXT
    yield formatting.up_to_date(3700, None), MAX_CALLBACK_TEXT
    yield formatting.problem_plain(Problem.BUTTON_EXPIRED), MAX_CALLBACK_TEXT
    yield formatting.plain(formatting.admins_only()), MAX_CALLBACK_TEXT
    yield formatting.plain(formatting.default_server_cleared()), MAX_CALLBACK_TEXT
    yield formatting.plain(formatting.slow_down(5, 10)), MAX_CALLBACK_TEXT
    yield formatting.plain(watch_texts.admins_only()), MAX_CALLBACK_TEXT
    for action in formatting.BUTTON_LABELS:
        yield formatting.button_label(action), 64
    yield formatting.settings_language_button(), 64
    yield dashboard.refresh_label(), 64
    yield formatting.settings_clear_button(), 64
    for _, description in formatting.commands():
        yield description, 256  # setMyCommands: a description of 1 to 256 characters
    for text in (formatting.inline_help_title(), formatting.inline_invalid_title()):
        yield text, 256
    yield formatting.inline_help_description(), 256
    yield formatting.inline_status_description(status()), 256
    yield formatting.inline_status_description(status(online=False)), 256


@pytest.mark.parametrize("language", i18n.LANGUAGES)
@pytest.mark.usefixtures("speak")
def test_every_message_in_every_language_is_accepted_by_telegram(language: str) -> None:
    i18n.use(language)
    english = set()
    if language != i18n.DEFAULT:
        i18n.use(i18n.DEFAULT)
        english = set(every_text())
        i18n.use(language)
    count = 0
    for text in every_text():
        visible = parse_html(text)  # the test server's own parser: Telegram's tags, balanced, entities
        assert visible.strip()
        assert utf16_length(visible) <= MAX_TEXT
        # translated: no English card or reply where the language has its own (tag-only texts aside)
        assert text not in english or not re.search(r"[a-z]{4}", _TAG.sub("", text)), text
        count += 1
    assert count > 40
    for text, limit in plain_texts():
        assert text.strip()
        assert utf16_length(text) <= limit, text


@pytest.mark.usefixtures("speak")
def test_numbers_times_and_plurals_follow_the_language() -> None:
    i18n.use("de")
    card = formatting.status_card(status(players=Players(online=1234, max=5000)), now=NOW)
    assert "Spieler: 1.234/5.000 (25 % voll)" in card
    assert "Geprüft: 28.11.2026, 09:00:00 UTC" in card
    assert "vor 5 Minuten" in formatting.stale_note(NOW - timedelta(minutes=5), NOW)
    i18n.use("ru")
    assert [
        formatting.software_line(status(mods=[], plugins=[NamedVersion(name="p")] * n)) for n in (1, 3, 5, 21)
    ] == [
        "Paper 1.21.1 · 1 плагин",
        "Paper 1.21.1 · 3 плагина",
        "Paper 1.21.1 · 5 плагинов",
        "Paper 1.21.1 · 21 плагин",
    ]
    assert "1 234" in formatting.and_more(1234).replace("\xa0", " ")
    i18n.use("uk")
    assert formatting.up_to_date(20, 40) == (
        "✅ Актуально: перевірено 20 секунд тому, наступна перевірка через 40 секунд."
    )
    i18n.use("tr")
    assert "(%15 dolu)" in formatting.status_card(status(), now=NOW)
    i18n.use("pt_BR")
    assert "Jogadores: 3/20 (15% cheio)" in formatting.status_card(status(), now=NOW)


@pytest.mark.usefixtures("speak")
def test_a_moment_ago_is_in_the_past() -> None:
    """Babel words a zero duration as the future ("in 0 seconds"): an answer checked just now is
    "1 second ago", never "in 0 seconds"."""
    for language in i18n.LANGUAGES:
        i18n.use(language)
        assert i18n.ago(0) == i18n.ago(1)
    i18n.use(i18n.DEFAULT)
    assert formatting.up_to_date(0.2, 0) == "✅ Up to date: checked 1 second ago."


@pytest.mark.usefixtures("speak")
async def test_a_chats_language_for_a_message_without_an_update() -> None:
    """A message the bot sends on its own (a notification) is in the chat's chosen language, else
    English."""
    store = ResilientStore(MemoryStore())
    await store.save_settings(5, ChatSettings(language="uk"))
    await speak_to_chat(store, 5)
    assert i18n.current() == "uk"
    assert formatting.button_label("p") == "Гравці"
    await speak_to_chat(store, 6)
    assert i18n.current() == "en"


@pytest.mark.usefixtures("speak")
def test_watch_texts_follow_the_language() -> None:
    """The watcher's alerts: plural forms, durations, times and numbers of the language."""
    address = "play.example.com:25565"
    i18n.use("ru")
    forms = [
        watch_texts.down_alert(address, reason="timeout", failures=n, since=NOW, changes=0).split("\n")[1]
        for n in (1, 3, 5)
    ]
    assert [form.split(",")[0] for form in forms] == [
        "1 неудачная проверка подряд",
        "3 неудачные проверки подряд",
        "5 неудачных проверок подряд",
    ]
    assert "он не ответил вовремя" in watch_texts.down_alert(
        address, reason="timeout", failures=3, since=NOW, changes=0
    )
    i18n.use("de")
    assert "nach 2 Stunden Ausfall" in watch_texts.up_alert(address, down_seconds=7200, changes=0)
    assert "seit 28.11.2026, 09:00:00 UTC" in watch_texts.watch_line(
        address, players=False, state="up", since=NOW
    )
    assert "Spieler: 1.234/5.000" in watch_texts.live_card(status(players=Players(online=1234, max=5000)), 60)
    i18n.use("uk")
    assert "ще 10" in watch_texts.players_alert(address, [f"p{i}" for i in range(40)], [], partial=False)
    i18n.use(i18n.DEFAULT)
    assert "3 failed checks in a row" in watch_texts.down_alert(
        address, reason=None, failures=3, since=NOW, changes=0
    )


@pytest.mark.usefixtures("speak")
async def test_renderings_in_different_languages_never_mix() -> None:
    """`i18n.speaking` sets the language for its block only: concurrent tasks, each switching between
    chats in turn (as the watcher's deliveries do), each render in the language they chose, and the
    language before the block is back after it."""
    store = ResilientStore(MemoryStore())
    await store.save_settings(1, ChatSettings(language="de"))
    await store.save_settings(2, ChatSettings(language="ru"))
    i18n.use("tr")

    async def render(chat: int) -> list[str]:
        texts = []
        for _ in range(20):
            with i18n.speaking(await chat_language(store, chat)):
                await asyncio.sleep(0)  # the other task runs here, in its own language
                texts.append(watch_texts.up_alert("a:1", down_seconds=None, changes=0))
        return texts

    german, russian, english = await asyncio.gather(render(1), render(2), render(3))
    assert set(german) == {"🟢 <code>a:1</code> ist <b>wieder da</b>."}
    assert set(russian) == {"🟢 <code>a:1</code> <b>снова работает</b>."}
    assert set(english) == {"🟢 <code>a:1</code> is <b>back up</b>."}
    assert i18n.current() == "tr"
    # one task, one chat after another (and nested): each block its own language, the one before it after
    with i18n.speaking("de"):
        with i18n.speaking("ru"):
            assert i18n.current() == "ru"
        assert i18n.current() == "de"
        with i18n.speaking("xx"):  # not a language the bot speaks: English
            assert i18n.current() == i18n.DEFAULT
    assert i18n.current() == "tr"
