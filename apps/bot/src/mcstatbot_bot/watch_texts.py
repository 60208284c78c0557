"""The texts of watching: /watch, /unwatch, /watches, /live and the watcher's alerts and live cards, in
Telegram's HTML and in the current language (`i18n`; the watcher picks each chat's before rendering).

Plain functions returning HTML; everything from a user or a server goes through `formatting.user_text`,
numbers, times and durations through `i18n.number`, `i18n.moment` and `i18n.duration`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mcstatbot_common.models import ErrorCode

from mcstatbot_bot.formatting import (
    MAX_ADDRESS,
    MAX_ECHO,
    MAX_MOTD,
    MAX_NAME,
    MAX_VERSION,
    OFFLINE_REASONS,
    neutralise,
    offline_sentence,
    user_text,
)
from mcstatbot_bot.i18n import _, duration, moment, ngettext, number

if TYPE_CHECKING:
    from datetime import datetime

    from mcstatbot_common.models import ServerStatus

MAX_NAMES_IN_ALERT = 30
MAX_NAMES_ON_CARD = 12


def _addr(address: str, limit: int = MAX_ECHO) -> str:
    return f"<code>{user_text(address, limit)}</code>"


def watch_usage() -> str:
    return _(
        "❓ Which server? Send <code>/watch host[:port]</code> to hear when it goes down or comes back, "
        "or <code>/watch host[:port] players</code> to hear who joins and leaves too."
    )


def unwatch_usage() -> str:
    return _("❓ Which server? Send <code>/unwatch host[:port]</code> (<code>/watches</code> lists them).")


def watch_added(address: str, *, players: bool, online: bool | None) -> str:
    parts = [
        _("👀 Watching {address}: I will say here when it goes down and when it is back.").format(
            address=_addr(address)
        )
    ]
    if players:
        parts.append(_("I will also tell who joins and leaves."))
    if online is True:
        parts.append(_("It is online now."))
    elif online is False:
        parts.append(_("It is offline now; I will say when it comes up."))
    return " ".join(parts)


def watch_changed(address: str, *, players: bool) -> str:
    if players:
        text = _("👀 Still watching {address}; I will now also tell who joins and leaves.")
    else:
        text = _("👀 Still watching {address}; I will no longer tell who joins and leaves.")
    return text.format(address=_addr(address))


def watch_unchanged(address: str) -> str:
    return _("👀 This chat already watches {address}.").format(address=_addr(address))


def watch_limit(limit: int) -> str:
    return ngettext(
        "✋ This chat watches {limit} server already, the most it may. "
        "Send <code>/unwatch host</code> for it first (<code>/watches</code> lists it).",
        "✋ This chat watches {limit} servers already, the most it may. "
        "Send <code>/unwatch host</code> for one of them first (<code>/watches</code> lists them).",
        limit,
    ).format(limit=number(limit))


def admins_only() -> str:
    return _("🔒 In a group, only its administrators may change what the bot watches.")


def unwatched(address: str) -> str:
    return _("🙈 No longer watching {address}.").format(address=_addr(address))


def not_watched(address: str) -> str:
    return _("🤷 This chat does not watch {address}. <code>/watches</code> lists what it watches.").format(
        address=_addr(address)
    )


def no_watches() -> str:
    return _("This chat watches no server. Send <code>/watch host[:port]</code> to start.")


def watch_line(address: str, *, players: bool, state: str | None, since: datetime | None) -> str:
    if state == "up":
        icon = _("🟢 online since {time}") if since is not None else _("🟢 online")
    elif state == "down":
        icon = _("🔴 down since {time}") if since is not None else _("🔴 down")
    else:
        icon = _("⚪ not checked yet")
    icon = icon.format(time=moment(since)) if since is not None else icon
    joins = " · " + _("joins and leaves") if players else ""
    return f"• {_addr(address)}: {icon}{joins}"


def watches_list(lines: list[str], limit: int) -> str:
    head = ngettext(
        "👀 This chat watches {count} of at most {limit} server:",
        "👀 This chat watches {count} of at most {limit} servers:",
        limit,
    ).format(count=number(len(lines)), limit=number(limit))
    return head + "\n" + "\n".join(lines)


def failure_reason(code: str | None) -> str:
    """What failed, in a few words, from the query service's error code."""
    if code is None:
        return _("it answered that it is offline")
    try:
        return _(OFFLINE_REASONS[ErrorCode(code)])
    except (ValueError, KeyError):
        return user_text(code)


