"""The texts of watching: /watch, /unwatch, /watches and the watcher's alerts, in Telegram's HTML.

Plain functions returning HTML; everything from a user or a server goes through `formatting.user_text`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mcstatbot_common.models import ErrorCode

from mcstatbot_bot import i18n
from mcstatbot_bot.formatting import (
    MAX_ADDRESS,
    MAX_ECHO,
    MAX_MOTD,
    MAX_NAME,
    MAX_VERSION,
    OFFLINE_REASONS,
    format_time,
    neutralise,
    offline_sentence,
    user_text,
)

if TYPE_CHECKING:
    from datetime import datetime

    from mcstatbot_common.models import ServerStatus

MAX_NAMES_IN_ALERT = 30
MAX_NAMES_ON_CARD = 12


def _addr(address: str) -> str:
    return f"<code>{user_text(address, MAX_ECHO)}</code>"


def watch_usage() -> str:
    return (
        "❓ Which server? Send <code>/watch host[:port]</code> to hear when it goes down or comes back, "
        "or <code>/watch host[:port] players</code> to hear who joins and leaves too."
    )


def unwatch_usage() -> str:
    return "❓ Which server? Send <code>/unwatch host[:port]</code> (<code>/watches</code> lists them)."


def watch_added(address: str, *, players: bool, online: bool | None) -> str:
    now = {True: " It is online now.", False: " It is offline now; I will say when it comes up."}
    extra = " I will also tell who joins and leaves." if players else ""
    return f"👀 Watching {_addr(address)}: I will say here when it goes down and when it is back.{extra}" + (
        now.get(online, "") if online is not None else ""
    )


def watch_changed(address: str, *, players: bool) -> str:
    what = "now also tell" if players else "no longer tell"
    return f"👀 Still watching {_addr(address)}; I will {what} who joins and leaves."


def watch_unchanged(address: str) -> str:
    return f"👀 This chat already watches {_addr(address)}."


def watch_limit(limit: int) -> str:
    return (
        f"✋ This chat watches {limit} servers already, the most it may. "
        "Send <code>/unwatch host</code> for one of them first (<code>/watches</code> lists them)."
    )


def admins_only() -> str:
    return "🔒 In a group, only its administrators may change what the bot watches."


def unwatched(address: str) -> str:
    return f"🙈 No longer watching {_addr(address)}."


def not_watched(address: str) -> str:
    return f"🤷 This chat does not watch {_addr(address)}. <code>/watches</code> lists what it watches."


def no_watches() -> str:
    return "This chat watches no server. Send <code>/watch host[:port]</code> to start."


def watch_line(address: str, *, players: bool, state: str | None, since: datetime | None) -> str:
    icon = {"up": "🟢 online", "down": "🔴 down"}.get(state or "", "⚪ not checked yet")
    when = f" since {format_time(since)}" if since is not None and state in {"up", "down"} else ""
    joins = " · joins and leaves" if players else ""
    return f"• {_addr(address)}: {icon}{when}{joins}"


def watches_list(lines: list[str], limit: int) -> str:
    return f"👀 This chat watches {len(lines)} of at most {limit} servers:\n" + "\n".join(lines)


def failure_reason(code: str | None) -> str:
    """What failed, in a few words, from the query service's error code."""
    if code is None:
        return "it answered that it is offline"
    try:
        return OFFLINE_REASONS[ErrorCode(code)]
    except ValueError:
        return user_text(code)


def _flapped(changes: int) -> str:
    return (
        f"\n<i>It changed state {changes} times since the last report (flapping).</i>" if changes > 1 else ""
    )


def down_alert(address: str, *, reason: str | None, failures: int, since: datetime, changes: int) -> str:
    return (
        f"🔴 {_addr(address)} is <b>down</b>: {failure_reason(reason)}.\n"
        f"{failures} failed check{'' if failures == 1 else 's'} in a row, the first at {format_time(since)}."
        f"{_flapped(changes)}"
    )


def up_alert(address: str, *, down_seconds: float | None, changes: int) -> str:
    after = f" after {i18n.duration(down_seconds)} down" if down_seconds is not None else ""
    return f"🟢 {_addr(address)} is <b>back up</b>{after}.{_flapped(changes)}"


def _names(names: list[str]) -> str:
    shown = ", ".join(user_text(name, MAX_NAME) for name in names[:MAX_NAMES_IN_ALERT])
    more = len(names) - MAX_NAMES_IN_ALERT
    return shown + (f" and {more} more" if more > 0 else "")


def players_alert(address: str, joined: list[str], left: list[str], *, partial: bool) -> str:
    parts = []
    if joined:
        parts.append(f"{_names(joined)} joined")
    if left:
        parts.append(f"{_names(left)} left")
    note = (
        "\n<i>The server shows only part of its player list, so some may be missing.</i>" if partial else ""
    )
    return f"👥 {_addr(address)}: " + " · ".join(parts) + note


def live_usage() -> str:
    return (
        "❓ Which server? Send <code>/live host[:port]</code> for a status message that keeps itself "
        "current, or <code>/live stop</code> to stop this chat's live messages."
    )


def live_stopped(count: int) -> str:
    if count == 0:
        return "This chat has no live status message."
    return f"⏹ Stopped {count} live status message{'' if count == 1 else 's'}."


def live_card(status: ServerStatus, interval: float) -> str:
    """A live status card: only what changes when the server changes (no latency, no check time), so
    that an unchanged server needs no edit."""
    address = f"<code>{user_text(status.address, MAX_ADDRESS)}</code>"
    placeholder = status.error is not None and status.error.code == ErrorCode.PLACEHOLDER
    if status.online and not placeholder:
        lines = [f"🟢 <b>Online</b> · {address}"]
        motd = neutralise(status.motd.clean).strip() if status.motd is not None else ""
        if motd:
            lines.append(f"MOTD: <i>{user_text(motd, MAX_MOTD)}</i>")
        if status.version is not None:
            lines.append(f"Version: {user_text(status.version.name, MAX_VERSION)}")
        if status.players is not None:
            names = [p.name for p in status.players.sample or []][:MAX_NAMES_ON_CARD]
            who = f": {', '.join(user_text(n, MAX_NAME) for n in names)}" if names else ""
            lines.append(f"Players: {status.players.online}/{status.players.max}{who}")
    else:
        lines = [f"🔴 <b>Offline</b> · {address}", offline_sentence(status.error)]
    lines.append(f"<i>Live: refreshed every {i18n.duration(interval)} while it changes.</i>")
    return "\n".join(lines)
