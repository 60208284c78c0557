"""Write the results: `latest.json`, a PNG chart (matplotlib, Agg) and the Markdown page."""

from __future__ import annotations

import json
import math
import textwrap
from typing import TYPE_CHECKING, Any

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt

if TYPE_CHECKING:
    from pathlib import Path

SCHEMA_VERSION = 1
JSON_NAME = "latest.json"
PNG_NAME = "latest.png"


def write_json(results: dict[str, Any], results_dir: Path) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / JSON_NAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    return path


def _charts(results: dict[str, Any]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    panels = []
    for bench in results["benchmarks"].values():
        for chart in bench.get("charts", []):
            bars = [bench["figures"][key] for key in chart["figures"] if key in bench["figures"]]
            bars = [bar for bar in bars if bar.get("median") is not None]
            if bars:
                panels.append((chart["title"], chart["unit"], bars))
    return panels


def write_png(results: dict[str, Any], results_dir: Path) -> Path | None:
    panels = _charts(results)
    if not panels:
        return None
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.6 * columns, 4.6 * rows), squeeze=False)
    for index, (title, unit, bars) in enumerate(panels):
        ax = axes[index // columns][index % columns]
        labels = [textwrap.fill(bar["label"], 26) for bar in bars]
        medians = [bar["median"] for bar in bars]
        low = [bar["median"] - bar["min"] for bar in bars]
        high = [bar["max"] - bar["median"] for bar in bars]
        positions = list(range(len(bars)))
        ax.bar(positions, medians, yerr=[low, high], capsize=4, color="#4C72B0")
        ax.set_xticks(positions, labels, rotation=30, ha="right", fontsize=7)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(unit)
        for x, y in zip(positions, medians, strict=True):
            ax.annotate(_number(y), (x, y), ha="center", va="bottom", fontsize=7)
    for index in range(len(panels), rows * columns):
        axes[index // columns][index % columns].axis("off")
    machine = results["machine"]
    fig.suptitle(
        f"mcstatbot benchmarks, {machine['date']}, {machine['cpu_model']} x{machine['cores']}"
        f"{' (quick run)' if results['config']['quick'] else ''}; bars: median, whiskers: min-max",
        fontsize=10,
    )
    fig.tight_layout()
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / PNG_NAME
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _number(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if magnitude < 1 else f"{value:.2f}"


def _met(target: dict[str, Any]) -> str:
    return {True: "met", False: "NOT met", None: "n/a"}[target["met"]]


def markdown(results: dict[str, Any], png_name: str | None) -> str:
    machine = results["machine"]
    config = results["config"]
    run_kind = "quick (BENCH_QUICK=1)" if config["quick"] else "full"
    lines = [
        "# Benchmarks",
        "",
        "Measured by `make bench` (`uv run python -m bench`; `BENCH_QUICK=1 make bench` for a short run).",
        "This page, `bench/results/latest.json` and the chart are written by it; do not edit them by hand.",
        "Every figure is the median of several runs, with the spread (min-max) of those runs.",
        "Targets are goals to report against, not assertions.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| date | {machine['date']} |",
        f"| CPU | {machine['cpu_model']} |",
        f"| cores | {machine['cores']} |",
        f"| memory | {machine['memory_mib']} MiB |",
        f"| kernel | {machine['kernel']} |",
        f"| Python | {machine['python']} |",
        f"| load average (1, 5, 15 min) at start | {', '.join(map(str, machine['load_average_at_start']))} |",
        f"| load average at end | {', '.join(map(str, results.get('load_average_at_end', [])))} |",
        f"| run | {run_kind}, {config['runs']} runs per figure |",
        f"| CPU pinning | {_pinning(config)} |",
        "",
    ]
    if results.get("busy_note"):
        lines += [f"> {results['busy_note']}", ""]
    if png_name:
        lines += [f"![benchmark chart](../bench/results/{png_name})", ""]
    lines += _how_to_run()
    lines += ["## Targets", "", "| benchmark | target | goal | measured | |", "|---|---|---|---|---|"]
    for bench in results["benchmarks"].values():
        for target in bench.get("targets", []):
            measured = target["measured"]
            lines.append(
                f"| {bench['title']} | {target['name']} | {target['goal']} | "
                f"{_number(measured)} {target['unit'] if measured is not None else ''} | "
                f"{_met(target)} |"
            )
    lines.append("")
    for bench in results["benchmarks"].values():
        lines += _section(bench, machine["date"])
    return "\n".join(lines)


def _section(bench: dict[str, Any], date: str) -> list[str]:
    lines = [f"## {bench['title']}", ""]
    details = bench["details"]
    measured_at = details.get("measured_at")
    if measured_at and measured_at != date:
        lines += [
            f"Measured in an earlier run, {measured_at} (not in this run; the machine table is this run's).",
            "",
        ]
    others = details.get("other_processes_cpu_cores")
    if others is not None:
        load = (details.get("load_average_before") or ["?"])[0]
        busy = f"Other processes on the machine used {others} cores on average while this ran "
        lines += [f"{busy}(1-minute load average before it: {load}).", ""]
    if bench["status"] != "ok":
        lines += [f"**{bench['status']}**", ""]
    lines += [bench["method"], ""]
    if bench["figures"]:
        lines += ["| figure | median | min | max | unit | runs |", "|---|---|---|---|---|---|"]
        for figure in bench["figures"].values():
            lines.append(
                f"| {figure['label']} | {_number(figure['median'])} | {_number(figure['min'])} | "
                f"{_number(figure['max'])} | {figure['unit']} | {len(figure['runs'])} |"
            )
        lines.append("")
    lines += [f"- {note}" for note in bench["notes"]]
    if bench["notes"]:
        lines.append("")
    return lines


HOW_TO_RUN = """\
## Running it

- `make bench`: every benchmark, about 22 minutes on 2 cores (the watcher's 13 of them: one replica,
  two on SQLite, two on DynamoDB Local); `BENCH_QUICK=1 make bench`: about 5.
- `BENCH_ONLY=cached_status,protection` runs some of them (cached_status, uncached_status, protection,
  protection_cluster, bot_throughput, footprint, watcher, history); the others keep their results from the
  last run (`bench/results/latest.json`), each section saying when it was measured.
- Parameters: `BENCH_RUNS` (runs per figure, default 3), `BENCH_DURATION` (seconds per wrk run),
  `BENCH_BOT_DURATION`, `BENCH_PROTECTION_SECONDS` (default 60), `BENCH_PROTECTION_CLIENTS` (default 200),
  `BENCH_PROTECTION_TTL` (default 5), `BENCH_CONNECTIONS`, `BENCH_BOT_CONCURRENCY`, `BENCH_WATCH_SERVERS`
  (default 5000; quick 834), `BENCH_WATCH_INTERVAL` (default 60; quick 10), `BENCH_WATCH_INTERVALS`
  (default 3), `BENCH_WATCH_REPLICA_INTERVALS` (default 2), `BENCH_NO_PIN=1` (no
  taskset), `BENCH_WORK_DIR` (keeps the processes' logs), `BENCH_RESULTS_DIR`, `BENCH_DOCS` (this page's
  path, or `none`). See `bench/config.py`.
- Needs what `make test` installs: wrk, redis-server, node with the peers in `tests/peers`, java with
  DynamoDB Local.
- `tests/bench/test_bench_smoke.py` runs every benchmark for a second or two in CI and checks the result
  files' structure (never speed).
"""


def _how_to_run() -> list[str]:
    return [*HOW_TO_RUN.splitlines(), ""]


def _pinning(config: dict[str, Any]) -> str:
    if config["server_cpus"] is None:
        return "none (every process on any CPU)"
    return (
        f"measured service on CPU {config['server_cpus']}, load generators and peers on CPU "
        f"{config['load_cpus']} (taskset)"
    )


def write_markdown(results: dict[str, Any], docs_path: Path, png_name: str | None) -> Path:
    docs_path.parent.mkdir(parents=True, exist_ok=True)
    docs_path.write_text(markdown(results, png_name))
    return docs_path
