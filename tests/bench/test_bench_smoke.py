"""`python -m bench` runs every benchmark end to end with tiny parameters and writes well-formed results.

Speed is never asserted here: only that each benchmark ran and that the JSON, the chart and the Markdown
page have the structure the docs and CI rely on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = [
    "cached_status",
    "uncached_status",
    "protection",
    "protection_cluster",
    "bot_throughput",
    "footprint",
    "watcher",
    "history",
]
TINY = {
    "BENCH_QUICK": "1",
    "BENCH_RUNS": "1",
    "BENCH_DURATION": "1",
    "BENCH_BOT_DURATION": "1",
    "BENCH_WARMUP": "0.5",
    "BENCH_CONNECTIONS": "8",
    "BENCH_UNCACHED_SAMPLES": "5",
    "BENCH_PROTECTION_SECONDS": "2",
    "BENCH_PROTECTION_CLIENTS": "20",
    "BENCH_PROTECTION_TTL": "1",
    "BENCH_PROTECTION_RUNS": "1",
    "BENCH_BOT_CONCURRENCY": "4",
    "BENCH_IDLE_SECONDS": "0.2",
    "BENCH_STARTUP_RUNS": "1",
    "BENCH_WATCH_SERVERS": "20",
    "BENCH_WATCH_INTERVAL": "4",  # a window of 2 x 4 s: checks land in it on a busy machine too
    "BENCH_WATCH_INTERVALS": "2",
    "BENCH_WATCH_REPLICA_INTERVALS": "1",
}


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("bench")
    env = {
        **os.environ,
        **TINY,
        "BENCH_RESULTS_DIR": str(out / "results"),
        "BENCH_DOCS": str(out / "benchmarks.md"),
        "BENCH_WORK_DIR": str(out / "logs"),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "bench"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    return proc, out


@pytest.mark.timeout(600)
def test_every_benchmark_runs_and_reports(bench_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, out = bench_run
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    results = json.loads((out / "results" / "latest.json").read_text())
    assert results["schema_version"] == 1
    assert results["machine"]["cores"] >= 1
    assert results["machine"]["cpu_model"]
    assert list(results["benchmarks"]) == BENCHMARKS
    for name, bench in results["benchmarks"].items():
        assert bench["status"] == "ok", (name, bench["notes"])
        assert bench["figures"], name
        for key, figure in bench["figures"].items():
            assert figure["runs"], (name, key)
            assert figure["min"] <= figure["median"] <= figure["max"], (name, key)
            assert figure["unit"]
        for target in bench["targets"]:
            assert target["measured"] is not None, (name, target)
            assert target["met"] in (True, False)


@pytest.mark.timeout(600)
def test_each_benchmark_measured_what_it_claims(
    bench_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    proc, out = bench_run
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    benches = json.loads((out / "results" / "latest.json").read_text())["benchmarks"]
    cached = benches["cached_status"]
    assert cached["details"]["x_cache_first_second"]["redis"] == ["MISS", "HIT"]
    assert cached["figures"]["plain_rps"]["median"] > 0
    uncached = benches["uncached_status"]
    assert uncached["details"]["x_cache"] == [{"MISS": 5}]
    protection = benches["protection"]
    assert protection["figures"]["probes"]["median"] >= 1
    assert benches["protection_cluster"]["figures"]["probes"]["median"] >= 1
    assert 0 < protection["figures"]["hit_ratio"]["median"] <= 1
    bot = benches["bot_throughput"]
    assert bot["figures"]["shipped_updates_per_s"]["median"] > 0
    assert bot["figures"]["unlimited_updates_per_s"]["median"] > 0
    assert "A Minecraft Server" in bot["details"]["sample_reply"]
    footprint = benches["footprint"]
    assert {"query_startup_s", "query_rss_idle_mib", "query_rss_load_mib", "bot_rss_idle_mib"} <= set(
        footprint["figures"]
    )
    history = benches["history"]
    assert history["figures"]["draw_warm_s"]["median"] > 0
    assert history["figures"]["worker_rss_mib"]["median"] > 0
    assert history["figures"]["dynamodb_bytes_per_day"]["median"] > 1440  # a string per sample at least
    assert history["figures"]["sqlite_bytes_per_day"]["median"] > 1440
    watcher = benches["watcher"]
    assert watcher["figures"]["servers"]["median"] == 20
    # two intervals of 20 servers (the window may close a few ms late: a slot more for some servers)
    assert 40 <= watcher["details"]["single"]["schedule"]["slots"] <= 60
    assert watcher["details"]["single"]["checks"] > 0  # counted at the ping farm


@pytest.mark.timeout(600)
def test_chart_and_page_are_written(bench_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, out = bench_run
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    png = (out / "results" / "latest.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    page = (out / "benchmarks.md").read_text()
    assert page.startswith("# Benchmarks")
    for heading in (
        "## Machine",
        "## Targets",
        "## 1. Cached status",
        "## 4. Bot throughput",
        "## 5. Footprint",
        "## 6. Watcher",
    ):
        assert heading in page
    assert "| CPU |" in page
