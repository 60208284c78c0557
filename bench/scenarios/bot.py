"""4. Bot throughput: webhook updates per second and latency from the POST to the reply at the Bot API."""

from __future__ import annotations

import asyncio
import secrets
import time
from contextlib import ExitStack
from typing import TYPE_CHECKING

import httpx

from bench.botload import TimedBotApiServer, drive
from bench.core import BenchmarkResult, Chart, Target
from bench.procstat import RssSampler, tree_cpu_seconds
from bench.stack import BOT_MODULE, QUERY_MODULE, java_peer, query_env, require_module, service
from bench.stats import percentile

if TYPE_CHECKING:
    from bench.core import BenchContext
    from bench.launch import BenchService

TITLE = "4. Bot throughput (webhook)"
TARGET_UPDATES_PER_S = 300.0
TARGET_P50_MS = 15.0
PACED_INTERVAL_S = 0.1
"""The paced single user sends one update per 100 ms: 10/s, well under Telegram's 30 messages/s."""
MIB = 1024 * 1024


def bot_env(api: TimedBotApiServer, query_url: str, secret: str) -> dict[str, str]:
    return {
        "TELEGRAM_BOT_TOKEN": api.token,
        "TELEGRAM_API_BASE_URL": api.base_url,
        "BOT_MODE": "webhook",
        "WEBHOOK_SECRET": secret,
        "QUERY_SERVICE_URL": query_url,
        "STATE_BACKEND": "memory",
        "LOG_LEVEL": "WARNING",
    }


def _method(context: BenchContext) -> str:
    config = context.config
    return (
        f"{config.bot_concurrency} virtual users post `/status 127.0.0.1:<peer>` updates to one bot "
        "process (BOT_MODE=webhook, STATE_BACKEND=memory, with WEBHOOK_SECRET), each update from a new "
        "private chat (as from many users: the bot limits how often one chat may ask), each user waiting "
        f"for its reply before the next (a closed loop), for {config.bot_duration_s:g} s per run after a "
        f"{config.wrk_warmup_s:g} s warm-up. Latency runs from the POST to the moment the bot's "
        "sendMessage arrives at the Bot API test server (`mcstatbot_testkit.telegram`, in the load "
        "generator's process). The query service answers from its in-process cache (filled before the "
        "runs). The bot is pinned to one CPU; the load generator, the Bot API test server, the query "
        "service and the peer share the other. Bot CPU = the bot's CPU seconds over the run's wall time "
        "(1.0 = one core busy); the other core's CPU is the load generator's process (with the Bot API test "
        "server) plus the query service's. Two bot processes are measured, interleaved: "
        "`python -m mcstatbot_bot` as shipped (its send budget keeps Telegram's limit "
        "of 30 messages per second), and `python -m bench.bot_unlimited`, the same bot with the budget's "
        "windows off (a benchmark-only variant, see the notes); then each with one "
        f"virtual user: the shipped bot paced at one update per {PACED_INTERVAL_S * 1000:g} ms (below "
        "Telegram's limit, so the latency is the bot's own), the unlimited one back to back."
    )


SINGLE = "single"
"""The shipped bot, one virtual user, one update per PACED_INTERVAL_S: its latency, no queueing."""
SINGLE_UNLIMITED = "single_unlimited"
"""The unlimited bot, one virtual user, back to back: latency and serial rate without the limiter."""
VARIANTS = {
    "shipped": (BOT_MODULE, "as shipped (30 msg/s limit)"),
    "unlimited": ("bench.bot_unlimited", "rate limiter off (bench only)"),
}
SINGLES = {
    SINGLE: ("shipped", f"as shipped, one update per {PACED_INTERVAL_S * 1000:g} ms", PACED_INTERVAL_S),
    SINGLE_UNLIMITED: ("unlimited", "rate limiter off, one update at a time", 0.0),
}


