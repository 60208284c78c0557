"""6. The watcher: how many watched servers one watcher core keeps on schedule, CPU per check, memory per
watched server, and two replicas splitting the work. Every check is counted at the servers (one loopback
port each, all served by the test kit's ping farm in one process), never from the watcher's own claims."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import sqlite3
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any
from unittest import mock

from mcstatbot_bot.settings import BotSettings
from mcstatbot_bot.state import build_store
from mcstatbot_bot.state.base import ServerRef
from mcstatbot_bot.state.watches import add_watch, chat_key, index_key, server_key
from mcstatbot_common.models import Edition
from mcstatbot_testkit.dynamodb import DynamoDBLocal
from mcstatbot_testkit.ping_farm import PingFarm
from mcstatbot_testkit.telegram import BotApiServer
from mcstatbot_watcher.service import offset

from bench.core import BenchmarkResult, Chart, Target
from bench.procstat import RssSampler, tree_cpu_seconds
from bench.stack import QUERY_MODULE, metric_samples, query_env, redis_server, require_module, service
from bench.stats import percentile

if TYPE_CHECKING:
    from pathlib import Path

    from mcstatbot_bot.state.base import Doc

    from bench.core import BenchContext
    from bench.launch import BenchService

TITLE = "6. Watcher: servers kept on schedule"
WATCHER_MODULE = "mcstatbot_watcher"
GOAL_SERVERS = 5000
ON_TIME = 0.1
"""A check is on schedule when it comes at most this share of the interval after its due time."""
WATCHES_PER_CHAT = 10
QUERY_SATURATED = 0.8
"""Query-service CPU (cores) above which it, not the watcher, is taken to bound the check rate."""
CHECKS_METRIC = "mcstatbot_watcher_checks_total"
PROFILE_NOTE = (
    "Where the watcher's CPU per check went (py-spy 0.4.3, 25 s at 200 Hz of the watcher process in the "
    "quick run, 2026-12-01, before the checks of a tick were batched: 15.3 ms per check): 49% of the "
    "samples in the per-server `POST /api/v1/status` (httpx and httpcore 39%, of which 27% in httpcore's "
    "pool choosing a connection, `_assign_requests_to_connections` asking every pooled connection "
    "whether its socket is readable at each request; OpenTelemetry's httpx instrumentation 2%; "
    "tenacity's own frames 5%), 33% in the SQLite state store (aiosqlite's worker thread: the watch read, "
    "the history sample and the check record written, two commits per check), the rest the loop, the "
    "check rules and JSON. Since then the servers due in one tick are claimed in one Redis pipeline and "
    'asked in one `POST /api/v1/status/batch` (docs/watcher.md, "Schedule and replicas"): the '
    "quick run went from 15.3 to 2.6 ms of watcher CPU per check on the same loaded machine."
)
MIB = 1024 * 1024
DYNAMODB_TABLE = "mcstatbot-watcher-bench"
SEED_CONCURRENCY = 32


def _ref(port: int) -> ServerRef:
    return ServerRef(f"127.0.0.1:{port}", Edition.JAVA)


async def _watch_docs(token: str, ports: list[int]) -> dict[str, Doc]:
    """The state-store documents of one watch per port, ten per chat, made as /watch makes them
    (`state.watches.add_watch`, on a memory store), by key."""
    store = build_store(BotSettings(telegram_bot_token=token, state_backend="memory"))
    await store.open()
    keys: set[str] = set()
    try:
        for index, port in enumerate(ports):
            chat_id = 10_000 + index // WATCHES_PER_CHAT
            await add_watch(store, chat_id, _ref(port), players=False, limit=WATCHES_PER_CHAT)
            keys |= {chat_key(chat_id), server_key(_ref(port)), index_key(_ref(port))}
        found = {key: await store.get_doc(key) for key in keys}
    finally:
        await store.close()
    return {key: versioned.doc for key, versioned in found.items() if versioned is not None}


async def _open_and_close(sqlite_path: Path, token: str) -> None:
    store = build_store(
        BotSettings(telegram_bot_token=token, state_backend="sqlite", sqlite_path=str(sqlite_path))
    )
    await store.open()  # creates the file and its tables
    await store.close()


def seed(sqlite_path: Path, token: str, docs: dict[str, Doc]) -> None:
    """The watches written into a SQLite state file in one transaction (one commit per document, as the
    store makes them, would take minutes for thousands on a busy disk; the documents are the store's own)."""
    asyncio.run(_open_and_close(sqlite_path, token))
    with contextlib.closing(sqlite3.connect(sqlite_path)) as db, db:
        db.executemany(
            "INSERT INTO docs (key, doc, version) VALUES (?, ?, 1)",
            [(key, json.dumps(doc, separators=(",", ":"))) for key, doc in docs.items()],
        )


async def _put_docs(docs: dict[str, Doc]) -> None:
    from mcstatbot_bot.state.dynamodb import DynamoDBStore  # noqa: PLC0415 - aiodynamo only here

    store = DynamoDBStore(DYNAMODB_TABLE, timeout=10.0)
    await store.open()
    limit = asyncio.Semaphore(SEED_CONCURRENCY)

    async def put(key: str, doc: Doc) -> None:
        async with limit:
            # False only when aiodynamo retried a put that had landed (a slow first answer): it is there
            await store.put_doc(key, doc, 0)

    try:
        await asyncio.gather(*(put(key, doc) for key, doc in docs.items()))
    finally:
        await store.close()


def seed_dynamodb(env: dict[str, str], docs: dict[str, Doc]) -> None:
    """The table made as an operator makes it (`mcstatbot-bot create-table`) and the same documents put
    into it, SEED_CONCURRENCY at a time."""
    subprocess.run(
        [sys.executable, "-m", "mcstatbot_bot", "create-table"],
        env={**os.environ, **env, "DYNAMODB_TABLE": DYNAMODB_TABLE},
        capture_output=True,
        timeout=60,
        check=True,
    )
    with mock.patch.dict(os.environ, env):  # the store reads its region, endpoint and credentials here
        asyncio.run(_put_docs(docs))


def _watcher_env(
    api: BotApiServer, query: BenchService, sqlite_path: Path, interval: float
) -> dict[str, str]:
    return {
        "TELEGRAM_BOT_TOKEN": api.token,
        "TELEGRAM_API_BASE_URL": api.base_url,
        "QUERY_SERVICE_URL": query.url,
        "STATE_BACKEND": "sqlite",
        "SQLITE_PATH": str(sqlite_path),
        "WATCH_INTERVAL_SECONDS": f"{interval:g}",
        "LOG_LEVEL": "WARNING",
    }


def _known(watcher: BenchService) -> int:
    import httpx  # noqa: PLC0415 - only here

    return int(httpx.get(f"{watcher.url}/ready", timeout=5).json().get("watched_servers", 0))


def _wait_known(watchers: list[BenchService], count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(_known(w) < count for w in watchers):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the watchers did not list {count} servers within {timeout} s")
        time.sleep(0.5)


def _checks(watcher: BenchService) -> dict[str, float]:
    return {
        labels.get("outcome", ""): value
        for labels, value in metric_samples(f"{watcher.url}/metrics", CHECKS_METRIC)
    }


def schedule(
    times: dict[int, list[float]], ports: list[int], interval: float, start: float, end: float
) -> dict[str, Any]:
    """Every (server, interval) slot whose due time falls in [start, end), by how it was served: checked
    once and on time (at most ON_TIME of the interval after its due time), once but late, missed, or
    more than once; and the lateness of the checks, from the servers' own request times."""
    once = late = missed = doubled = kept = 0
    lateness: list[float] = []
    for port in ports:
        before = once
        first = offset(_ref(port), interval)
        got: dict[int, list[float]] = {}
        for at in times.get(port, []):
            slot = math.floor((at - first) / interval)
            got.setdefault(slot, []).append(at - (slot * interval + first))
        for slot in range(math.ceil((start - first) / interval), math.ceil((end - first) / interval)):
            seen = got.get(slot, [])
            lateness.extend(seen)
            if not seen:
                missed += 1
            elif len(seen) > 1:
                doubled += 1
            elif seen[0] <= ON_TIME * interval:
                once += 1
            else:
                late += 1
        wanted = math.ceil((end - first) / interval) - math.ceil((start - first) / interval)
        kept += once - before == wanted
    slots = once + late + missed + doubled
    return {
        "slots": slots,
        "on_time": once,
        "late": late,
        "missed": missed,
        "doubled": doubled,
        "on_time_share": once / slots if slots else 0.0,
        "servers_on_schedule": kept,
        "lateness_p50_s": percentile(lateness, 50) if lateness else None,
        "lateness_p99_s": percentile(lateness, 99) if lateness else None,
        "lateness_max_s": max(lateness, default=None),
    }


def _measure(  # noqa: PLR0917 - what one measurement looks at
    farm: PingFarm,
    query: BenchService,
    watchers: list[BenchService],
    ports: list[int],
    interval: float,
    intervals: int,
) -> dict[str, Any]:
    """One interval of warm-up (a fresh start checks each server first at its offset), then `intervals`
    intervals measured: the schedule from the farm's request times, CPU and RSS of each watcher, and
    each watcher's own check counters (only for the split between replicas)."""
    time.sleep(interval)
    start = time.time()
    cpu_before = [tree_cpu_seconds(w.pid) for w in watchers]
    query_before = tree_cpu_seconds(query.pid)
    counts_before = [_checks(w) for w in watchers]
    samplers = [RssSampler(w.pid, interval=0.5) for w in watchers]
    with ExitStack() as stack:
        for sampler in samplers:
            stack.enter_context(sampler)
        time.sleep(max(0.0, start + intervals * interval - time.time()))
    end = time.time()
    query_cpu = tree_cpu_seconds(query.pid) - query_before
    cpu = [tree_cpu_seconds(w.pid) - before for w, before in zip(watchers, cpu_before, strict=True)]
    counts = [
        {key: value - before.get(key, 0.0) for key, value in _checks(w).items()}
        for w, before in zip(watchers, counts_before, strict=True)
    ]
    time.sleep(ON_TIME * interval + 0.5)  # the last slots' checks, late ones included
    times = farm.request_times()
    checks_in_window = sum(1 for each in times.values() for at in each if start <= at < end)
    return {
        "start": start,
        "end": end,
        "schedule": schedule(times, ports, interval, start, end),
        "checks": checks_in_window,
        "cpu_s": cpu,
        "query_cpu_s": query_cpu,
        "rss_peak_bytes": [s.peak for s in samplers],
        "counts": counts,
    }


def _idle_rss(context: BenchContext, env: dict[str, str], cpus: str | None) -> tuple[float, float | None]:
    """RSS (bytes) of a watcher with no watched server, a few seconds after it is ready; and its
    start-up time."""
    with service(context, WATCHER_MODULE, "watcher-empty", env, cpus=cpus) as empty:
        time.sleep(2.0)
        with RssSampler(empty.pid, interval=0.2) as sampler:
            time.sleep(max(1.0, context.config.footprint_idle_s))
        return statistics.median(sampler.samples), empty.startup_s


def run(context: BenchContext) -> BenchmarkResult:
    config = context.config
    require_module(QUERY_MODULE)
    require_module(WATCHER_MODULE)
    servers, interval = config.watch_servers, config.watch_interval_s
    result = BenchmarkResult(
        "watcher",
        TITLE,
        method=(
            f"{servers:,} watched servers, each its own port on 127.0.0.1, all answered by one asyncio "
            "process (`mcstatbot_testkit.ping_farm`: the Server List Ping exchange with a small status "
            "JSON; it records the time of every status request per port), watched with "
            f"`players` off, {WATCHES_PER_CHAT} per chat, written into a SQLite state file as /watch "
            f"writes them. WATCH_INTERVAL_SECONDS={interval:g}. The real watcher (`python -m "
            "mcstatbot_watcher`, pinned to the service CPU) checks them through the real query service "
            "(with redis-server as its cache, CACHE_TTL_STATUS=1 so every check reaches the server; the "
            "query service, Redis, the farm and the Bot API test server on the other CPU). After one "
            "interval of warm-up (a fresh start checks each server first at its own offset), "
            f"{config.watch_intervals} intervals are measured: each (server, interval) slot is on "
            f"schedule when the farm saw exactly one status request for it, at most {ON_TIME:.0%} of "
            "the interval after its due time (the watcher's own offset of that server). Watcher CPU "
            "from /proc over the measured intervals, divided by the checks the farm counted in them; "
            "memory per watched server = (peak RSS while measuring minus the RSS of a watcher with no "
            f"watches) / {servers:,}. Then two replicas (REDIS_URL: slots claimed with SET NX PX) on "
            f"the same state file and CPU, one interval of warm-up and {config.watch_replica_intervals} "
            "measured: every slot checked once (at the farm), and the split between them (each "
            "replica's `mcstatbot_watcher_checks_total`). Then the same with the state store the chart "
            "runs: two replicas with STATE_BACKEND=dynamodb on DynamoDB Local (the official jar, "
            "in memory, on the other CPU beside the farm and the query service), its table made by "
            "`mcstatbot-bot create-table` and the same documents put into it, one interval of warm-up "
            f"and {config.watch_replica_intervals} measured."
        ),
    )
    with ExitStack() as stack:
        farm = stack.enter_context(PingFarm(context.log_path("ping-farm"), servers))
        ports = farm.ports
        redis = stack.enter_context(redis_server(context, "redis-watcher"))
        query = stack.enter_context(
            service(
                context,
                QUERY_MODULE,
                "query-watcher",
                query_env(
                    REDIS_URL=redis.url,
                    CACHE_TTL_STATUS="1",
                    CACHE_TTL_OFFLINE="1",
                    CACHE_TTL_PLAYERS="1",
                ),
                cpus=config.load_cpus,
            )
        )
        api = stack.enter_context(BotApiServer())
        empty_env = _watcher_env(api, query, context.work_dir / "watcher-empty.db", interval)
        rss_empty, startup = _idle_rss(context, empty_env, config.server_cpus)
        if startup is not None:
            context.observe("watcher_startup_s", startup)
        sqlite_path = context.work_dir / "watcher.db"
        sqlite_path.unlink(missing_ok=True)
        seeding = time.perf_counter()
        docs = asyncio.run(_watch_docs(api.token, ports))
        seed(sqlite_path, api.token, docs)
        result.details["seed_s"] = round(time.perf_counter() - seeding, 1)
        env = _watcher_env(api, query, sqlite_path, interval)

        with service(context, WATCHER_MODULE, "watcher-one", env, cpus=config.server_cpus) as one:
            _wait_known([one], servers, timeout=60)
            single = _measure(farm, query, [one], ports, interval, config.watch_intervals)

        redis_env = {**env, "REDIS_URL": redis.url}
        pair = _pair(context, "watcher-replica", redis_env, farm, query)

        # the same with the state store the chart runs: DynamoDB (Local, on the load CPU like the peers)
        dynamodb = stack.enter_context(DynamoDBLocal(context.log_path("dynamodb-watcher")))
        seeding = time.perf_counter()
        seed_dynamodb(dynamodb.env(), docs)
        result.details["dynamodb_seed_s"] = round(time.perf_counter() - seeding, 1)
        dynamodb_env = {
            **redis_env,
            **dynamodb.env(),
            "STATE_BACKEND": "dynamodb",
            "DYNAMODB_TABLE": DYNAMODB_TABLE,
        }
        dynamodb_pair = _pair(context, "watcher-dynamodb", dynamodb_env, farm, query)

    _report(result, context, single, pair, rss_empty)
    _report_dynamodb(result, dynamodb_pair, servers / interval)
    return result


def _pair(
    context: BenchContext, name: str, env: dict[str, str], farm: PingFarm, query: BenchService
) -> dict[str, Any]:
    """Two replicas with `env` (REDIS_URL set), both on the service CPU, measured, then stopped."""
    config = context.config
    with ExitStack() as stack:
        replicas = [
            stack.enter_context(service(context, WATCHER_MODULE, f"{name}{i}", env, cpus=config.server_cpus))
            for i in range(2)
        ]
        _wait_known(replicas, config.watch_servers, timeout=60)
        return _measure(
            farm, query, replicas, farm.ports, config.watch_interval_s, config.watch_replica_intervals
        )


def _report(
    result: BenchmarkResult,
    context: BenchContext,
    single: dict[str, Any],
    pair: dict[str, Any],
    rss_empty: float,
) -> None:
    config = context.config
    servers, interval = config.watch_servers, config.watch_interval_s
    one = single["schedule"]
    cpu_s = single["cpu_s"][0]
    seconds = single["end"] - single["start"]
    per_check_ms = 1000 * cpu_s / single["checks"] if single["checks"] else None
    result.details["single"] = single
    result.details["pair"] = pair
    result.add("servers", "watched servers", "servers", [float(servers)])
    result.add("interval", "WATCH_INTERVAL_SECONDS", "s", [interval])
    result.add(
        "on_time_share", "one replica: slots checked once and on schedule", "share", [one["on_time_share"]]
    )
    result.add(
        "checks_per_server_interval",
        "one replica: checks per server per interval (at the servers)",
        "checks",
        [single["checks"] / (servers * seconds / interval)],
    )
    for key in ("late", "missed", "doubled"):
        result.add(f"{key}_slots", f"one replica: slots {key}", "slots", [float(one[key])])
    if one["lateness_p50_s"] is not None:
        result.add(
            "lateness_p50", "one replica: check after its due time p50", "ms", [1000 * one["lateness_p50_s"]]
        )
        result.add(
            "lateness_p99", "one replica: check after its due time p99", "ms", [1000 * one["lateness_p99_s"]]
        )
        result.add(
            "lateness_max", "one replica: check after its due time max", "ms", [1000 * one["lateness_max_s"]]
        )
    result.add("watcher_cpu", "one replica: watcher CPU (cores busy)", "cores", [cpu_s / seconds])
    capacity = None
    if per_check_ms:
        result.add("cpu_per_check", "one replica: watcher CPU per check", "ms", [per_check_ms])
        capacity = interval * 1000 / per_check_ms
        result.add(
            "capacity",
            f"servers one core could check per {interval:g} s interval (interval / CPU per check)",
            "servers",
            [capacity],
        )
    query_cores = single["query_cpu_s"] / seconds
    result.add("query_cpu", "one replica: query service CPU (cores busy)", "cores", [query_cores])
    if single["checks"]:
        result.add(
            "query_cpu_per_check",
            "one replica: query service CPU per check",
            "ms",
            [1000 * single["query_cpu_s"] / single["checks"]],
        )
    rss_per_server = (single["rss_peak_bytes"][0] - rss_empty) / servers
    result.add("rss_empty", "watcher RSS with no watches", "MiB", [rss_empty / MIB])
    result.add(
        "rss_full", f"watcher RSS with {servers:,} watches (peak)", "MiB", [single["rss_peak_bytes"][0] / MIB]
    )
    result.add("rss_per_server", "watcher memory per watched server", "KiB", [rss_per_server / 1024])

    _pair_figures(result, "pair", "two replicas", pair)
    two = pair["schedule"]
    kept = one["on_time_share"] == 1.0
    result.targets.append(
        Target(
            f"watched servers one watcher core keeps on schedule at WATCH_INTERVAL_SECONDS={interval:g} "
            f"(every slot checked once, within {ON_TIME:.0%} of the interval)",
            f">= {GOAL_SERVERS * interval / 60:,.0f}" if interval != 60 else f">= {GOAL_SERVERS:,}",
            float(one["servers_on_schedule"]),
            "servers",
            kept and servers * 60 / interval >= GOAL_SERVERS,
        )
    )
    result.targets.append(
        Target(
            "two replicas (one SQLite file): slots checked exactly once",
            "1",
            two["on_time_share"],
            "share",
            two["doubled"] == 0 and two["missed"] == 0,
        )
    )
    _notes(result, servers, interval, one, two, (cpu_s / seconds, query_cores), per_check_ms)
    _pair_notes(result, two, pair["counts"])
    result.charts = [
        Chart(
            "Watcher: slots on schedule",
            "share",
            ["on_time_share", "pair_on_time_share", "dynamodb_pair_on_time_share"],
        ),
        Chart(
            "Watcher: CPU per check",
            "ms",
            ["cpu_per_check", "pair_cpu_per_check", "dynamodb_pair_cpu_per_check"],
        ),
    ]


def _report_dynamodb(result: BenchmarkResult, measured: dict[str, Any], due_per_s: float) -> None:
    result.details["dynamodb_pair"] = measured
    _pair_figures(result, "dynamodb_pair", "two replicas on DynamoDB", measured)
    two = measured["schedule"]
    result.targets.append(
        Target(
            "two replicas (DynamoDB, as the chart runs them): slots checked exactly once",
            "1",
            two["on_time_share"],
            "share",
            two["doubled"] == 0 and two["missed"] == 0,
        )
    )
    result.notes.append(dynamodb_note(measured, due_per_s, result.details.get("pair")))


CPU_BOUND_CORES = 0.9
"""Cores busy (of the one the two replicas share) from which the CPU is what bounds them."""


def _cpu_per_check_ms(measured: dict[str, Any]) -> float:
    return 1000 * sum(measured["cpu_s"]) / measured["checks"] if measured["checks"] else 0.0


def dynamodb_note(measured: dict[str, Any], due_per_s: float, sqlite: dict[str, Any] | None) -> str:
    """How the two replicas on DynamoDB did, from their CPU and their own check counters."""
    two = measured["schedule"]
    counted = measured["counts"]
    skipped = sum(int(c.get("store_failed", 0.0)) for c in counted)
    unanswered = sum(int(c.get("query_unavailable", 0.0)) for c in counted)
    cores = sum(measured["cpu_s"]) / max(measured["end"] - measured["start"], 1e-9)
    per_check = _cpu_per_check_ms(measured)
    sqlite_text = f" against {_cpu_per_check_ms(sqlite):.2f} ms on SQLite" if sqlite else ""
    cost = (
        f"{per_check:.2f} ms of watcher CPU per check{sqlite_text} (the store's requests per check: "
        "its share of its tick's BatchGetItem of the watches and check records, the history sample's "
        "UpdateItem, and the record's compare-and-set PutItem only when the check changed it; "
        f"{due_per_s:,.0f} checks due a second)"
    )
    if not (two["missed"] or two["late"] or two["doubled"]):
        return (
            "Two replicas on DynamoDB Local checked every slot once and on schedule, pinned to one CPU "
            f"together and keeping {cores:.2f} of it busy: {cost}; {skipped:,} checks skipped because the "
            f"state store failed (`store_failed`), {unanswered:,} without a verdict (`query_unavailable`)."
        )
    lateness = two["lateness_p50_s"]
    if cores >= CPU_BOUND_CORES:
        bound = "the CPU, all busy, not the coordination, bounds the schedule"
    elif skipped:
        bound = (
            "the CPU was not all busy: the slots went to the state store (its failed calls, "
            "`store_failed`; see the replicas' logs)"
        )
    else:
        bound = "the CPU was not all busy: the replicas waited on the store and the query service"
    return (
        f"Two replicas on DynamoDB Local: {two['missed']:,} slots missed, {two['late']:,} late "
        f"(p50 {0.0 if lateness is None else lateness:.1f} s after the due time), {two['doubled']:,} "
        f"doubled; {skipped:,} checks skipped because the state store failed (`store_failed`), "
        f"{unanswered:,} past the query service's deadline (`query_unavailable`, no verdict). The two "
        f"replicas, pinned to one CPU, kept {cores:.2f} of it busy: {cost}. Here {bound}."
    )


def _pair_figures(result: BenchmarkResult, key: str, label: str, pair: dict[str, Any]) -> None:
    """The figures of one two-replica measurement (`key`: their names' prefix)."""
    two = pair["schedule"]
    result.add(
        f"{key}_on_time_share",
        f"{label}: slots checked once and on schedule",
        "share",
        [two["on_time_share"]],
    )
    result.add(f"{key}_doubled", f"{label}: slots checked twice or more", "slots", [float(two["doubled"])])
    result.add(f"{key}_missed", f"{label}: slots missed", "slots", [float(two["missed"])])
    result.add(
        f"{key}_store_failed",
        f"{label}: checks skipped because the state store failed (both replicas)",
        "checks",
        [sum(c.get("store_failed", 0.0) for c in pair["counts"])],
    )
    done = [sum(c.get(k, 0.0) for k in ("up", "failed")) for c in pair["counts"]]
    if sum(done):
        result.add(
            f"{key}_split",
            f"{label}: share of the checks done by the first",
            "share",
            [done[0] / sum(done)],
        )
    if pair["checks"]:
        result.add(
            f"{key}_cpu_per_check",
            f"{label}: watcher CPU per check (both replicas' CPU / checks)",
            "ms",
            [_cpu_per_check_ms(pair)],
        )


def _notes(  # noqa: PLR0917 - what the notes say
    result: BenchmarkResult,
    servers: int,
    interval: float,
    one: dict[str, Any],
    two: dict[str, Any],
    cores: tuple[float, float],
    per_check_ms: float | None,
) -> None:
    """The notes under the figures: what was measured, and what bounded it."""
    watcher_cores, query_cores = cores
    result.notes.append(PROFILE_NOTE)
    result.notes.append(
        f"Measured: {servers:,} servers with the one replica: {one['on_time']:,} of {one['slots']:,} "
        f"slots on schedule, {one['late']} late, {one['missed']} missed, {one['doubled']} checked twice; "
        f"{one['servers_on_schedule']:,} servers had every slot on schedule (the target's measured figure)."
    )
    if interval != 60:
        result.notes.append(
            f"A quick run: WATCH_INTERVAL_SECONDS={interval:g} with {servers:,} servers is the same rate of "
            f"checks per second as {servers * 60 / interval:,.0f} servers at 60 s; the goal is scaled alike."
        )
    if query_cores > QUERY_SATURATED:
        result.notes.append(
            f"The query service (one process, one core) was busy {query_cores:.2f} of a core while the "
            "watcher was measured: the checks per second it could answer, not the watcher, bounded how "
            "many slots were on schedule (in production it scales out with replicas; here it shares its "
            "core with the farm and Redis)."
        )
    if one["on_time_share"] < 1.0 and watcher_cores < QUERY_SATURATED and query_cores < QUERY_SATURATED:
        result.notes.append(
            f"Neither the watcher ({watcher_cores:.2f} of a core) nor the query service "
            f"({query_cores:.2f}) was busy a whole core while the checks fell behind: they waited for "
            "CPU time the machine's other processes took (see the line above the method), so the "
            "schedule figures measure the machine, and the CPU per check is the watcher's own figure."
        )
    if two["doubled"]:
        result.notes.append(
            "A check more than an interval after its due time counts in the next slot: lateness shows "
            "as a doubled slot next to a missed one (the slot claims in Redis let one replica check "
            "a server per interval)."
        )
    if per_check_ms:
        result.notes.append(
            f"From CPU alone: the watcher spends {per_check_ms:.2f} ms of CPU per check, so one core "
            f"could check about {interval * 1000 / per_check_ms:,.0f} servers per {interval:g} s interval "
            "if nothing else limited it."
        )


def _pair_notes(result: BenchmarkResult, two: dict[str, Any], counts: list[dict[str, float]]) -> None:
    """Why the two replicas' slots went as they did, from each replica's own check counters."""
    skipped = [int(c.get("store_failed", 0.0)) for c in counts]
    result.notes.append(
        "The first two replicas share one SQLite file (the chart's share DynamoDB: the last rows). "
        "Until 2026-12-01 they missed slots (3,107 of 10,000 in the full run): "
        "a write on a connection where another task's read was still open failed at once with "
        "`database is locked` whenever the other replica held the write lock (SQLite gives such a "
        "transaction no busy timeout), three such failures opened the state store's breaker, and the "
        "watch reads it then refused skipped their checks. The store now runs one operation at a time "
        "per connection, reads in one step and writes of several statements as BEGIN IMMEDIATE "
        "(docs/bot-service.md, the SQLite backend)."
    )
    if two["missed"]:
        why = (
            'the watch reads the state store failed (`outcome="store_failed"`) account for up to '
            f"{sum(skipped):,} of them"
            if sum(skipped)
            else 'the state store failed no watch read (`outcome="store_failed"` 0): the schedule or '
            "the status calls missed them"
        )
        result.notes.append(f"Two replicas: {two['missed']:,} slots missed; {why}.")
