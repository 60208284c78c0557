"""4. Bot throughput: webhook updates per second and latency from the POST to the reply at the Bot API."""

from __future__ import annotations

import asyncio
import secrets
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
        f"{config.bot_concurrency} virtual users, each in its own private chat, post `/status "
        "127.0.0.1:<peer>` updates to one bot process (`python -m mcstatbot_bot`, BOT_MODE=webhook, "
        "STATE_BACKEND=memory, with WEBHOOK_SECRET) one at a time, each waiting for its reply before the "
        f"next (a closed loop), for {config.bot_duration_s:g} s per run after a warm-up. Latency runs from "
        "the POST to the moment the bot's sendMessage (or edit) arrives at the Bot API test server "
        "(`mcstatbot_testkit.telegram`, in the load generator's process). The query service answers "
        "from its in-process cache (filled before the runs). The bot is pinned to one CPU; the load "
        "generator, the Bot API test server, the query service and the peer share the other. "
        "Bot CPU = the bot's CPU seconds over the run's wall time (1.0 = one core saturated)."
    )


def _run_once(
    context: BenchContext, api: TimedBotApiServer, bot: BenchService, secret: str, address: str
) -> tuple[dict[str, float], str]:
    config = context.config
    cpu_before = tree_cpu_seconds(bot.pid)
    with RssSampler(bot.pid) as sampler:
        load = asyncio.run(
            drive(
                api,
                f"{bot.url}/telegram/webhook",
                secret,
                address,
                concurrency=config.bot_concurrency,
                duration_s=config.bot_duration_s,
                warmup_s=config.wrk_warmup_s,
            )
        )
    cpu = tree_cpu_seconds(bot.pid) - cpu_before
    if not load.latencies_ms:
        raise RuntimeError(
            f"no reply arrived from the bot ({load.errors} errors, {load.timeouts} timeouts):\n"
            f"{bot.log_text()[-3000:]}"
        )
    context.observe("bot_rss_load_mib", sampler.peak / MIB)
    figures = {
        "updates_per_s": load.updates_per_s,
        "p50_ms": percentile(load.latencies_ms, 50),
        "p99_ms": percentile(load.latencies_ms, 99),
        "bot_cpu": cpu / (config.bot_duration_s + config.wrk_warmup_s),
        "errors": float(load.errors),
        "timeouts": float(load.timeouts),
        "replies": float(len(load.latencies_ms)),
    }
    return figures, load.sample_reply


def run(context: BenchContext) -> BenchmarkResult:
    config = context.config
    require_module(QUERY_MODULE)
    require_module(BOT_MODULE)
    result = BenchmarkResult("bot_throughput", TITLE, method=_method(context))
    secret = secrets.token_urlsafe(16)
    runs: list[dict[str, float]] = []
    with ExitStack() as stack:
        peer = stack.enter_context(java_peer(context))
        ttl = {"CACHE_TTL_STATUS": "3600", "CACHE_TTL_PLAYERS": "3600", "CACHE_TTL_OFFLINE": "3600"}
        query = stack.enter_context(
            service(context, QUERY_MODULE, "query-for-bot", query_env(**ttl), cpus=config.load_cpus)
        )
        httpx.get(f"{query.url}/api/v1/status/{peer.address}", timeout=30).raise_for_status()
        api = stack.enter_context(TimedBotApiServer())
        bot = stack.enter_context(
            service(context, BOT_MODULE, "bot", bot_env(api, query.url, secret), cpus=config.server_cpus)
        )
        sample = ""
        for _ in range(config.runs):
            figures, reply = _run_once(context, api, bot, secret, peer.address)
            runs.append(figures)
            sample = sample or reply
    result.details["runs"] = runs
    result.details["sample_reply"] = sample
    result.add("updates_per_s", "updates per second", "updates/s", [r["updates_per_s"] for r in runs])
    result.add("p50_ms", "POST to reply p50", "ms", [r["p50_ms"] for r in runs])
    result.add("p99_ms", "POST to reply p99", "ms", [r["p99_ms"] for r in runs])
    result.add("bot_cpu", "bot CPU (cores busy)", "cores", [r["bot_cpu"] for r in runs])
    failures = sum(r["errors"] + r["timeouts"] for r in runs)
    if failures:
        result.notes.append(f"{failures:.0f} updates got an error or no reply within 10 s over all runs.")
    rate, p50 = result.median("updates_per_s"), result.median("p50_ms")
    result.targets += [
        Target(
            "webhook updates per second, one bot process on one core",
            f">= {TARGET_UPDATES_PER_S:g}",
            rate,
            "updates/s",
            None if rate is None else rate >= TARGET_UPDATES_PER_S,
        ),
        Target(
            "POST to reply p50",
            f"< {TARGET_P50_MS:g} ms",
            p50,
            "ms",
            None if p50 is None else p50 < TARGET_P50_MS,
        ),
    ]
    result.charts = [
        Chart("Bot: webhook updates per second", "updates/s", ["updates_per_s"]),
        Chart("Bot: POST to reply latency", "ms", ["p50_ms", "p99_ms"]),
    ]
    return result
