"""Benchmark parameters: the full run (`make bench`) or a short one (`BENCH_QUICK=1`), each overridable."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
ALL_BENCHMARKS = (
    "cached_status",
    "uncached_status",
    "protection",
    "protection_cluster",
    "bot_throughput",
    "footprint",
    "watcher",
    "history",
)


@dataclass(frozen=True)
class BenchConfig:
    quick: bool = False
    runs: int = 3
    """How many times each measurement is repeated; every figure is the median of these runs."""
    server_cpus: str | None = "0"
    """CPUs the measured service runs on (taskset -c); None runs everything unpinned."""
    load_cpus: str | None = "1"
    """CPUs the load generators (wrk, the webhook client) and the peers run on."""
    wrk_duration_s: float = 8.0
    wrk_warmup_s: float = 2.0
    wrk_connections: int = 50
    wrk_threads: int = 1
    uncached_samples: int = 200
    protection_duration_s: float = 60.0
    protection_clients: int = 200
    protection_ttl_s: int = 5
    protection_runs: int = 3
    bot_duration_s: float = 8.0
    bot_concurrency: int = 16
    footprint_idle_s: float = 3.0
    startup_runs: int = 3
    watch_servers: int = 5000
    """Watched servers (one loopback port each) for the watcher benchmark."""
    watch_interval_s: float = 60.0
    """WATCH_INTERVAL_SECONDS of the watcher benchmark."""
    watch_intervals: int = 3
    """Intervals measured with one replica (after one interval of warm-up)."""
    watch_replica_intervals: int = 2
    """Intervals measured with two replicas (after one interval of warm-up)."""
    benchmarks: tuple[str, ...] = ALL_BENCHMARKS
    results_dir: Path = field(default=BENCH_DIR / "results")
    docs_path: Path | None = field(default=REPO_ROOT / "docs" / "benchmarks.md")
    work_dir: Path | None = None
    """Logs of the processes the benchmarks start (a temporary directory when None)."""

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("results_dir", "docs_path", "work_dir"):
            data[key] = None if data[key] is None else str(data[key])
        data["benchmarks"] = list(self.benchmarks)
        return data


QUICK = BenchConfig(
    quick=True,
    runs=2,
    wrk_duration_s=3.0,
    wrk_warmup_s=1.0,
    uncached_samples=40,
    protection_duration_s=10.0,
    protection_ttl_s=2,
    protection_runs=1,
    bot_duration_s=3.0,
    footprint_idle_s=1.0,
    startup_runs=2,
    watch_servers=834,  # the full run's 5,000 per 60 s scaled to 10 s: the same checks per second
    watch_interval_s=10.0,
)


ENV_OVERRIDES: dict[str, tuple[str, type]] = {
    "BENCH_RUNS": ("runs", int),
    "BENCH_DURATION": ("wrk_duration_s", float),
    "BENCH_BOT_DURATION": ("bot_duration_s", float),
    "BENCH_WARMUP": ("wrk_warmup_s", float),
    "BENCH_CONNECTIONS": ("wrk_connections", int),
    "BENCH_UNCACHED_SAMPLES": ("uncached_samples", int),
    "BENCH_PROTECTION_SECONDS": ("protection_duration_s", float),
    "BENCH_PROTECTION_CLIENTS": ("protection_clients", int),
    "BENCH_PROTECTION_TTL": ("protection_ttl_s", int),
    "BENCH_PROTECTION_RUNS": ("protection_runs", int),
    "BENCH_BOT_CONCURRENCY": ("bot_concurrency", int),
    "BENCH_IDLE_SECONDS": ("footprint_idle_s", float),
    "BENCH_STARTUP_RUNS": ("startup_runs", int),
    "BENCH_WATCH_SERVERS": ("watch_servers", int),
    "BENCH_WATCH_INTERVAL": ("watch_interval_s", float),
    "BENCH_WATCH_INTERVALS": ("watch_intervals", int),
    "BENCH_WATCH_REPLICA_INTERVALS": ("watch_replica_intervals", int),
}
"""Environment variables that override one parameter each (after BENCH_QUICK picks the defaults)."""


def from_environment() -> BenchConfig:
    """BENCH_QUICK=1 for a short run, then the ENV_OVERRIDES; BENCH_ONLY (comma-separated names),
    BENCH_NO_PIN=1 (no taskset), BENCH_RESULTS_DIR, BENCH_WORK_DIR (keeps the processes' logs),
    BENCH_DOCS (a path, or "none" to leave the doc alone)."""
    config = QUICK if os.environ.get("BENCH_QUICK", "") not in ("", "0", "false") else BenchConfig()
    changes: dict[str, Any] = {}
    for variable, (name, kind) in ENV_OVERRIDES.items():
        if value := os.environ.get(variable):
            try:
                changes[name] = kind(float(value)) if kind is int else kind(value)
            except ValueError:
                raise SystemExit(f"{variable}={value!r} is not a number") from None
    if only := os.environ.get("BENCH_ONLY"):
        names = tuple(name.strip() for name in only.split(",") if name.strip())
        unknown = sorted(set(names) - set(ALL_BENCHMARKS))
        if unknown:
            raise SystemExit(
                f"BENCH_ONLY: unknown benchmark(s) {unknown}; choose from {list(ALL_BENCHMARKS)}"
            )
        changes["benchmarks"] = names
    if os.environ.get("BENCH_NO_PIN", "") not in ("", "0", "false") or (os.cpu_count() or 1) < 2:
        changes["server_cpus"] = None
        changes["load_cpus"] = None
    if results_dir := os.environ.get("BENCH_RESULTS_DIR"):
        changes["results_dir"] = Path(results_dir)
    if work_dir := os.environ.get("BENCH_WORK_DIR"):
        changes["work_dir"] = Path(work_dir)
    if docs := os.environ.get("BENCH_DOCS"):
        changes["docs_path"] = None if docs == "none" else Path(docs)
    return replace(config, **changes)
