"""What every benchmark shares: its result shape, and the context it runs in (config, logs, observations)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bench.stats import summarize

if TYPE_CHECKING:
    from pathlib import Path

    from bench.config import BenchConfig


class BenchmarkSkippedError(Exception):
    """A benchmark could not run here (a missing tool or service); the message says why."""


@dataclass
class Figure:
    """One measured quantity over several runs."""

    label: str
    unit: str
    values: list[float]

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "unit": self.unit, **summarize(self.values)}


@dataclass
class Target:
    """A goal from the issue, reported against (never asserted)."""

    name: str
    goal: str
    measured: float | None
    unit: str
    met: bool | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "goal": self.goal,
            "measured": self.measured,
            "unit": self.unit,
            "met": self.met,
        }


@dataclass
class Chart:
    """One panel of the PNG: bars (median with min-max whiskers) of some of the figures."""

    title: str
    unit: str
    figures: list[str]


@dataclass
class BenchmarkResult:
    name: str
    title: str
    method: str
    figures: dict[str, Figure] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"

    def add(self, key: str, label: str, unit: str, values: list[float]) -> Figure:
        figure = Figure(label, unit, values)
        self.figures[key] = figure
        return figure

    def median(self, key: str) -> float | None:
        figure = self.figures.get(key)
        value = figure.as_dict()["median"] if figure else None
        return None if value is None else float(value)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status,
            "method": self.method,
            "figures": {key: figure.as_dict() for key, figure in self.figures.items()},
            "targets": [target.as_dict() for target in self.targets],
            "charts": [{"title": c.title, "unit": c.unit, "figures": c.figures} for c in self.charts],
            "notes": self.notes,
            "details": self.details,
        }


@dataclass
class BenchContext:
    config: BenchConfig
    work_dir: Path
    observations: dict[str, list[float]] = field(default_factory=dict)
    """Measurements one benchmark leaves for another (start-up times, RSS under load) by name."""

    def observe(self, name: str, value: float) -> None:
        self.observations.setdefault(name, []).append(value)

    def log_path(self, name: str) -> Path:
        return self.work_dir / f"{name}.log"
