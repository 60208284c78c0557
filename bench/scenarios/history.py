"""7. History: time and memory to draw a 30-day /history chart; bytes stored per watched server per day."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.core import BenchmarkResult, Chart, Target

if TYPE_CHECKING:
    from bench.core import BenchContext

TITLE = "7. History: drawing a 30-day chart, storage per watched server"
DAY = 86400
SAMPLES_PER_DAY = 1440  # WATCH_INTERVAL_SECONDS=60
TARGET_DRAW_S = 5.0
SQLITE_SERVERS = 20

# The chart worker's job in a fresh interpreter, as the worker process does it: the first chart pays
# the imports (matplotlib, numpy) and the font cache, the next ones not; peak RSS of the process.
DRAW_SCRIPT = """
import json, resource, sys, time
from mcstatbot_bot.history_chart import ChartRequest, render
now = 1_764_547_200
span = 30 * 86400
rows = [
    (at, (at // 3600) % 48 != 5, (at // 3600) % 24, 40, 20.0 + at % 7) for at in range(now - span, now, 60)
]
labels = ("Spieler online", "Max. Spieler", "Offline", "Latenz, ms", "Zeit (UTC)", "Noch keine Prüfungen")
request = ChartRequest(rows, now - span, now, "de", "play.example.com · letzte 30 Tage", *labels)
start = time.perf_counter()
png = render(request)
first = time.perf_counter() - start
warm = []
for _ in range(int(sys.argv[1])):
    start = time.perf_counter()
    render(request)
    warm.append(time.perf_counter() - start)
print(json.dumps({"first_s": first, "warm_s": warm, "png_bytes": len(png),
    "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "samples": len(rows)}))
"""


def _draw(warm_runs: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", DRAW_SCRIPT, str(warm_runs)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def _day_of_samples(day: int) -> list[tuple[int, bool, int | None, int | None, float | None]]:
    """A day of one-minute checks: online, 0-30 players of 40, 20-60 ms; an hour offline."""
    rows: list[tuple[int, bool, int | None, int | None, float | None]] = []
    for minute in range(SAMPLES_PER_DAY):
        at = day * DAY + minute * 60
        if 180 <= minute < 240:  # an hour down
            rows.append((at, False, None, None, None))
        else:
            rows.append((at, True, (minute * 7) % 31, 40, 20.0 + (minute * 13) % 400 / 10))
    return rows


def dynamodb_item_bytes(day: int) -> int:
    """The size DynamoDB counts for one server's history item of a full day (its documented rules: each
    attribute's name plus its value; a string its UTF-8 bytes, a number 1 byte per two digits plus 1, a
    list 3 bytes plus 1 byte per element plus the elements)."""
    from mcstatbot_bot.state.base import Sample, ServerRef  # noqa: PLC0415
    from mcstatbot_bot.state.dynamodb import encode_sample, history_key  # noqa: PLC0415

    key = history_key(ServerRef("play.example.com:25565"), day)
    values = [encode_sample(Sample(*row)) for row in _day_of_samples(day)]
    size = len("chat_id") + len(key.encode())
    size += len("s") + 3 + sum(1 + len(value.encode()) for value in values)
    ttl = str((day + 1) * DAY + 30 * DAY)
    size += len("ttl") + (len(ttl) + 1) // 2 + 1
    return size


async def _write_sqlite_days(path: Path, day: int | None, servers: int) -> None:
    """`servers` servers' full day each, through the SQLite store (None: only its schema)."""
    from datetime import timedelta  # noqa: PLC0415

    from mcstatbot_bot.state.base import Sample, ServerRef  # noqa: PLC0415
    from mcstatbot_bot.state.sqlite import SqliteStore  # noqa: PLC0415

    store = SqliteStore(str(path))
    await store.open()
    try:
        for number in range(servers):
            server = ServerRef(f"mc{number}.example.com:25565")
            for row in _day_of_samples(day or 0):
                await store.add_sample(server, Sample(*row), timedelta(days=30))
    finally:
        await store.close()


def _compacted_size(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.execute("VACUUM")
    return path.stat().st_size


def sqlite_bytes_per_server_day(path: Path, servers: int = SQLITE_SERVERS) -> float:
    """A SQLite file's growth for `servers` servers' full day each, per server (after VACUUM)."""
    day = int(time.time()) // DAY - 1
    asyncio.run(_write_sqlite_days(path, None, 0))
    empty = _compacted_size(path)
    asyncio.run(_write_sqlite_days(path, day, servers))
    return (_compacted_size(path) - empty) / servers


def run(context: BenchContext) -> BenchmarkResult:
    config = context.config
    result = BenchmarkResult(
        "history",
        TITLE,
        "The /history chart of 30 days of one-minute samples (43,200 points, an hour offline in every 48) "
        "drawn by `history_chart.render` in a fresh interpreter, as the chart worker process does: the "
        "first chart includes importing matplotlib and numpy, the next ones are the worker's later charts; "
        "the peak resident memory is that process's. Storage: a full day of one-minute checks of one "
        "server, as DynamoDB counts its item's size (one item per server per day), and as a SQLite file "
        f"grows with {SQLITE_SERVERS} servers' day each (4 in a quick run; after VACUUM).",
    )
    warm_runs = 1 if config.quick else 3
    first: list[float] = []
    warm: list[float] = []
    rss: list[float] = []
    png: list[float] = []
    for _ in range(config.runs):
        drawn = _draw(warm_runs)
        first.append(float(drawn["first_s"]))
        warm.extend(float(value) for value in drawn["warm_s"])
        rss.append(float(drawn["max_rss_mib"]))
        png.append(float(drawn["png_bytes"]) / 1024)
    result.add("draw_first_s", "30-day chart, first in a new worker (imports included)", "s", first)
    result.add("draw_warm_s", "30-day chart, a warm worker", "s", warm)
    result.add("worker_rss_mib", "chart worker's peak resident memory", "MiB", rss)
    result.add("png_kib", "the PNG's size", "KiB", png)
    day = int(time.time()) // DAY
    ddb = dynamodb_item_bytes(day)
    with tempfile.TemporaryDirectory() as tmp:
        servers = 4 if config.quick else SQLITE_SERVERS
        sqlite = sqlite_bytes_per_server_day(Path(tmp) / "history.db", servers)
    result.add("dynamodb_bytes_per_day", "DynamoDB: bytes per watched server per day", "bytes", [float(ddb)])
    result.add("sqlite_bytes_per_day", "SQLite: bytes per watched server per day", "bytes", [sqlite])
    result.add(
        "dynamodb_mib_per_server",
        "DynamoDB: a watched server's history (HISTORY_DAYS=30)",
        "MiB",
        [ddb * 31 / 1024 / 1024],
    )
    warm_median = result.median("draw_warm_s")
    result.targets.append(
        Target(
            "30-day chart in a warm worker",
            f"< {TARGET_DRAW_S:g} s",
            warm_median,
            "s",
            None if warm_median is None else warm_median < TARGET_DRAW_S,
        )
    )
    result.charts.append(Chart("History chart", "s", ["draw_first_s", "draw_warm_s"]))
    result.notes.append(
        "A day of one-minute checks is 1,440 samples; a DynamoDB item holds at most 17,280 (one every 5 s), "
        "far under its 400 KB limit. 30 days keep 31 items per server (the TTL deletes each within days "
        "after its day plus HISTORY_DAYS)."
    )
    return result
