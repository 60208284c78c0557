"""Summaries of repeated measurements: the median with its spread (min-max and the interquartile range)."""

from __future__ import annotations

import statistics
from typing import Any


def percentile(values: list[float], pct: float) -> float:
    """The `pct` percentile (0-100) by linear interpolation between closest ranks."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(values: list[float]) -> dict[str, Any]:
    """`{"median", "min", "max", "q1", "q3", "runs": [...]}` of the runs of one figure."""
    if not values:
        return {"median": None, "min": None, "max": None, "q1": None, "q3": None, "runs": []}
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "q1": percentile(values, 25),
        "q3": percentile(values, 75),
        "runs": list(values),
    }


def summarize_runs(runs: list[dict[str, float]]) -> dict[str, dict[str, Any]]:
    """Per key, the summary of that key across `runs` (keys missing from a run are left out of it)."""
    keys: list[str] = []
    for run in runs:
        keys.extend(key for key in run if key not in keys)
    return {key: summarize([run[key] for run in runs if key in run]) for key in keys}