def _run_once(
    context: BenchContext,
    api: TimedBotApiServer,
    bot: BenchService,
    secret: str,
    address: str,
    *,
    concurrency: int,
    query_pid: int,
    interval_s: float = 0.0,
) -> tuple[dict[str, float], str, int]:
    config = context.config
    cpu_before = tree_cpu_seconds(bot.pid)
    query_before = tree_cpu_seconds(query_pid)
    own_before = time.process_time()
    with RssSampler(bot.pid) as sampler:
        load = asyncio.run(
            drive(
                api,
                f"{bot.url}/telegram/webhook",
                secret,
                address,
                concurrency=concurrency,
                duration_s=config.bot_duration_s,
                warmup_s=config.wrk_warmup_s,
                interval_s=interval_s,
            )
        )
    cpu = tree_cpu_seconds(bot.pid) - cpu_before
    own_cpu = time.process_time() - own_before
    query_cpu = tree_cpu_seconds(query_pid) - query_before
    wall = config.bot_duration_s + config.wrk_warmup_s
    if not load.latencies_ms:
        raise RuntimeError(
            f"no reply arrived from the bot ({load.errors} errors, {load.timeouts} timeouts):\n"
            f"{bot.log_text()[-3000:]}"
        )
    figures = {
        "updates_per_s": load.updates_per_s,
        "p50_ms": percentile(load.latencies_ms, 50),
        "p99_ms": percentile(load.latencies_ms, 99),
        "bot_cpu": cpu / wall,
        "cpu_ms_per_update": cpu * 1000 / max(load.all_replies, 1),
        "driver_cpu": own_cpu / wall,
        "load_side_cpu": (own_cpu + query_cpu) / wall,
        "errors": float(load.errors),
        "timeouts": float(load.timeouts),
        "replies": float(len(load.latencies_ms)),
    }
    return figures, load.sample_reply, sampler.peak


def run(context: BenchContext) -> BenchmarkResult:
    config = context.config
    require_module(QUERY_MODULE)
    require_module(BOT_MODULE)
    result = BenchmarkResult("bot_throughput", TITLE, method=_method(context))
    secret = secrets.token_urlsafe(16)
    runs: dict[str, list[dict[str, float]]] = {key: [] for key in [*VARIANTS, *SINGLES]}
    with ExitStack() as stack:
        peer = stack.enter_context(java_peer(context))
        ttl = {"CACHE_TTL_STATUS": "3600", "CACHE_TTL_PLAYERS": "3600", "CACHE_TTL_OFFLINE": "3600"}
        query = stack.enter_context(
            service(context, QUERY_MODULE, "query-for-bot", query_env(**ttl), cpus=config.load_cpus)
        )
        httpx.get(f"{query.url}/api/v1/status/{peer.address}", timeout=30).raise_for_status()
        api = stack.enter_context(TimedBotApiServer())
        bots = {
            key: stack.enter_context(
                service(
                    context, module, f"bot-{key}", bot_env(api, query.url, secret), cpus=config.server_cpus
                )
            )
            for key, (module, _) in VARIANTS.items()
        }
        sample = ""
        for _ in range(config.runs):
            for key, bot in bots.items():
                figures, reply, peak_rss = _run_once(
                    context,
                    api,
                    bot,
                    secret,
                    peer.address,
                    concurrency=config.bot_concurrency,
                    query_pid=query.pid,
                )
                runs[key].append(figures)
                sample = sample or reply
                if key == "shipped":
                    context.observe("bot_rss_load_mib", peak_rss / MIB)
            for key, (variant, _, interval) in SINGLES.items():
                figures, _, _ = _run_once(
                    context,
                    api,
                    bots[variant],
                    secret,
                    peer.address,
                    concurrency=1,
                    query_pid=query.pid,
                    interval_s=interval,
                )
                runs[key].append(figures)
    result.details["runs"] = runs
    result.details["sample_reply"] = sample
    _figures(result, runs)
    return result


