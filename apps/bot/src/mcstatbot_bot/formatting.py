"""Every text the bot sends, in Telegram's HTML parse mode, in one place (so it can be translated later).

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

from mcstatbot_common.models import (
    Edition,
    ErrorCode,
    NamedVersion,
    PlayerCount,
    PlayerList,
    ProbeError,
    ServerStatus,
)

if TYPE_CHECKING:
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
    SLOW_DOWN = "slow_down"
    BUTTON_EXPIRED = "button_expired"
    INTERNAL = "internal"


PROBLEM_TEXTS: dict[Problem, str] = {
    Problem.MISSING_ARGUMENT: (
        "❓ Which server? Send <code>/{command} host</code> or <code>/{command} host:port</code>, "
        "for example <code>/{command} play.example.com</code>. After that, <code>/{command}</code> "
        "alone checks the same server again."
    ),
    Problem.INVALID_ADDRESS: (
        "⚠️ <code>{address}</code> is not a server address: {detail}.\n"
        "Send it as <code>host</code> or <code>host:port</code>, e.g. <code>play.example.com:25565</code>."
    ),
    Problem.FORBIDDEN_ADDRESS: (
        "⛔ <code>{address}</code> points to a private or reserved network address, which I am not "
        "allowed to check. Use the server's public address instead."
    ),
    Problem.UNAVAILABLE: (
        "😕 The status service is temporarily unavailable, and I have no earlier answer for "
        "<code>{address}</code>. Please try again in a minute."
    ),
    Problem.SLOW_DOWN: (
        "🐢 Slow down a little: at most {limit} checks every {window} seconds per chat. "
        "I will answer again in a few seconds."
    ),
    Problem.BUTTON_EXPIRED: "⌛ This button has expired. Send <code>/status host</code> again.",
    Problem.INTERNAL: "😕 Something went wrong on my side. Please try again.",
}

OFFLINE_REASONS: dict[ErrorCode, str] = {
    ErrorCode.TIMEOUT: "it did not answer in time",
    ErrorCode.REFUSED: "the connection was refused (nothing listens on that port)",
    ErrorCode.DNS: "the host name does not resolve (check the spelling)",
    ErrorCode.UNREACHABLE: "the network path to it is unreachable",
    ErrorCode.PROTOCOL: "something answered, but not like a Minecraft server",
    ErrorCode.PLACEHOLDER: "the host shows a placeholder",
}
OFFLINE_ADVICE = (
    "Check the address and port; if they are right, the server may be down or starting. Try again later."
)
PLACEHOLDER_ADVICE = (
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

EDITION_NAMES = {Edition.JAVA: "Java", Edition.BEDROCK: "Bedrock", Edition.AUTO: "unknown"}


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


def problem(kind: Problem, **fields: object) -> str:
    """The text for `kind`; every field is neutralised, cut (`MAX_ECHO` for an address) and escaped."""
    return PROBLEM_TEXTS[kind].format(
        **{k: user_text(v, MAX_ECHO if k == "address" else MAX_DETAIL) for k, v in fields.items()}
    )


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
        return "⚪ unknown"
    colour = "🟢" if latency_ms < LATENCY_GOOD_MS else "🟡" if latency_ms < LATENCY_FAIR_MS else "🔴"
    return f"{colour} {latency_ms:.0f} ms"


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} second{'' if seconds == 1 else 's'}"


def stale_note(stored_at: datetime, now: datetime) -> str:
    age = format_age((now - stored_at).total_seconds())
    return (
        f"⚠️ <i>The status service is not answering right now. This is the last answer I have, "
        f"from {age} ago ({format_time(stored_at)}).</i>"
    )


def offline_sentence(error: ProbeError | None) -> str:
    """Why the server is offline, in one sentence."""
    if error is not None and error.code is ErrorCode.PLACEHOLDER:
        return "The server is offline (the host shows a placeholder)."
    reason = OFFLINE_REASONS.get(error.code) if error is not None else None
    return f"The server could not be reached: {reason or 'it could not be reached'}."


def _count(items: list[NamedVersion], truncated: bool, one: str) -> str:  # noqa: FBT001
    more = "+" if truncated else ""
    return f"{len(items)}{more} {one}{'' if len(items) == 1 and not truncated else 's'}"


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
        parts.append(_count(status.mods, status.mods_truncated, "mod"))
    if status.plugins:
        parts.append(_count(status.plugins, status.plugins_truncated, "plugin"))
    return " · ".join(parts) or None


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
    tail = f", …and {more}{'+' if truncated else ''} more" if more > 0 else (" and more" if truncated else "")
    return ", ".join(shown) + tail


def status_card(
    status: ServerStatus, *, stored_at: datetime | None = None, now: datetime | None = None
) -> str:
    """The status card; with `stored_at`, a note that this is an older, stored answer and its age."""
    now = now or datetime.now(UTC)
    address = f"<code>{user_text(status.address, MAX_ADDRESS)}</code>"
    lines: list[str] = []
    if status.online:
        lines.append(f"🟢 <b>Online</b> · {address}")
    else:
        lines.append(f"🔴 <b>Offline</b> · {address}")
    if status.srv is not None:
        lines.append(f"↪️ SRV: <code>{user_text(status.srv.target, MAX_ADDRESS)}:{status.srv.port}</code>")
    if status.online:
        lines.append(f"Edition: {EDITION_NAMES.get(status.edition, user_text(status.edition, 16))}")
        motd = neutralise(status.motd.clean).strip() if status.motd is not None else ""
        if motd:
            lines.append(f"MOTD: <i>{user_text(motd, MAX_MOTD)}</i>")
        if status.version is not None:
            lines.append(f"Version: {user_text(status.version.name, MAX_VERSION)}")
        if (software := software_line(status)) is not None:
            lines.append(f"Software: {software}")
        lines.append(f"Latency: {latency_badge(status.latency_ms)}")
        if status.players is not None:
            online, most = status.players.online, status.players.max
            fill = f" ({online * 100 / most:.0f}% full)" if most > 0 else ""
            lines.append(f"Players: {online}/{most}{fill}")
    elif status.placeholder is not None:
        lines.append(offline_sentence(status.error))
        host = user_text(status.placeholder.host, MAX_SOFTWARE_NAME)
        text = user_text(neutralise(status.placeholder.text).strip(), MAX_PLACEHOLDER)
        lines.append(f"Placeholder ({host}): <i>{text}</i>" if text else f"Placeholder: {host}")
        lines.append(PLACEHOLDER_ADVICE)
    else:
        lines.append(offline_sentence(status.error))
        lines.append(OFFLINE_ADVICE)
    lines.append(f"Checked: {format_time(status.retrieved_at)}")
    if stored_at is not None:
        lines.extend(("", stale_note(stored_at, now)))
    # every part is bounded (address, SRV target, MOTD, version), so the card is well within MAX_MESSAGE
    return "\n".join(lines)


def players_card(
    players: PlayerList, *, stored_at: datetime | None = None, now: datetime | None = None
) -> str:
    """Names sorted case-insensitively, '...and N more' when they do not all fit or are unknown."""
    now = now or datetime.now(UTC)
    address = f"<code>{user_text(players.address, MAX_ADDRESS)}</code>"
    if not players.online:
        placeholder = players.error is not None and players.error.code is ErrorCode.PLACEHOLDER
        head = f"🔴 <b>Offline</b> · {address}\n{offline_sentence(players.error)}"
        advice = PLACEHOLDER_ADVICE if placeholder else OFFLINE_ADVICE
        tail = f"\n{advice}\nChecked: {format_time(players.retrieved_at)}"
        return head + tail + (f"\n\n{stale_note(stored_at, now)}" if stored_at else "")
    counts = players.players
    online = counts.online if counts else len(players.names)
    header = f"👥 <b>Players on</b> {address}: {online}" + (f"/{counts.max}" if counts else "")
    footer: list[str] = []
    if players.source == "sample" and players.names:
        footer.append(
            "<i>The server shares only a sample of its players, so this list may be incomplete.</i>"
        )
    footer.append(f"Checked: {format_time(players.retrieved_at)}")
    if stored_at is not None:
        footer.extend(("", stale_note(stored_at, now)))
    names = sorted(players.names, key=lambda n: (n.casefold(), n))
    if not names:
        body = ["Nobody is online right now." if online == 0 else "The server does not share player names."]
        return "\n".join([header, *body, "", *footer])
    footer_text = "\n".join(footer)
    # counted as Telegram counts (UTF-16 units of the visible text), with room for "...and N more"
    budget = MAX_MESSAGE - visible_length(header) - visible_length(footer_text) - 60
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
    body = shown + ([f"…and {more} more"] if more > 0 else [])
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


def start_text(first_name: str | None) -> str:
    hello = f"Hi {user_text(first_name, MAX_NAME)}! " if first_name else "Hi! "
    return (
        f"👋 {hello}I check Minecraft servers for you: whether they are up, who is playing and how "
        "fast they answer.\n\n" + help_text()
    )


def help_text() -> str:
    return (
        "<b>Commands</b>\n"
        "/status <code>host[:port]</code> — is the server online? version, MOTD, latency, players\n"
        "/players <code>host[:port]</code> — who is playing\n"
        "/status or /players alone — the last server you asked about\n"
        "/about — what this bot is\n"
        "/help — this message\n\n"
        "Java and Bedrock servers both work; add <code>java</code> or <code>bedrock</code> after the "
        "address to choose. The buttons under each answer refresh it in place."
    )


def about_text(server: ServerRef | None = None, status: ServerStatus | None = None) -> str:
    """What the bot is; with `server`, the card's server, and with its last `status`, what it runs
    (software, then the mod and plugin names, each list bounded)."""
    lines = [
        (
            "<b>mcstatbot</b> checks Minecraft Java and Bedrock servers: online or not, version, MOTD, "
            "latency and players. Answers are cached for up to a minute, so a refresh may show the same time."
        ),
        "It keeps, for 7 days, the last server each chat asked about and the last answer for each server.",
    ]
    if server is not None:
        lines.append(f"\nServer on this card: <code>{user_text(server.address, MAX_ADDRESS)}</code>")
    if status is not None and status.online:
        if (name := software_name(status)) is not None:
            game = status.software.minecraft_version if status.software is not None else None
            same = game is None or game == (status.software.version if status.software else None)
            game_text = "" if same else f" (Minecraft {user_text(game, MAX_SOFTWARE_VERSION)})"
            lines.append(f"Software: {name}{game_text}")
        if status.mods:
            count = _count(status.mods, status.mods_truncated, "mod")
            lines.append(f"Mods ({count}): {item_list(status.mods, truncated=status.mods_truncated)}")
        if status.plugins:
            count = _count(status.plugins, status.plugins_truncated, "plugin")
            plugins = item_list(status.plugins, truncated=status.plugins_truncated)
            lines.append(f"Plugins ({count}): {plugins}")
    # bounded: the address (MAX_ADDRESS), the software (its name and version) and two lists of
    # MAX_ITEM_LIST each keep the text well within MAX_MESSAGE
    return "\n".join(lines)
