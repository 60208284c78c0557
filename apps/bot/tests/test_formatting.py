"""Reply texts: escaping of everything from users and servers, the 4096 limit, the player list."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

from mcstatbot_bot import formatting
from mcstatbot_bot.formatting import Problem
from mcstatbot_bot.state.base import ServerRef
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
    SrvRecord,
    Version,
)
from mcstatbot_testkit.telegram import parse_html, utf16_length

ALLOWED_TAGS = {"b", "i", "code"}
NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


class TagChecker(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.bad: list[str] = []

    def handle_starttag(self, tag: str, _attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            self.bad.append(tag)
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.bad.append(f"/{tag}")


def assert_safe_html(text: str) -> None:
    checker = TagChecker()
    checker.feed(text)
    checker.close()
    assert checker.bad == []
    assert checker.stack == []
    assert len(text) <= 4096


def online(**changes: object) -> ServerStatus:
    base = ServerStatus(
        address="play.example.com:25565",
        host="play.example.com",
        port=25565,
        edition="java",
        online=True,
        version=Version(name="1.21.1 <script>", protocol=767),
        motd=Motd(raw="§a<b>Hi</b> & bye", clean="<b>Hi</b> & bye", html=""),
        players=Players(online=3, max=20, sample=[PlayerEntry(name="Steve")]),
        latency_ms=42.4,
        srv=SrvRecord(target="mc<1>.example.com", port=25566),
        retrieved_at=NOW,
    )
    return base.model_copy(update=changes)


def test_status_card_escapes_and_shows_everything() -> None:
    text = formatting.status_card(online(), now=NOW)
    assert_safe_html(text)
    assert "🟢 <b>Online</b>" in text
    assert "&lt;b&gt;Hi&lt;/b&gt; &amp; bye" in text
    assert "1.21.1 &lt;script&gt;" in text
    assert "SRV: <code>mc&lt;1&gt;.example.com:25566</code>" in text
    assert "Edition: Java" in text
    assert "🟢 42 ms" in text
    assert "3/20 (15% full)" in text
    assert "Checked: Nov 28, 2026, 9:00:00\u202fAM UTC" in text  # Babel, CLDR English


def test_latency_colours() -> None:
    assert formatting.latency_badge(99).startswith("🟢")
    assert formatting.latency_badge(100).startswith("🟡")
    assert formatting.latency_badge(299).startswith("🟡")
    assert formatting.latency_badge(300).startswith("🔴")
    assert formatting.latency_badge(None).startswith("⚪")


def test_offline_card_names_the_reason_and_what_to_do() -> None:
    status = online(online=False, error=ProbeError(code=ErrorCode.REFUSED, message="x"), srv=None)
    text = formatting.status_card(status, now=NOW)
    assert_safe_html(text)
    assert "🔴 <b>Offline</b>" in text
    assert "refused" in text
    assert "Check the address and port" in text


def test_stale_note_gives_the_age() -> None:
    text = formatting.status_card(online(), stored_at=NOW - timedelta(minutes=5), now=NOW)
    assert "from 5 minutes ago" in text
    assert_safe_html(text)


def test_players_sorted_case_insensitively_and_sample_noted() -> None:
    players = PlayerList(
        address="a:1",
        online=True,
        players=PlayerCount(online=5, max=10),
        names=["zed", "Alex", "bob", "<img>"],
        source="sample",
        retrieved_at=NOW,
    )
    text = formatting.players_card(players, now=NOW)
    assert_safe_html(text)
    names = re.findall(r"• (.+)", text)
    assert names == ["&lt;img&gt;", "Alex", "bob", "zed"]
    assert "…and 1 more" in text
    assert "only a sample" in text


def test_huge_player_list_stays_within_the_limit() -> None:
    names = [f"player_{i:05d}_with_a_long_name" for i in range(5000)]
    players = PlayerList(
        address="a:1", online=True, players=PlayerCount(online=5000, max=10000), names=names, source="query"
    )
    text = formatting.players_card(players, now=NOW)
    assert_safe_html(text)
    shown = len(re.findall(r"^• ", text, flags=re.MULTILINE))
    assert 50 < shown < 5000
    assert f"…and {5000 - shown:,} more" in text  # numbers as the language writes them


def test_every_problem_has_a_text_that_says_what_to_do() -> None:
    fields = {"address": "<x>", "detail": "a & b", "command": "status", "limit": 5, "window": 10}
    for kind in Problem:
        text = formatting.problem(kind, **fields)
        assert_safe_html(text)
        assert "<x>" not in text
    assert "private" in formatting.problem(Problem.FORBIDDEN_ADDRESS, address="x")
    assert "/status host" in formatting.problem(Problem.MISSING_ARGUMENT, command="status")
    assert formatting.problem_plain(Problem.BUTTON_EXPIRED).startswith(
        "⌛ This button has expired. Send /status"
    )


BIDI = "\u202e\u202d\u2066\u2067\u2068\u2069\u200e\u200f\u061c\u202a\u202b\u202c"


def assert_telegram_accepts(text: str) -> None:
    """What the Bot API test server checks, as Telegram does: the HTML parses, and its visible text is
    within 4096 UTF-16 code units."""
    visible = parse_html(text)
    assert visible.strip()
    assert utf16_length(visible) <= formatting.MAX_MESSAGE


def test_bidi_controls_from_servers_are_removed() -> None:
    status = online(
        address=f"{BIDI}evil.example:25565",
        motd=Motd(raw="x", clean=f"{BIDI}Welcome", html=""),
        version=Version(name=f"1.21{BIDI}", protocol=767),
        srv=SrvRecord(target=f"mc{BIDI}.example.com", port=25566),
    )
    players = PlayerList(
        address="a:1",
        online=True,
        players=PlayerCount(online=1, max=2),
        names=[f"{BIDI}Steve"],
        source="query",
        retrieved_at=NOW,
    )
    texts = [
        formatting.status_card(status, now=NOW),
        formatting.players_card(players, now=NOW),
        formatting.problem(Problem.INVALID_ADDRESS, address=f"{BIDI}x", detail=f"{BIDI}y"),
        formatting.start_text(f"{BIDI}Eve", "mcstatbot_test_bot"),
    ]
    for text in texts:
        assert not set(BIDI) & set(text)
    assert "Welcome" in texts[0]
    assert "• Steve" in texts[1]


def test_lengths_count_utf16_units_after_entities() -> None:
    # names outside the BMP count two units each, entities count one: the list is cut by what Telegram counts
    names = [f"{'😀' * 64}{i}" for i in range(500)] + [f"{'&' * 60}{i}" for i in range(500)]
    players = PlayerList(
        address="a:1", online=True, players=PlayerCount(online=1000, max=1000), names=names, source="query"
    )
    text = formatting.players_card(players, now=NOW)
    assert_telegram_accepts(text)
    assert "…and" in text
    # the longest status card: every server-provided field at its bound, in astral characters
    big = "😀" * 5000
    status = online(
        address=big,
        motd=Motd(raw="x", clean=big, html=""),
        version=Version(name=big, protocol=1),
        srv=SrvRecord(target=big, port=1),
    )
    for card in (formatting.status_card(status, now=NOW), formatting.status_card(status, stored_at=NOW)):
        assert_telegram_accepts(card)


def test_what_a_user_typed_is_cut_and_escaped() -> None:
    typed = "<" + "a" * 4088
    text = formatting.problem(Problem.INVALID_ADDRESS, address=typed, detail="d" * 5000)
    assert_telegram_accepts(text)
    assert "&lt;" + "a" * 62 + "…" in text
    assert "d" * (formatting.MAX_DETAIL) not in text
    assert formatting.visible_length(text) < 500


def test_callback_answers_stay_within_200() -> None:
    for kind in Problem:
        answer = formatting.problem_plain(
            kind, address="x" * 300, detail="y" * 300, command="c", limit=1, window=1
        )
        assert utf16_length(answer) <= formatting.MAX_CALLBACK_ANSWER


def placeholder_status(text: str, host: str = "Aternos") -> ServerStatus:
    return online(
        online=False,
        players=None,
        latency_ms=None,
        error=ProbeError(code=ErrorCode.PLACEHOLDER, message="x"),
        placeholder=PlaceholderInfo(rule="aternos-offline", host=host, text=text),
    )


def test_placeholder_card_says_offline_with_the_hosts_text() -> None:
    text = formatting.status_card(placeholder_status("● Offline <b>"), now=NOW)
    assert_safe_html(text)
    assert "🔴 <b>Offline</b>" in text
    assert "offline (the host shows a placeholder)" in text
    assert "Placeholder (Aternos): <i>● Offline &lt;b&gt;</i>" in text
    assert "host's panel" in text
    assert "could not be reached" not in text
    players = PlayerList(
        address="a:1",
        online=False,
        error=ProbeError(code=ErrorCode.PLACEHOLDER, message="x"),
        retrieved_at=NOW,
    )
    players_text = formatting.players_card(players, now=NOW)
    assert "offline (the host shows a placeholder)" in players_text
    assert "host's panel" in players_text


def test_placeholder_text_is_bounded_and_bidi_stripped() -> None:
    status = placeholder_status(f"{BIDI}{'😀' * 5000}", host=f"{BIDI}{'&' * 5000}")
    text = formatting.status_card(status, stored_at=NOW, now=NOW)
    assert_telegram_accepts(text)
    assert not set(BIDI) & set(text)
    assert formatting.visible_length(text) < 1200


def test_card_shows_software_and_counts() -> None:
    paper = online(
        software=SoftwareInfo(name="paper", version="1.21.1", minecraft_version="1.21.1"),
        plugins=[NamedVersion(name=f"p{i}", version="1.0") for i in range(14)],
    )
    assert "Software: Paper 1.21.1 · 14 plugins" in formatting.status_card(paper, now=NOW)
    forge = online(
        software=SoftwareInfo(name="forge", version="47.2.0", minecraft_version="1.20.1"),
        mods=[NamedVersion(name=f"m{i}") for i in range(120)],
    )
    assert "Software: Forge 47.2.0 · 120 mods" in formatting.status_card(forge, now=NOW)
    cut = forge.model_copy(update={"mods": forge.mods[:1], "mods_truncated": True})
    assert "Software: Forge 47.2.0 · 1+ mods" in formatting.status_card(cut, now=NOW)
    odd = online(software=SoftwareInfo(name="<x>" * 50, version="9" * 500))
    line = next(x for x in formatting.status_card(odd, now=NOW).split("\n") if x.startswith("Software"))
    assert "&lt;x&gt;" in line
    assert formatting.visible_length(line) < 100
    assert "Software" not in formatting.status_card(online(), now=NOW)


def test_about_lists_software_and_bounded_names() -> None:
    ref = ServerRef(address="play.example.com:25565", edition=Edition.JAVA)
    forge = online(
        software=SoftwareInfo(name="forge", version="47.2.0", minecraft_version="1.20.1"),
        mods=[NamedVersion(name="jei", version="15.2"), NamedVersion(name="<create>", version=None)],
    )
    text = formatting.about_text(ref, forge)
    assert_safe_html(text)
    assert "Software: Forge 47.2.0 (Minecraft 1.20.1)" in text
    assert "Mods (2 mods): jei 15.2, &lt;create&gt;" in text
    # hostile: 256 long names in astral characters, bidi controls, plugins too: cut, counted, within limits
    many = [NamedVersion(name=f"{BIDI}{'😀' * 300}{i}", version="&" * 300) for i in range(256)]
    hostile = online(
        software=SoftwareInfo(name="paper", version="1.21.1", minecraft_version="1.21.1"),
        mods=many,
        mods_truncated=True,
        plugins=many,
    )
    text = formatting.about_text(ServerRef(address="😀" * 300, edition=Edition.JAVA), hostile)
    assert_telegram_accepts(text)
    assert not set(BIDI) & set(text)
    assert "Software: Paper 1.21.1\n" in text
    assert "Mods (256+ mods):" in text
    assert "Plugins (256 plugins):" in text
    assert "more" in text
    # an offline server's last answer adds nothing
    assert "Software" not in formatting.about_text(ref, placeholder_status("● Offline"))
