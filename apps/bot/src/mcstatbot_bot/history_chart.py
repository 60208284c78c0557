"""The /history picture: players online (with max), offline periods shaded, latency, as a PNG.

`render(request)` runs in the chart worker process (`history_worker`), never in the bot's own: it is the
only place matplotlib (Agg backend) and numpy are imported, inside the function, so importing this module
costs nothing. The request carries every text already translated and the samples as plain tuples.

However many samples a window holds (30 days of one-minute checks: 43,200), they are aggregated into at
most `COLUMNS` columns of equal time (about one per pixel column of the plot): per column the fewest and
most players, the largest max, the mean and largest latency, and whether any check in it was offline. A
column without a check is a gap (the watcher was not checking), not an offline period.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

WIDTH_PX, HEIGHT_PX, DPI = 1280, 960, 200
"""Telegram shows photos up to 1280 px wide: drawn at that size, nothing is scaled down on a phone."""
COLUMNS = 600

SampleRow = tuple[int, bool, int | None, int | None, float | None]
"""(epoch seconds, online, players, max players, latency ms): a `state.base.Sample` as a tuple."""


@dataclass(frozen=True, slots=True)
class ChartRequest:
    samples: Sequence[SampleRow]
    since: int
    until: int
    locale: str  # Babel's name for the chat's language (`en`, `pt_BR`, ...)
    title: str
    players_label: str
    max_label: str
    offline_label: str
    latency_label: str
    time_label: str
    empty_label: str


def _columns(request: ChartRequest) -> dict[str, Any]:
    """Per column: players min/max, max slots, latency mean/max (NaN where unknown), offline and
    checked flags."""
    import numpy as np  # noqa: PLC0415 - only in the worker process

    nan = float("nan")
    rows = np.array(
        [
            (at, float(online), nan if p is None else p, nan if m is None else m, nan if lat is None else lat)
            for at, online, p, m, lat in request.samples
        ],
        dtype=float,
    ).reshape(-1, 5)
    span = max(request.until - request.since, 1)
    count = COLUMNS
    index = np.clip(((rows[:, 0] - request.since) / span * count).astype(int), 0, count - 1)
    online = rows[:, 1] == 1.0

    def reduce(values: Any, how: Any, fill: float) -> Any:
        out = np.full(count, fill)
        how.at(out, index, values)
        return out

    checked = np.bincount(index, minlength=count) > 0
    offline = np.bincount(index, weights=~online, minlength=count) > 0
    players = np.where(online, rows[:, 2], np.nan)
    latency = np.where(online, rows[:, 4], np.nan)
    with np.errstate(invalid="ignore"):
        low = reduce(np.nan_to_num(players, nan=np.inf), np.minimum, np.inf)
        high = reduce(np.nan_to_num(players, nan=-np.inf), np.maximum, -np.inf)
        most = reduce(np.nan_to_num(np.where(online, rows[:, 3], np.nan), nan=-np.inf), np.maximum, -np.inf)
        lat_high = reduce(np.nan_to_num(latency, nan=-np.inf), np.maximum, -np.inf)
        lat_sum = np.bincount(index, weights=np.nan_to_num(latency, nan=0.0), minlength=count)
        lat_n = np.bincount(index, weights=~np.isnan(latency), minlength=count)
        lat_mean = np.where(lat_n > 0, lat_sum / np.maximum(lat_n, 1), np.nan)
    for values in (low, high, most, lat_high):
        values[~np.isfinite(values)] = np.nan
    edges = request.since + np.arange(count + 1) * span / count
    return {
        "edges": edges,
        "centres": (edges[:-1] + edges[1:]) / 2,
        "low": low,
        "high": high,
        "most": most,
        "lat_mean": lat_mean,
        "lat_high": lat_high,
        "checked": checked,
        "offline": offline,
    }


def _runs(flags: Any) -> list[tuple[int, int]]:
    """(first, last + 1) of each run of True in `flags`."""
    runs: list[tuple[int, int]] = []
    start = None
    for i, flag in enumerate([*flags, False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i))
            start = None
    return runs


def _top(*columns: Any, at_least: float) -> float:
    """The top of a plot: a little above the largest value of `columns` (NaN ignored), or `at_least`."""
    finite = [float(v) for column in columns for v in column if v == v]  # noqa: PLR0124 - NaN is not equal
    return max([at_least, *finite]) * 1.1


def _ticks(request: ChartRequest) -> tuple[list[float], list[str]]:
    """Tick positions (epoch seconds, on whole UTC hours or days) and their labels in the chat's
    language (Babel): hours for a day, day and month for longer windows."""
    from babel.dates import format_date, format_time  # noqa: PLC0415

    span = request.until - request.since
    day = 86400
    step = 3 * 3600 if span <= day else (day if span <= 8 * day else 5 * day)
    first = request.since - request.since % step + step
    ticks = list(range(first, request.until + 1, step))
    labels = []
    for tick in ticks:
        moment = datetime.fromtimestamp(tick, UTC)
        if step < day:
            labels.append(format_time(moment, "HH:mm", tzinfo=UTC, locale=request.locale))
        else:
            labels.append(format_date(moment, "d MMM", locale=request.locale))
    return [float(t) for t in ticks], labels


def render(request: ChartRequest) -> bytes:
    """The chart as PNG bytes."""
    import io  # noqa: PLC0415

    import matplotlib as mpl  # noqa: PLC0415 - only in the worker process

    mpl.use("Agg")
    from matplotlib.figure import Figure  # noqa: PLC0415
    from matplotlib.patches import Patch  # noqa: PLC0415

    data = _columns(request)
    figure = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI, layout="constrained")
    figure.patch.set_facecolor("white")
    players_ax, latency_ax = figure.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    figure.suptitle(request.title, fontsize=14, fontweight="bold")
    edges, centres = data["edges"], data["centres"]

    for first, last in _runs(data["offline"]):
        for ax in (players_ax, latency_ax):
            ax.axvspan(edges[first], edges[last], color="#e53935", alpha=0.25, linewidth=0)
    players_ax.fill_between(
        centres, data["low"], data["high"], step="mid", color="#1e88e5", alpha=0.35, linewidth=0
    )
    # few checks (a new watch): each one also a dot, else a lone check would be a hairline
    dots = {"marker": "o", "markersize": 4} if int(data["checked"].sum()) < 60 else {}  # noqa: PLR2004
    players_ax.step(centres, data["high"], where="mid", color="#1565c0", linewidth=1.6, **dots)
    players_ax.step(centres, data["most"], where="mid", color="#616161", linewidth=1.2, linestyle="--")
    latency_ax.plot(centres, data["lat_mean"], linestyle="none", color="#ef6c00", **dots)
    latency_ax.fill_between(
        centres, data["lat_mean"], data["lat_high"], step="mid", color="#fb8c00", alpha=0.3
    )
    latency_ax.step(centres, data["lat_mean"], where="mid", color="#ef6c00", linewidth=1.4)

    players_ax.set_ylabel(request.players_label, fontsize=12)
    latency_ax.set_ylabel(request.latency_label, fontsize=12)
    latency_ax.set_xlabel(request.time_label, fontsize=12)
    players_ax.set_ylim(0, _top(data["most"], data["high"], at_least=5))
    latency_ax.set_ylim(0, _top(data["lat_high"], at_least=50))
    if not bool(data["checked"].any()):
        players_ax.text(
            0.5,
            0.5,
            request.empty_label,
            transform=players_ax.transAxes,
            ha="center",
            va="center",
            fontsize=14,
        )
    players_ax.yaxis.get_major_locator().set_params(integer=True)
    ticks, labels = _ticks(request)
    latency_ax.set_xlim(request.since, request.until)
    latency_ax.set_xticks(ticks, labels)
    for ax in (players_ax, latency_ax):
        ax.tick_params(labelsize=11)
        ax.grid(visible=True, color="#e0e0e0", linewidth=0.8)
        ax.set_axisbelow(True)
    players_ax.legend(
        handles=[
            Patch(color="#1e88e5", alpha=0.6, label=request.players_label),
            Patch(facecolor="none", edgecolor="#616161", linestyle="--", label=request.max_label),
            Patch(color="#e53935", alpha=0.35, label=request.offline_label),
        ],
        loc="upper left",
        fontsize=10,
        framealpha=0.9,
    )
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=DPI)
    return out.getvalue()
