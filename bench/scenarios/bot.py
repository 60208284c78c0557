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
        "(1.0 = one core busy). Two bot processes are measured, interleaved: `python -m mcstatbot_bot` as "
        "shipped, and `python -m bench.bot_unlimited` (see the note); then the shipped bot again with one "
        "virtual user."
    )


SINGLE = "single"
"""The shipped bot with one virtual user: latency without queueing."""
VARIANTS = {
    "shipped": (BOT_MODULE, "as shipped"),
    "unlimited": ("bench.bot_unlimited", "flood limit lifted"),
}


def _run_once(
    context: BenchContext,
    api: TimedBotApiServer,
    bot: BenchService,
    secret: str,
    address: str,
    *,
    concurrency: int,
) -> tuple[dict[str, float], str, int]:
    config = context.config
    cpu_before = tree_cpu_seconds(bot.pid)
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
            )
        )
    cpu = tree_cpu_seconds(bot.pid) - cpu_before
    own_cpu = time.process_time() - own_before
    if not load.latencies_ms:
        raise RuntimeError(
            f"no reply arrived from the bot ({load.errors} errors, {load.timeouts} timeouts):\n"
            f"{bot.log_text()[-3000:]}"
        )
    figures = {
        "updates_per_s": load.updates_per_s,
        "p50_ms": percentile(load.latencies_ms, 50),
        "p99_ms": percentile(load.latencies_ms, 99),
        "bot_cpu": cpu / (config.bot_duration_s + config.wrk_warmup_s),
        "cpu_ms_per_update": cpu * 1000 / max(load.all_replies, 1),
        "driver_cpu": own_cpu / (config.bot_duration_s + config.wrk_warmup_s),
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
    runs: dict[str, list[dict[str, float]]] = {key: [] for key in [*VARIANTS, SINGLE]}
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
                    context, api, bot, secret, peer.address, concurrency=config.bot_concurrency
                )
                runs[key].append(figures)
                sample = sample or reply
                if key == "shipped":
                    context.observe("bot_rss_load_mib", peak_rss / MIB)
            figures, _, _ = _run_once(context, api, bots["shipped"], secret, peer.address, concurrency=1)
            runs[SINGLE].append(figures)
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
        failures = sum(r["errors"] + r["timeouts"] for r in series)
        if failures:
            result.notes.append(f"{label}: {failures:.0f} updates got an error or no reply within 10 s.")
    single = runs[SINGLE]
    result.add(
        "single_updates_per_s",
        "as shipped, one update at a time: updates/s",
        "updates/s",
        [r["updates_per_s"] for r in single],
    )
    result.add("single_p50_ms", "as shipped, one update at a time: p50", "ms", [r["p50_ms"] for r in single])
    result.add("single_p99_ms", "as shipped, one update at a time: p99", "ms", [r["p99_ms"] for r in single])
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
    for key, label in (
        ("single", "as shipped, one update at a time"),
        ("shipped", "as shipped, under load"),
        ("unlimited", "flood limit lifted, under load"),
    ):
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
        "The bot as shipped keeps Telegram's flood limits with python-telegram-bot's AIORateLimiter "
        "(30 messages per second in all, as Telegram asks of a bot). The second variant "
        "(`bench/bot_unlimited.py`: the same bot with that limiter's overall and group limits set to 0) "
        "shows whether that limiter is what bounds the throughput; the CPU per update gives the capacity "
        "of one core independently (1000 / ms per update = updates/s per core). When neither the bot "
        "(bot CPU well under 1) nor the load generator (its CPU well under 1) is saturated, the bound is "
        "waiting inside the bot (its update pipeline, calls to the query service and the Bot API)."
    )
    result.notes.append(
        "Under load the latency is mostly queueing: with N users in a closed loop, p50 is about "
        "N / throughput (Little's law). The one-update-at-a-time figures show the bot's own latency."
    )
    keys = [*VARIANTS, SINGLE]
    result.charts = [
        Chart("Bot: webhook updates per second", "updates/s", [f"{k}_updates_per_s" for k in keys]),
        Chart(
            "Bot: POST to reply latency", "ms", [f"{k}_p50_ms" for k in keys] + [f"{k}_p99_ms" for k in keys]
        ),
    ]
