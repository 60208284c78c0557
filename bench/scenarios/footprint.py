"""5. Footprint: RSS idle and under load, image sizes (when a Docker daemon answers), start-up time."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import time
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from bench.botload import TimedBotApiServer
from bench.core import BenchmarkResult, BenchmarkSkippedError, Chart
from bench.procstat import tree_rss_bytes
from bench.scenarios.bot import bot_env
from bench.stack import BOT_MODULE, QUERY_MODULE, query_env, redis_server, require_module, service

if TYPE_CHECKING:
    from bench.core import BenchContext

TITLE = "5. Footprint"
MIB = 1024 * 1024
IMAGE_PREFIX = "mcstatbot"


def image_sizes() -> tuple[dict[str, float], str | None]:
    """Sizes (MiB) of local images whose repository name contains "mcstatbot", or why there are none."""
    if shutil.which("docker") is None:
        return {}, "Docker is not installed: image sizes not measured."
    try:
        listing = subprocess.run(
            ["docker", "image", "ls", "--format", "{{json .}}"],
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {}, "The Docker daemon did not answer: image sizes not measured."
    if listing.returncode != 0:
        return {}, f"No Docker daemon reachable ({listing.stderr.strip()[:160]}): image sizes not measured."
    sizes: dict[str, float] = {}
    for line in listing.stdout.splitlines():
        image: dict[str, Any] = json.loads(line)
        name = f"{image.get('Repository')}:{image.get('Tag')}"
        if IMAGE_PREFIX in name:
            inspect = subprocess.run(
                ["docker", "image", "inspect", "--format", "{{.Size}}", str(image.get("ID"))],
                capture_output=True,
                text=True,
                timeout=15,
                check=False,
            )
            if inspect.returncode == 0 and inspect.stdout.strip().isdigit():
                sizes[name] = int(inspect.stdout.strip()) / MIB
    if not sizes:
        return (
            {},
            "The Docker daemon has no mcstatbot images (build them with the chart's image build first).",
        )
    return sizes, None


def _idle_rss_mib(pid: int, idle_s: float) -> float:
    time.sleep(idle_s)
    return tree_rss_bytes(pid) / MIB


def run(context: BenchContext) -> BenchmarkResult:
    config = context.config
    require_module(QUERY_MODULE)
    result = BenchmarkResult(
        "footprint",
        TITLE,
        method=(
            f"Each service is started {config.startup_runs} times (`python -m <module>` as in the image, the "
            "query service with Redis, the bot with STATE_BACKEND=memory in webhook mode); start-up is the "
            "time from spawning the process to the first 200 from `GET /ready` (polled every 10 ms). Idle "
            f"RSS (process and children) is read {config.footprint_idle_s:g} s after ready, before any "
            "request. "
            "RSS under load is the peak sampled every 100 ms during the cached-status runs (query service, "
            "Redis cache) and the bot-throughput runs (bot). Start-up times of the services started by the "
            "other benchmarks are included."
        ),
    )
    query_idle: list[float] = []
    bot_idle: list[float] = []
    bot_available = True
    try:
        require_module(BOT_MODULE)
    except BenchmarkSkippedError as missing:
        bot_available = False
        result.notes.append(f"Bot not measured: {missing}.")
    with ExitStack() as stack:
        redis = stack.enter_context(redis_server(context))
        api = stack.enter_context(TimedBotApiServer()) if bot_available else None
        for index in range(config.startup_runs):
            with service(
                context,
                QUERY_MODULE,
                f"query-footprint{index}",
                query_env(REDIS_URL=redis.url),
                cpus=config.server_cpus,
            ) as query:
                query_idle.append(_idle_rss_mib(query.pid, config.footprint_idle_s))
                if api is not None:
                    env = bot_env(api, query.url, secrets.token_urlsafe(16))
                    with service(
                        context, BOT_MODULE, f"bot-footprint{index}", env, cpus=config.server_cpus
                    ) as bot:
                        bot_idle.append(_idle_rss_mib(bot.pid, config.footprint_idle_s))
    _figures(context, result, query_idle, bot_idle, bot_available=bot_available)
    sizes, why_not = image_sizes()
    result.details["image_sizes_mib"] = sizes
    for name, size in sizes.items():
        result.add(f"image_{name}", f"image {name}", "MiB", [size])
    if why_not:
        result.notes.append(why_not)
    result.charts = [
        Chart("Memory (RSS)", "MiB", [k for k in result.figures if "rss" in k]),
        Chart("Start-up to /ready", "s", [k for k in result.figures if "startup" in k]),
    ]
    return result


def _figures(
    context: BenchContext,
    result: BenchmarkResult,
    query_idle: list[float],
    bot_idle: list[float],
    *,
    bot_available: bool,
) -> None:
    observed = context.observations
    result.add(
        "query_startup_s", "query service start-up to /ready", "s", observed.get("query_startup_s", [])
    )
    if bot_available:
        result.add("bot_startup_s", "bot start-up to /ready", "s", observed.get("bot_startup_s", []))
    result.add("query_rss_idle_mib", "query service RSS idle", "MiB", query_idle)
    result.add(
        "query_rss_load_mib", "query service RSS under load", "MiB", observed.get("query_rss_load_mib", [])
    )
    if bot_idle:
        result.add("bot_rss_idle_mib", "bot RSS idle", "MiB", bot_idle)
    if observed.get("bot_rss_load_mib"):
        result.add("bot_rss_load_mib", "bot RSS under load", "MiB", observed["bot_rss_load_mib"])
    if observed.get("baseline_startup_s"):
        result.add(
            "baseline_startup_s",
            "plain FastAPI app start-up (reference)",
            "s",
            observed["baseline_startup_s"],
        )
    for key in [k for k, f in result.figures.items() if not f.values]:
        del result.figures[key]
        result.notes.append(f"{key}: not measured (the benchmark that measures it did not run).")
