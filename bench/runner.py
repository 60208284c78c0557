"""Run the selected benchmarks in one go (so machine noise hits them alike) and write the results."""

from __future__ import annotations

import json
import os
import tempfile
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import report
from bench.core import BenchContext, BenchmarkResult, BenchmarkSkippedError
from bench.machine import load_average, machine_info
from bench.procstat import machine_busy_seconds, own_cpu_seconds
from bench.scenarios import bot, cached, footprint, history, protection, uncached, watcher

if TYPE_CHECKING:
    from collections.abc import Callable

    from bench.config import BenchConfig

SCENARIOS: dict[str, tuple[str, Callable[[BenchContext], BenchmarkResult]]] = {
    "cached_status": (cached.TITLE, cached.run),
    "uncached_status": (uncached.TITLE, uncached.run),
    "protection": (protection.TITLE, protection.run),
    "protection_cluster": (protection.CLUSTER_TITLE, protection.run_on_cluster),
    "bot_throughput": (bot.TITLE, bot.run),
    "footprint": (footprint.TITLE, footprint.run),
    "watcher": (watcher.TITLE, watcher.run),
    "history": (history.TITLE, history.run),
}
BUSY_LOAD_PER_CORE = 0.5
"""A 1-minute load average above this many runnable processes per core before the run counts as busy."""
BUSY_OTHER_CORES = 0.25
"""Other processes using more than this many cores while a benchmark runs make the run busy."""


def _say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_benchmark(name: str, context: BenchContext) -> BenchmarkResult:
    title, function = SCENARIOS[name]
    _say(f"{name}: starting")
    load_before = load_average()
    busy_before, own_before = machine_busy_seconds(), own_cpu_seconds()
    started = time.perf_counter()
    try:
        result = function(context)
    except BenchmarkSkippedError as skipped:
        result = BenchmarkResult(name, title, "", status="skipped", notes=[f"Skipped: {skipped}"])
    except Exception as error:  # noqa: BLE001 - one failed benchmark must not lose the others' results
        _say(f"{name}: failed\n{traceback.format_exc()}")
        result = BenchmarkResult(
            name, title, "", status="failed", notes=[f"Failed: {type(error).__name__}: {error}"]
        )
    elapsed = time.perf_counter() - started
    others = (machine_busy_seconds() - busy_before) - (own_cpu_seconds() - own_before)
    result.details["elapsed_s"] = round(elapsed, 1)
    result.details["load_average_before"] = load_before
    result.details["other_processes_cpu_cores"] = round(max(others, 0.0) / elapsed, 2) if elapsed else None
    _say(f"{name}: {result.status} in {result.details['elapsed_s']} s")
    return result


def _busy_note(results: dict[str, Any]) -> str | None:
    machine = results["machine"]
    start, cores = machine["load_average_at_start"], machine["cores"]
    others = [
        bench["details"]["other_processes_cpu_cores"]
        for bench in results["benchmarks"].values()
        if bench["details"].get("other_processes_cpu_cores") is not None
    ]
    busiest = max(others, default=0.0)
    if (start and cores and start[0] > BUSY_LOAD_PER_CORE * cores) or busiest > BUSY_OTHER_CORES:
        return (
            f"The machine was busy during this run: 1-minute load average {start[0] if start else '?'} on "
            f"{cores} cores when it started, and other processes used up to {busiest} cores while a "
            "benchmark ran (see each section). Absolute figures are pessimistic; the side-by-side "
            "comparisons, measured in the same rounds, are what to read."
        )
    return None


def parse_cpus(text: str) -> set[int]:
    """`"1"`, `"0,2"` or `"0-3"` as a set of CPU numbers (taskset's list syntax)."""
    cpus: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def _earlier_results(config: BenchConfig) -> dict[str, Any]:
    """On a run of some benchmarks (BENCH_ONLY), the others' results from the last `latest.json` in the
    results directory, each marked with when it was measured, so the page keeps every section."""
    path = config.results_dir / report.JSON_NAME
    if set(config.benchmarks) >= set(SCENARIOS) or not path.exists():
        return {}
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if earlier.get("schema_version") != report.SCHEMA_VERSION:
        return {}
    kept: dict[str, Any] = earlier.get("benchmarks", {})
    for bench in kept.values():
        bench["details"].setdefault("measured_at", earlier.get("machine", {}).get("date"))
    return kept


def run(config: BenchConfig) -> dict[str, Any]:
    machine = machine_info()
    previous_affinity = os.sched_getaffinity(0)
    if config.load_cpus is not None:
        # this process drives load (and starts the peers, which inherit it): keep it off the service's CPU
        os.sched_setaffinity(0, parse_cpus(config.load_cpus))
    try:
        return _run(config, machine)
    finally:
        os.sched_setaffinity(0, previous_affinity)


def _run(config: BenchConfig, machine: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mcstatbot-bench-") as tmp:
        work_dir = config.work_dir or Path(tmp)
        work_dir.mkdir(parents=True, exist_ok=True)
        context = BenchContext(config=config, work_dir=work_dir)
        _say(f"logs in {work_dir}; config {config.as_dict()}")
        results: dict[str, Any] = {
            "schema_version": report.SCHEMA_VERSION,
            "machine": machine,
            "config": config.as_dict(),
            "benchmarks": {},
        }
        earlier = _earlier_results(config)
        for name in SCENARIOS:
            if name in config.benchmarks:
                result = run_benchmark(name, context).as_dict()
                result["details"]["measured_at"] = machine["date"]
                results["benchmarks"][name] = result
            elif name in earlier:
                results["benchmarks"][name] = earlier[name]
    results["load_average_at_end"] = load_average()
    results["busy_note"] = _busy_note(results)
    json_path = report.write_json(results, config.results_dir)
    png_path = report.write_png(results, config.results_dir)
    _say(f"wrote {json_path}" + (f" and {png_path}" if png_path else ""))
    if config.docs_path is not None:
        docs = report.write_markdown(results, config.docs_path, png_path.name if png_path else None)
        _say(f"wrote {docs}")
    return results
