"""Every text the bot sends, in Telegram's HTML parse mode, in one place, in the language of the update
being handled (`mcstatbot_bot.i18n`: gettext catalogues; numbers, times and durations by Babel).

Everything that comes from a user or a Minecraft server (addresses, MOTDs, versions, player names, the
user's first name) goes through `user_text`: bidirectional control characters (RTL override and kin)
removed, cut to a bound, then `html.escape`d. Replies stay within Telegram's limit of 4096 characters,
counted as Telegram counts them: UTF-16 code units of the text after the HTML entities are parsed
(`visible_length`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from html import escape, unescape
from typing import TYPE_CHECKING

from mcstatbot_common.addresses import AddressProblem
from mcstatbot_common.models import (
    Edition,
    ErrorCode,
    NamedVersion,
    PlayerCount,
    PlayerList,
    ProbeError,
    ServerStatus,
)

from mcstatbot_bot import i18n
from mcstatbot_bot.i18n import N_, _, ago, moment, ngettext, number

if TYPE_CHECKING:
    from mcstatbot_common.addresses import InvalidAddressError

    from mcstatbot_bot.state.base import ServerRef

MAX_MESSAGE = 4096
MAX_CALLBACK_ANSWER = 200
MAX_MOTD = 300
MAX_NAME = 64
MAX_ADDRESS = 270
MAX_VERSION = 100
MAX_ECHO = 64
"""What the user typed is echoed (in an "invalid address" reply) at most this long."""
MAX_DETAIL = 200
MAX_PLACEHOLDER = 200
"""A host's placeholder text is shown at most this long."""
MAX_SOFTWARE_NAME = 32
MAX_SOFTWARE_VERSION = 40
MAX_ITEM = 60
"""One mod or plugin (`name version`) in About, at most this long."""
MAX_ITEM_LIST = 1200
"""The mod list and the plugin list in About take at most this many characters each."""
# Bidirectional formatting characters: embeddings, overrides, isolates, marks. Echoed as they are, an RTL
# override from a user or a server turns the rest of a reply around (a spoofed address, a reversed word).
_BIDI_CONTROLS = dict.fromkeys(
    map(ord, "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
)
_TAG = re.compile(r"<[^>]+>")
LATENCY_GOOD_MS = 100
LATENCY_FAIR_MS = 300


class Problem(StrEnum):
    """Everything that can go wrong from the user's point of view; each maps to one text below."""

    MISSING_ARGUMENT = "missing_argument"
    INVALID_ADDRESS = "invalid_address"
    FORBIDDEN_ADDRESS = "forbidden_address"
    UNAVAILABLE = "unavailable"
    BUTTON_EXPIRED = "button_expired"
    INTERNAL = "internal"


PROBLEM_TEXTS: dict[Problem, str] = {
    Problem.MISSING_ARGUMENT: N_(
        "❓ Which server? Send <code>/{command} host</code> or <code>/{command} host:port</code>, "
        "for example <code>/{command} play.example.com</code>. After that, <code>/{command}</code> "
        "alone checks the same server again."
    ),
    Problem.INVALID_ADDRESS: N_(
        "⚠️ <code>{address}</code> is not a server address: {detail}.\n"
        "Send it as <code>host</code> or <code>host:port</code>, e.g. <code>play.example.com:25565</code>."
    ),
    Problem.FORBIDDEN_ADDRESS: N_(
        "⛔ <code>{address}</code> points to a private or reserved network address, which I am not "
        "allowed to check. Use the server's public address instead."
    ),
    Problem.UNAVAILABLE: N_(
        "😕 The status service is temporarily unavailable, and I have no earlier answer for "
        "<code>{address}</code>. Please try again in a minute."
    ),
    Problem.BUTTON_EXPIRED: N_("⌛ This button has expired. Send <code>/status host</code> again."),
    Problem.INTERNAL: N_("😕 Something went wrong on my side. Please try again."),
}
INVALID_ADDRESS_NO_REASON = N_(
    "⚠️ <code>{address}</code> is not a server address.\n"
    "Send it as <code>host</code> or <code>host:port</code>, e.g. <code>play.example.com:25565</code>."
)
"""INVALID_ADDRESS in a language other than English when the query service refused an address the bot's
own parser accepted: its reason is English."""
REASON_SPACES = N_("the address contains spaces")
ADDRESS_REASONS: dict[AddressProblem, str] = {
    AddressProblem.NOT_TEXT: N_("the address must be text"),
    AddressProblem.EMPTY: N_("the address is empty"),
    AddressProblem.TOO_LONG: N_("the address is longer than {limit} characters"),
    AddressProblem.SPACES: REASON_SPACES,
    AddressProblem.SCHEME: N_("give the server as host or host:port, without a scheme"),
    AddressProblem.NOT_HOST_PORT: N_("the address may contain only a host name or IP and a port"),
    AddressProblem.BRACKET_UNCLOSED: N_("an IPv6 address opened with '[' must close with ']'"),
    AddressProblem.BRACKET_NOT_IPV6: N_("the text in [brackets] is not an IPv6 address"),
    AddressProblem.AFTER_BRACKET: N_("after ']' only ':port' may follow"),
    AddressProblem.IPV6_PORT_FORM: N_("an IPv6 address with a port must be written as [address]:port"),
    AddressProblem.PORT: N_("the port must be a number from 1 to 65535"),
    AddressProblem.HOST_MISSING: N_("the host name is missing"),
    AddressProblem.SCOPED_IPV6: N_("scoped IPv6 addresses are not supported"),
    AddressProblem.IDN: N_("the host name is not a valid internationalised domain name"),
    AddressProblem.HOST_TOO_LONG: N_("the host name is longer than {limit} characters"),
    AddressProblem.EMPTY_LABEL: N_("the host name has an empty part (two dots in a row?)"),
    AddressProblem.LABEL_TOO_LONG: N_("a part of the host name is longer than {limit} characters"),
    AddressProblem.HOST_CHARACTERS: N_("the host name may contain only letters, digits, hyphens and dots"),
    AddressProblem.BAD_IP: N_("the address looks like an IP address but is not a valid one"),
}
"""The address parser's reasons (mcstatbot_common.addresses.PROBLEM_TEXTS, the same English texts) for
the reader's language."""
REASON_NOT_ACCEPTED = N_("the status service did not accept it")

OFFLINE_REASONS: dict[ErrorCode, str] = {
    ErrorCode.TIMEOUT: N_("it did not answer in time"),
    ErrorCode.REFUSED: N_("the connection was refused (nothing listens on that port)"),
    ErrorCode.DNS: N_("the host name does not resolve (check the spelling)"),
    ErrorCode.UNREACHABLE: N_("the network path to it is unreachable"),
    ErrorCode.PROTOCOL: N_("something answered, but not like a Minecraft server"),
    ErrorCode.PLACEHOLDER: N_("the host shows a placeholder"),
}
OFFLINE_ADVICE = N_(
    "Check the address and port; if they are right, the server may be down or starting. Try again later."
)
PLACEHOLDER_ADVICE = N_(
    "The host answers for the server while it is stopped or asleep. Start it from the host's panel, "
    "or try again later."
)
SOFTWARE_NAMES = {
    "vanilla": "Vanilla",
    "paper": "Paper",
    "purpur": "Purpur",
    "folia": "Folia",
    "spigot": "Spigot",
    "craftbukkit": "CraftBukkit",
    "forge": "Forge",
    "neoforge": "NeoForge",
    "fabric": "Fabric",
    "quilt": "Quilt",
    "velocity": "Velocity",
    "bungeecord": "BungeeCord",
    "waterfall": "Waterfall",
}

EDITION_NAMES = {Edition.JAVA: "Java", Edition.BEDROCK: "Bedrock"}
"""Product names, the same in every language."""


def utf16_length(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units (a character outside the BMP counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def visible_length(html: str) -> int:
    """Length of one of our HTML texts as Telegram counts it: after the tags and entities are parsed."""
    return utf16_length(strip_tags(html))


def neutralise(text: str) -> str:
    """`text` without bidirectional control characters."""
    return text.translate(_BIDI_CONTROLS)


def _clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-16 code units (an ellipsis marks the cut)."""
    if utf16_length(text) <= limit:
        return text
    out: list[str] = []
    used = 1  # the ellipsis
    for char in text:
        used += 2 if ord(char) > 0xFFFF else 1  # noqa: PLR2004 - outside the BMP: a surrogate pair
        if used > limit:
            break
        out.append(char)
    return "".join(out) + "…"


def user_text(value: object, limit: int = MAX_DETAIL) -> str:
    """Text from a user or a server, fit for an HTML reply: bidi controls removed, cut, escaped."""
    return escape(_clip(neutralise(str(value)), limit))


def _fields(fields: dict[str, object]) -> dict[str, str]:
    return {k: user_text(v, MAX_ECHO if k == "address" else MAX_DETAIL) for k, v in fields.items()}


def problem(kind: Problem, **fields: object) -> str:
    """The text for `kind` in the current language; every field is neutralised, cut (`MAX_ECHO` for an
    address) and escaped."""
    return _(PROBLEM_TEXTS[kind]).format(**_fields(fields))


def address_reason(error: InvalidAddressError) -> str:
    """Why the parser refused an address, in the reader's language."""
    return _(ADDRESS_REASONS[error.problem]).format(**{k: number(v) for k, v in error.fields.items()})


def refused_address(address: str, error: InvalidAddressError) -> str:
    """The reply to an `address` the parser refused, with its reason, in the reader's language."""
    return invalid_address(address, address_reason(error), translated=True)


def invalid_address(address: str, detail: str, *, translated: bool) -> str:
    """ "not a server address": with the reason when it is in the reader's language (`translated`: one of
    the bot's own reasons, or an English reader), else without it."""
    if translated or i18n.current() == i18n.DEFAULT:
        return problem(Problem.INVALID_ADDRESS, address=address, detail=detail)
    return _(INVALID_ADDRESS_NO_REASON).format(**_fields({"address": address}))


def slow_down(limit: int, window: float) -> str:
    """The flood-control reply: at most `limit` checks per `window` seconds."""
    return ngettext(
        "🐢 Slow down a little: at most {limit} check every {window} per chat. "
        "I will answer again in a few seconds.",
        "🐢 Slow down a little: at most {limit} checks every {window} per chat. "
        "I will answer again in a few seconds.",
        limit,
    ).format(limit=number(limit), window=i18n.duration(window))


def strip_tags(text: str) -> str:
    """Plain text from one of our HTML texts (for callback answers, which take no markup)."""
    return unescape(_TAG.sub("", text))


def plain(html: str) -> str:
    """One of our HTML texts as a callback answer: no markup, at most MAX_CALLBACK_ANSWER long."""
    return _clip(strip_tags(html), MAX_CALLBACK_ANSWER)


def problem_plain(kind: Problem, **fields: object) -> str:
    return plain(problem(kind, **fields))


def latency_badge(latency_ms: float | None) -> str:
    if latency_ms is None:
        return "⚪ " + _("unknown")
    colour = "🟢" if latency_ms < LATENCY_GOOD_MS else "🟡" if latency_ms < LATENCY_FAIR_MS else "🔴"
    return _("{colour} {latency} ms").format(colour=colour, latency=number(round(latency_ms)))


def format_time(value: datetime) -> str:
    return moment(value)


def stale_note(stored_at: datetime, now: datetime) -> str:
    return _(
        "⚠️ <i>The status service is not answering right now. This is the last answer I have, "
        "from {age} ({time}).</i>"
    ).format(age=ago((now - stored_at).total_seconds()), time=format_time(stored_at))


def offline_sentence(error: ProbeError | None) -> str:
    """Why the server is offline, in one sentence."""
    if error is not None and error.code is ErrorCode.PLACEHOLDER:
        return _("The server is offline (the host shows a placeholder).")
    reason = OFFLINE_REASONS.get(error.code) if error is not None else None
    if reason is None:
        return _("The server could not be reached.")
    return _("The server could not be reached: {reason}.").format(reason=_(reason))


def _mods(count: int, truncated: bool) -> str:  # noqa: FBT001
    if truncated:
        return _("{count}+ mods").format(count=number(count))
    return ngettext("{count} mod", "{count} mods", count).format(count=number(count))


def _plugins(count: int, truncated: bool) -> str:  # noqa: FBT001
    if truncated:
        return _("{count}+ plugins").format(count=number(count))
    return ngettext("{count} plugin", "{count} plugins", count).format(count=number(count))


def software_name(status: ServerStatus) -> str | None:
    """`Paper 1.21.1`, `Forge 47.2.0`: what the server runs, escaped and bounded; None when unknown."""
    software = status.software
    if software is None:
        return None
    name = SOFTWARE_NAMES.get(software.name) or user_text(software.name, MAX_SOFTWARE_NAME)
    version = software.version or software.minecraft_version
    return f"{name} {user_text(version, MAX_SOFTWARE_VERSION)}" if version else name


def software_line(status: ServerStatus) -> str | None:
    """The card's line: `Paper 1.21.1 · 14 plugins`, `Forge 47.2.0 · 120 mods`; None when nothing is known."""
    parts = [name] if (name := software_name(status)) else []
    if status.mods:
        parts.append(_mods(len(status.mods), status.mods_truncated))
    if status.plugins:
        parts.append(_plugins(len(status.plugins), status.plugins_truncated))
    return " · ".join(parts) or None


def and_more(count: int, *, truncated: bool = False) -> str:
    """`…and 12 more` (`…and 12+ more` when the list itself was cut)."""
    if truncated:
        return _("…and {count}+ more").format(count=number(count))
    return ngettext("…and {count} more", "…and {count} more", count).format(count=number(count))


def item_list(items: list[NamedVersion], *, truncated: bool = False, budget: int = MAX_ITEM_LIST) -> str:
    """`jei 7.7.1, create 0.5.1, …and N more`: names escaped and bounded, within `budget` characters."""
    shown: list[str] = []
    used = 0
    for item in items:
        text = user_text(f"{item.name} {item.version}" if item.version else item.name, MAX_ITEM)
        size = visible_length(text) + 2
        if used + size > budget:
            break
        shown.append(text)
        used += size
    more = len(items) - len(shown)
    if more > 0:
        return ", ".join([*shown, and_more(more, truncated=truncated)])
    return ", ".join(shown) + (" " + _("and more") if truncated else "")


def _online_lines(status: ServerStatus) -> list[str]:
    """The lines of an online card between the address and the time of the check."""
    lines: list[str] = []
    edition = EDITION_NAMES.get(status.edition) or _("unknown")
    lines.append(_("Edition: {edition}").format(edition=edition))
    motd = neutralise(status.motd.clean).strip() if status.motd is not None else ""
    if motd:
        lines.append(_("MOTD: <i>{motd}</i>").format(motd=user_text(motd, MAX_MOTD)))
    if status.version is not None:
        lines.append(_("Version: {version}").format(version=user_text(status.version.name, MAX_VERSION)))
    if (software := software_line(status)) is not None:
        lines.append(_("Software: {software}").format(software=software))
    lines.append(_("Latency: {latency}").format(latency=latency_badge(status.latency_ms)))
    if status.players is not None:
        online, most = status.players.online, status.players.max
        if most > 0:
            lines.append(
                _("Players: {online}/{max} ({percent}% full)").format(
                    online=number(online), max=number(most), percent=number(online * 100 / most)
                )
            )
        else:
            lines.append(_("Players: {online}/{max}").format(online=number(online), max=number(most)))
    return lines


def status_card(
    status: ServerStatus, *, stored_at: datetime | None = None, now: datetime | None = None
) -> str:
    """The status card; with `stored_at`, a note that this is an older, stored answer and its age."""
    now = now or datetime.now(UTC)
    address = f"<code>{user_text(status.address, MAX_ADDRESS)}</code>"
    lines: list[str] = []
    if status.online:
        lines.append(_("🟢 <b>Online</b> · {address}").format(address=address))
    else:
        lines.append(_("🔴 <b>Offline</b> · {address}").format(address=address))
    if status.srv is not None:
        lines.append(f"↪️ SRV: <code>{user_text(status.srv.target, MAX_ADDRESS)}:{status.srv.port}</code>")
    if status.online:
        lines.extend(_online_lines(status))
    elif status.placeholder is not None:
        lines.append(offline_sentence(status.error))
        host = user_text(status.placeholder.host, MAX_SOFTWARE_NAME)
        text = user_text(neutralise(status.placeholder.text).strip(), MAX_PLACEHOLDER)
        if text:
            lines.append(_("Placeholder ({host}): <i>{text}</i>").format(host=host, text=text))
        else:
            lines.append(_("Placeholder: {host}").format(host=host))
        lines.append(_(PLACEHOLDER_ADVICE))
    else:
        lines.append(offline_sentence(status.error))
        lines.append(_(OFFLINE_ADVICE))
    lines.append(checked_line(status.retrieved_at))
    if stored_at is not None:
        lines.extend(("", stale_note(stored_at, now)))
    # every part is bounded (address, SRV target, MOTD, version), so the card is well within MAX_MESSAGE
    return "\n".join(lines)


def checked_line(retrieved_at: datetime) -> str:
    return _("Checked: {time}").format(time=format_time(retrieved_at))


def players_card(
    players: PlayerList, *, stored_at: datetime | None = None, now: datetime | None = None
) -> str:
    """Names sorted case-insensitively, '...and N more' when they do not all fit or are unknown."""
    now = now or datetime.now(UTC)
    address = f"<code>{user_text(players.address, MAX_ADDRESS)}</code>"
    if not players.online:
        placeholder = players.error is not None and players.error.code is ErrorCode.PLACEHOLDER
        head = _("🔴 <b>Offline</b> · {address}").format(address=address)
        advice = _(PLACEHOLDER_ADVICE if placeholder else OFFLINE_ADVICE)
        lines = [head, offline_sentence(players.error), advice, checked_line(players.retrieved_at)]
        if stored_at:
            lines.extend(("", stale_note(stored_at, now)))
        return "\n".join(lines)
    counts = players.players
    online = counts.online if counts else len(players.names)
    if counts:
        header = _("👥 <b>Players on</b> {address}: {online}/{max}").format(
            address=address, online=number(online), max=number(counts.max)
        )
    else:
        header = _("👥 <b>Players on</b> {address}: {online}").format(address=address, online=number(online))
    footer: list[str] = []
    if players.source == "sample" and players.names:
        footer.append(
            _("<i>The server shares only a sample of its players, so this list may be incomplete.</i>")
        )
    footer.append(checked_line(players.retrieved_at))
    if stored_at is not None:
        footer.extend(("", stale_note(stored_at, now)))
    names = sorted(players.names, key=lambda n: (n.casefold(), n))
    if not names:
        nobody = (
            _("Nobody is online right now.") if online == 0 else _("The server does not share player names.")
        )
        return "\n".join([header, nobody, "", *footer])
    footer_text = "\n".join(footer)
    # counted as Telegram counts (UTF-16 units of the visible text), with room for "...and N more"
    budget = MAX_MESSAGE - visible_length(header) - visible_length(footer_text) - 80
    shown: list[str] = []
    used = 0
    for name in names:
        line = f"• {user_text(name, MAX_NAME)}"
        size = visible_length(line) + 1
        if used + size > budget:
            break
        shown.append(line)
        used += size
    more = max(online, len(names)) - len(shown)
    body = shown + ([and_more(more)] if more > 0 else [])
    return "\n".join([header, *body, "", footer_text])


def players_from_status(status: ServerStatus) -> PlayerList:
    """A players card's data from a stored ServerStatus (its sample), for the fallback reply."""
    sample = status.players.sample if status.players else []
    return PlayerList(
        address=status.address,
        online=status.online,
        players=None
        if status.players is None
        else PlayerCount(online=status.players.online, max=status.players.max),
        names=[p.name for p in sample],
        source="sample" if sample else "none",
        retrieved_at=status.retrieved_at,
        error=status.error,
    )


def unavailable(server: ServerRef) -> str:
    return problem(Problem.UNAVAILABLE, address=server.address)


def start_text(first_name: str | None, bot_username: str) -> str:
    if first_name:
        hello = _(
            "👋 Hi {name}! I check Minecraft servers for you: whether they are up, who is playing and how "
            "fast they answer."
        ).format(name=user_text(first_name, MAX_NAME))
    else:
        hello = _(
            "👋 Hi! I check Minecraft servers for you: whether they are up, who is playing and how fast "
            "they answer."
        )
    return hello + "\n\n" + help_text(bot_username)


def help_text(bot_username: str) -> str:
    return _(
        "<b>Commands</b>\n"
        "/status <code>host[:port]</code> — is the server online? version, MOTD, latency, players\n"
        "/players <code>host[:port]</code> — who is playing\n"
        "/status or /players alone — the chat's default server, else the last server you asked about\n"
        "/watch <code>host[:port]</code> — tell this chat when the server goes down or comes back "
        "(add <code>players</code> for joins and leaves)\n"
        "/unwatch <code>host[:port]</code> — stop watching it\n"
        "/watches — the servers this chat watches\n"
        "/history <code>host[:port]</code> — a watched server's uptime and players as a chart "
        "(add <code>7d</code> or <code>30d</code>)\n"
        "/servers — this chat's servers at a glance, each with a button for its card\n"
        "/live <code>host[:port]</code> — a status message that keeps itself current "
        "(<code>/live stop</code> ends it)\n"
        "/settings — the chat's language and default server\n"
        "/language — choose the language\n"
        "/about — what this bot is\n"
        "/help — this message\n\n"
        "Java and Bedrock servers both work; add <code>java</code> or <code>bedrock</code> after the "
        "address to choose. The buttons under each answer refresh it in place. In any chat, type "
        "<code>@{bot} host</code> to share a server's card."
    ).format(bot=user_text(bot_username, MAX_NAME))


def about_text(server: ServerRef | None = None, status: ServerStatus | None = None) -> str:
    """What the bot is; with `server`, the card's server, and with its last `status`, what it runs
    (software, then the mod and plugin names, each list bounded)."""
    lines = [
        _(
            "<b>mcstatbot</b> checks Minecraft Java and Bedrock servers: online or not, version, MOTD, "
            "latency and players. Answers are cached for up to a minute, so a refresh may show the same time."
        ),
        _("It keeps, for 7 days, the last server each chat asked about and the last answer for each server."),
        _("A chat's language and default server (/settings) are kept until they are changed."),
    ]
    if server is not None:
        address = f"<code>{user_text(server.address, MAX_ADDRESS)}</code>"
        lines.append("\n" + _("Server on this card: {address}").format(address=address))
    if status is not None and status.online:
        if (name := software_name(status)) is not None:
            game = status.software.minecraft_version if status.software is not None else None
            same = game is None or game == (status.software.version if status.software else None)
            if same:
                lines.append(_("Software: {software}").format(software=name))
            else:
                lines.append(
                    _("Software: {software} (Minecraft {version})").format(
                        software=name, version=user_text(game, MAX_SOFTWARE_VERSION)
                    )
                )
        if status.mods:
            count = _mods(len(status.mods), status.mods_truncated)
            mods = item_list(status.mods, truncated=status.mods_truncated)
            lines.append(_("Mods ({count}): {items}").format(count=count, items=mods))
        if status.plugins:
            count = _plugins(len(status.plugins), status.plugins_truncated)
            plugins = item_list(status.plugins, truncated=status.plugins_truncated)
            lines.append(_("Plugins ({count}): {items}").format(count=count, items=plugins))
    # bounded: the address (MAX_ADDRESS), the software (its name and version) and two lists of
    # MAX_ITEM_LIST each keep the text well within MAX_MESSAGE
    return "\n".join(lines)


# ---------------------------------------------------------------------- buttons, menus, settings
BUTTON_LABELS = {
    "s": N_("Status"),
    "p": N_("Players"),
    "a": N_("About"),
    "h": N_("📈 History"),
    "w": N_("👀 Watch it"),
}
"""The card's buttons by action code (buttons.Action)."""
COMMAND_DESCRIPTIONS = (
    ("status", N_("Is a Minecraft server online? /status host[:port]")),
    ("players", N_("Who is playing? /players host[:port]")),
    ("watch", N_("Tell this chat when a server goes down or comes back: /watch host[:port] [players]")),
    ("unwatch", N_("Stop watching a server: /unwatch host[:port]")),
    ("watches", N_("The servers this chat watches")),
    ("history", N_("A server's uptime and players over time, as a chart: /history host[:port] [24h|7d|30d]")),
    ("live", N_("A status message that keeps itself current: /live host[:port], /live stop")),
    ("servers", N_("This chat's servers at a glance: the watched and the recently asked")),
    ("settings", N_("This chat's language and default server")),
    ("language", N_("Choose the language")),
    ("help", N_("How to use this bot")),
    ("about", N_("What this bot is")),
    ("start", N_("Say hello")),
)
"""The command menu (setMyCommands), in the order shown; the descriptions in each language."""


def button_label(action: str) -> str:
    return _(BUTTON_LABELS[action])


def commands() -> list[tuple[str, str]]:
    """The command menu in the current language: (command, description)."""
    return [(name, _(description)) for name, description in COMMAND_DESCRIPTIONS]


def language_prompt() -> str:
    return _("🌐 Choose the language I answer this chat in. Now: <b>{language}</b>.").format(
        language=i18n.LANGUAGE_NAMES[i18n.current()]
    )


def language_set() -> str:
    return _("✅ I will answer this chat in <b>{language}</b>.").format(
        language=i18n.LANGUAGE_NAMES[i18n.current()]
    )


def admins_only() -> str:
    return _("🔒 Only the group's administrators can change its settings.")


def settings_text(default_server: ServerRef | None, *, chosen_language: bool) -> str:
    """What /settings shows: the chat's language (chosen, or from the user's Telegram app) and its default
    server, and how to change them."""
    language = i18n.LANGUAGE_NAMES[i18n.current()]
    if chosen_language:
        language_line = _("Language: <b>{language}</b>").format(language=language)
    else:
        language_line = _("Language: <b>{language}</b> (from your Telegram app)").format(language=language)
    if default_server is not None:
        address = f"<code>{user_text(default_server.address, MAX_ADDRESS)}</code>"
        server_line = _("Default server: {address}").format(address=address)
    else:
        server_line = _("Default server: none (/status alone uses the last server asked about)")
    how = _(
        "Change the default server with <code>/settings server host[:port]</code>, remove it with "
        "<code>/settings server off</code>."
    )
    return "\n".join([_("⚙️ <b>Settings of this chat</b>"), language_line, server_line, "", how])


def default_server_set(server: ServerRef) -> str:
    address = f"<code>{user_text(server.address, MAX_ADDRESS)}</code>"
    return _("✅ Default server: {address}. /status and /players alone now check it.").format(address=address)


def default_server_cleared() -> str:
    return _("✅ No default server: /status and /players alone check the last server asked about.")


def settings_usage() -> str:
    return _(
        "Use <code>/settings</code>, <code>/settings server host[:port]</code> or "
        "<code>/settings server off</code>."
    )


def settings_language_button() -> str:
    return _("🌐 Language")


def settings_clear_button() -> str:
    return _("Remove the default server")


# ---------------------------------------------------------------------- refresh notice, inline mode
def up_to_date(age_seconds: float, next_check_seconds: float | None) -> str:
    """The callback answer when a refresh would change nothing (plain text, within 200 characters):
    `✅ Up to date: checked 20 seconds ago, next check in 40 seconds.`"""
    age = ago(age_seconds)
    if next_check_seconds is None or next_check_seconds <= 0:
        text = _("✅ Up to date: checked {age}.").format(age=age)
    else:
        text = _("✅ Up to date: checked {age}, next check {next}.").format(
            age=age, next=i18n.later(next_check_seconds)
        )
    return plain(text)


def inline_help_title() -> str:
    return _("Type a server address")


def inline_help_description() -> str:
    return _("For example: play.example.com or play.example.com:25565")


def inline_help_text(bot_username: str) -> str:
    return _(
        "💡 To share a Minecraft server's status, type <code>@{bot} host</code> or "
        "<code>@{bot} host:port</code> in any chat and choose the card."
    ).format(bot=user_text(bot_username, MAX_NAME))


def inline_invalid_title() -> str:
    return _("Not a server address")


def inline_status_title(status: ServerStatus) -> str:
    """The result's title: `🟢 play.example.com` (plain text)."""
    return ("🟢 " if status.online else "🔴 ") + _clip(neutralise(status.address), MAX_NAME)


def inline_status_description(status: ServerStatus) -> str:
    if not status.online:
        return _("Offline")
    if status.players is None:
        return _("Online")
    players = status.players
    return ngettext("Online · {online}/{max} player", "Online · {online}/{max} players", players.max).format(
        online=number(players.online), max=number(players.max)
    )