def _figures(result: BenchmarkResult, runs: dict[str, list[dict[str, float]]]) -> None:
    for key, (_, label) in VARIANTS.items():
        series = runs[key]
        result.add(
            f"{key}_updates_per_s", f"{label}: updates/s", "updates/s", [r["updates_per_s"] for r in series]
        )
        result.add(f"{key}_p50_ms", f"{label}: POST to reply p50", "ms", [r["p50_ms"] for r in series])
        result.add(f"{key}_p99_ms", f"{label}: POST to reply p99", "ms", [r["p99_ms"] for r in series])
        result.add(
            f"{key}_bot_cpu", f"{label}: bot CPU (cores busy)", "cores", [r["bot_cpu"] for r in series]
        )
        result.add(
            f"{key}_cpu_ms_per_update",
            f"{label}: bot CPU per update",
            "ms",
            [r["cpu_ms_per_update"] for r in series],
        )
        result.add(
            f"{key}_capacity_per_core",
            f"{label}: updates/s one core could do (1000 / CPU ms per update)",
            "updates/s",
            [1000 / r["cpu_ms_per_update"] for r in series if r["cpu_ms_per_update"] > 0],
        )
        result.add(
            f"{key}_driver_cpu",
            f"{label}: load generator + Bot API test server CPU",
            "cores",
            [r["driver_cpu"] for r in series],
        )
        result.add(
            f"{key}_load_side_cpu",
            f"{label}: the other core (load generator, Bot API test server, query service) CPU",
            "cores",
            [r["load_side_cpu"] for r in series],
        )
        failures = sum(r["errors"] + r["timeouts"] for r in series)
        if failures:
            result.notes.append(f"{label}: {failures:.0f} updates got an error or no reply within 10 s.")
    for key, (_, label, _) in SINGLES.items():
        series = runs[key]
        result.add(
            f"{key}_updates_per_s", f"{label}: updates/s", "updates/s", [r["updates_per_s"] for r in series]
        )
        result.add(f"{key}_p50_ms", f"{label}: p50", "ms", [r["p50_ms"] for r in series])
        result.add(f"{key}_p99_ms", f"{label}: p99", "ms", [r["p99_ms"] for r in series])
        result.add(
            f"{key}_cpu_ms_per_update",
            f"{label}: bot CPU per update",
            "ms",
            [r["cpu_ms_per_update"] for r in series],
        )
    for key, (_, label) in VARIANTS.items():
        rate = result.median(f"{key}_updates_per_s")
        result.targets.append(
            Target(
                f"{label}: webhook updates/s, one bot process on one core",
                f">= {TARGET_UPDATES_PER_S:g}",
                rate,
                "updates/s",
                None if rate is None else rate >= TARGET_UPDATES_PER_S,
            )
        )
    capacity = result.median("unlimited_capacity_per_core")
    result.targets.append(
        Target(
            "rate limiter off: updates/s one core could do (1000 / bot CPU ms per update)",
            f">= {TARGET_UPDATES_PER_S:g}",
            capacity,
            "updates/s",
            None if capacity is None else capacity >= TARGET_UPDATES_PER_S,
        )
    )
    p50_targets = [(key, label) for key, (_, label, _) in SINGLES.items()]
    p50_targets += [(key, f"{label}, under load") for key, (_, label) in VARIANTS.items()]
    for key, label in p50_targets:
        p50 = result.median(f"{key}_p50_ms")
        result.targets.append(
            Target(
                f"POST to reply p50, {label}",
                f"< {TARGET_P50_MS:g} ms",
                p50,
                "ms",
                None if p50 is None else p50 < TARGET_P50_MS,
            )
        )
    result.notes.append(
        "As shipped, the bot keeps Telegram's limit of about 30 messages per second in all "
        "(its send budget, mcstatbot_bot.send_budget; Telegram answers 429 beyond it), so its webhook rate "
        "for updates that each send a message stays at 30 per second however fast the bot is: that "
        "figure is Telegram's limit, not the bot's capacity. The rate-limiter-off variant "
        "(`bench/bot_unlimited.py`: the same bot with the limiter's overall and group limits set to 0; "
        "not a production setting) measures what one bot process on one core does when Telegram's limit "
        "is not what stops it; the bot CPU per update gives the capacity of one core independently "
        "(1000 / ms per update = updates/s per core). When the bot's CPU is well under 1 while the other "
        "core is near 1, the load side (load generator, Bot API test server, query service) bounds the "
        "measured rate, not the bot."
    )
    result.notes.append(
        "Under load the latency is mostly queueing: with N users in a closed loop, p50 is about "
        "N / throughput (Little's law); as shipped, each update waits for its turn in the 30 per second. "
        "The one-update-at-a-time figures show the bot's own latency; the shipped bot's single user is paced "
        "below Telegram's limit (back to back, one user alone would exceed 30 per second and queue)."
    )
    keys = [*VARIANTS, *SINGLES]
    result.charts = [
        Chart("Bot: webhook updates per second", "updates/s", [f"{k}_updates_per_s" for k in keys]),
        Chart(
            "Bot: POST to reply latency", "ms", [f"{k}_p50_ms" for k in keys] + [f"{k}_p99_ms" for k in keys]
        ),
    ]
