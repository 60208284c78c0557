"""History of watched servers: one sample per check (the watcher records it), read back for `/history`.

A sample is what one check saw (`state.base.Sample`: time, online, players online and max, latency). The
watcher records one per watched server per check, however many chats watch it (`record`); the state store
keeps them `HISTORY_DAYS` (memory and SQLite delete older ones, DynamoDB expires them by its TTL, see
docs/bot-service.md). `/history` reads a window of them (`Window`) and sums it up (`summarise`) for the
caption; the picture is drawn in a worker process (`history_chart`, `history_worker`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from mcstatbot_common.models import ErrorCode

from mcstatbot_bot.state.base import Sample

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mcstatbot_common.models import ServerStatus

    from mcstatbot_bot.state import ResilientStore, ServerRef


class Window(StrEnum):
    """The windows `/history` draws, as typed after the address."""

    DAY = "24h"
    WEEK = "7d"
    MONTH = "30d"

    @property
    def seconds(self) -> int:
        return {Window.DAY: 86400, Window.WEEK: 7 * 86400, Window.MONTH: 30 * 86400}[self]


def parse_window(text: str | None) -> Window | None:
    """`24h`, `7d`, `30d` (also `1d`, `week`, `month`, any case); None for anything else. No text: 24h."""
    if text is None:
        return Window.DAY
    aliases = {"24h": Window.DAY, "1d": Window.DAY, "day": Window.DAY, "7d": Window.WEEK, "week": Window.WEEK}
    aliases |= {"30d": Window.MONTH, "month": Window.MONTH, "1w": Window.WEEK}
    return aliases.get(text.strip().lower())


def sample_of(status: ServerStatus, at: float) -> Sample:
    """The sample a check's answer makes; a host's placeholder ("● Offline") counts as offline."""
    placeholder = status.error is not None and status.error.code is ErrorCode.PLACEHOLDER
    if not status.online or placeholder:
        return Sample(int(at), online=False)
    players = status.players
    return Sample(
        int(at),
        online=True,
        players=players.online if players is not None else None,
        max_players=players.max if players is not None else None,
        latency_ms=round(status.latency_ms, 1) if status.latency_ms is not None else None,
    )


async def record(
    store: ResilientStore, server: ServerRef, status: ServerStatus, at: float, days: int
) -> None:
    """Record the sample of one check of `server` (the watcher calls this once per check)."""
    await store.add_sample(server, sample_of(status, at), timedelta(days=days))


@dataclass(frozen=True, slots=True)
class Summary:
    """A window's figures for the caption."""

    checks: int
    online: int
    peak_players: int | None
    mean_latency_ms: float | None

    @property
    def uptime(self) -> float | None:
        """Online checks over all checks, 0..1; None without a check."""
        return self.online / self.checks if self.checks else None


def summarise(samples: Sequence[Sample]) -> Summary:
    online = [sample for sample in samples if sample.online]
    players = [sample.players for sample in online if sample.players is not None]
    latencies = [sample.latency_ms for sample in online if sample.latency_ms is not None]
    return Summary(
        checks=len(samples),
        online=len(online),
        peak_players=max(players) if players else None,
        mean_latency_ms=sum(latencies) / len(latencies) if latencies else None,
    )
