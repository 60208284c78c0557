"""The texts of /history: the answers, the photo's caption and the chart's labels, in the current language."""

from __future__ import annotations

from typing import TYPE_CHECKING

from babel.numbers import format_percent

from mcstatbot_bot.formatting import MAX_ADDRESS, MAX_ECHO, user_text
from mcstatbot_bot.history import Window
from mcstatbot_bot.i18n import N_, _, current, ngettext, number

if TYPE_CHECKING:
    from mcstatbot_bot.history import Summary

WINDOW_NAMES = {
    Window.DAY: N_("last 24 hours"),
    Window.WEEK: N_("last 7 days"),
    Window.MONTH: N_("last 30 days"),
}


def _addr(address: str) -> str:
    return f"<code>{user_text(address, MAX_ECHO)}</code>"


def usage() -> str:
    return _(
        "❓ Which server, and how far back? Send <code>/history host[:port]</code> for the last 24 hours, "
        "or add <code>7d</code> or <code>30d</code>."
    )


def no_history(address: str) -> str:
    return _(
        "📈 No history for {address} yet: the bot records one for the servers this chat watches, at every "
        "check. Watch it, and its chart fills from now on."
    ).format(address=_addr(address))


def unavailable() -> str:
    return _("⚠️ The history cannot be read right now. Try again in a minute.")


def draw_failed() -> str:
    return _("⚠️ The chart could not be drawn right now. Try again in a minute.")


def title(address: str, window: Window) -> str:
    """The chart's title (plain text: it is drawn, not sent)."""
    return f"{address[:MAX_ADDRESS]} · {_(WINDOW_NAMES[window])}"


def caption(address: str, window: Window, summary: Summary) -> str:
    lines = [f"📈 <b>{user_text(address, MAX_ADDRESS)}</b> · {_(WINDOW_NAMES[window])}"]
    if summary.uptime is None:
        lines.append(_("No checks in this window yet"))
    else:
        lines.append(
            ngettext(
                "Uptime: {uptime} ({checks} check)", "Uptime: {uptime} ({checks} checks)", summary.checks
            ).format(
                uptime=format_percent(summary.uptime, "#,##0.0%", locale=current()),
                checks=number(summary.checks),
            )
        )
    if summary.peak_players is not None:
        lines.append(_("Most players online: {players}").format(players=number(summary.peak_players)))
    if summary.mean_latency_ms is not None:
        lines.append(
            _("Average latency: {latency} ms").format(latency=number(summary.mean_latency_ms, digits=0))
        )
    return "\n".join(lines)


def chart_labels() -> dict[str, str]:
    """The chart's labels (`ChartRequest` fields)."""
    return {
        "players_label": _("Players online"),
        "max_label": _("Max players"),
        "offline_label": _("Offline"),
        "latency_label": _("Latency, ms"),
        "time_label": _("Time (UTC)"),
        "empty_label": _("No checks in this window yet"),
    }