def _flapped(changes: int) -> str:
    if changes <= 1:
        return ""
    text = ngettext(
        "It changed state {count} time since the last report (flapping).",
        "It changed state {count} times since the last report (flapping).",
        changes,
    ).format(count=number(changes))
    return f"\n<i>{text}</i>"


def down_alert(address: str, *, reason: str | None, failures: int, since: datetime, changes: int) -> str:
    head = _("🔴 {address} is <b>down</b>: {reason}.").format(
        address=_addr(address), reason=failure_reason(reason)
    )
    count = ngettext(
        "{count} failed check in a row, the first at {time}.",
        "{count} failed checks in a row, the first at {time}.",
        failures,
    ).format(count=number(failures), time=moment(since))
    return f"{head}\n{count}{_flapped(changes)}"


def up_alert(address: str, *, down_seconds: float | None, changes: int) -> str:
    if down_seconds is None:
        text = _("🟢 {address} is <b>back up</b>.").format(address=_addr(address))
    else:
        text = _("🟢 {address} is <b>back up</b> after {duration} down.").format(
            address=_addr(address), duration=duration(down_seconds)
        )
    return text + _flapped(changes)


def _names(names: list[str]) -> str:
    shown = ", ".join(user_text(name, MAX_NAME) for name in names[:MAX_NAMES_IN_ALERT])
    more = len(names) - MAX_NAMES_IN_ALERT
    if more <= 0:
        return shown
    return ngettext("{names} and {count} more", "{names} and {count} more", more).format(
        names=shown, count=number(more)
    )


def players_alert(address: str, joined: list[str], left: list[str], *, partial: bool) -> str:
    parts = []
    if joined:
        parts.append(ngettext("{names} joined", "{names} joined", len(joined)).format(names=_names(joined)))
    if left:
        parts.append(ngettext("{names} left", "{names} left", len(left)).format(names=_names(left)))
    note = ""
    if partial:
        note = "\n<i>{}</i>".format(
            _("The server shows only part of its player list, so some may be missing.")
        )
    return f"👥 {_addr(address)}: " + " · ".join(parts) + note


def live_usage() -> str:
    return _(
        "❓ Which server? Send <code>/live host[:port]</code> for a status message that keeps itself "
        "current, or <code>/live stop</code> to stop this chat's live messages."
    )


def live_stopped(count: int) -> str:
    if count == 0:
        return _("This chat has no live status message.")
    return ngettext(
        "⏹ Stopped {count} live status message.", "⏹ Stopped {count} live status messages.", count
    ).format(count=number(count))


def live_card(status: ServerStatus, interval: float) -> str:
    """A live status card: only what changes when the server changes (no latency, no check time), so
    that an unchanged server needs no edit."""
    address = _addr(status.address, MAX_ADDRESS)
    placeholder = status.error is not None and status.error.code == ErrorCode.PLACEHOLDER
    if status.online and not placeholder:
        lines = [_("🟢 <b>Online</b> · {address}").format(address=address)]
        motd = neutralise(status.motd.clean).strip() if status.motd is not None else ""
        if motd:
            lines.append(_("MOTD: <i>{motd}</i>").format(motd=user_text(motd, MAX_MOTD)))
        if status.version is not None:
            lines.append(_("Version: {version}").format(version=user_text(status.version.name, MAX_VERSION)))
        if status.players is not None:
            count = {"online": number(status.players.online), "max": number(status.players.max)}
            names = [p.name for p in status.players.sample or []][:MAX_NAMES_ON_CARD]
            if names:
                who = ", ".join(user_text(n, MAX_NAME) for n in names)
                lines.append(_("Players: {online}/{max}: {names}").format(names=who, **count))
            else:
                lines.append(_("Players: {online}/{max}").format(**count))
    else:
        lines = [_("🔴 <b>Offline</b> · {address}").format(address=address), offline_sentence(status.error)]
    live = _("Live: refreshed every {interval} while it changes.").format(interval=duration(interval))
    lines.append(f"<i>{live}</i>")
    return "\n".join(lines)
