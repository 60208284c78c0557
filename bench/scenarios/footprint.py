"""5. Footprint: RSS idle and under load, image sizes (when a Docker daemon answers), start-up time."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcstatbot_testkit.dynamodb import DynamoDBLocal

from bench.botload import TimedBotApiServer
from bench.core import BenchmarkResult, BenchmarkSkippedError, Chart, Target
from bench.launch import REPO_ROOT
from bench.procstat import descendants, rss_bytes
from bench.scenarios.bot import bot_env
from bench.stack import BOT_MODULE, QUERY_MODULE, query_env, redis_server, require_module, service

if TYPE_CHECKING:
    from bench.core import BenchContext

TITLE = "5. Footprint"
MIB = 1024 * 1024
IMAGE_PREFIX = "mcstatbot"
TARGET_IDLE_MIB = 75
"""Idle RSS goal per service (issue: each service's idle RSS in the image, 75 MB or less)."""


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


def _python_pid(pid: int) -> int:
    """The service's own Python process: `pid` or the first Python below it (past `taskset`, `uv run`)."""
    for each in descendants(pid):
        try:
            exe = Path(f"/proc/{each}/exe").readlink().name
        except OSError:
            continue
        if exe.startswith("python"):
            return each
    raise RuntimeError(f"no Python process at or below pid {pid}")


def _idle_rss_mib(pid: int, idle_s: float) -> float:
    time.sleep(idle_s)
    return rss_bytes(_python_pid(pid)) / MIB


def _image_python(context: BenchContext, app: str) -> str:
    """The interpreter of a virtual environment made as apps/Dockerfile makes the image's (`uv sync
    --frozen --no-dev --package mcstatbot-<app> --no-editable`, bytecode compiled): the service's runtime
    dependencies only, none of the development tools the workspace's own environment also holds."""
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        raise BenchmarkSkippedError("uv not found: the image-like environments cannot be made")
    venv = context.work_dir / f"image-{app}"
    subprocess.run(
        [uv, "sync", "--frozen", "--no-dev", "--package", f"mcstatbot-{app}", "--no-editable", "--quiet"],
        cwd=REPO_ROOT,
        env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_COMPILE_BYTECODE": "1"},
        capture_output=True,
        timeout=900,
        check=True,
    )
    return str(venv / "bin" / "python")


def _as_in_the_image(env: dict[str, str]) -> dict[str, str]:
    """`env` plus what the image's runtime stage sets: its bytecode is compiled at build time and never
    written at run time."""
    return {**env, "PYTHONDONTWRITEBYTECODE": "1"}


def _create_table(env: dict[str, str]) -> None:
    """`mcstatbot-bot create-table` (what an operator runs once) against DynamoDB Local."""
    subprocess.run(
        [sys.executable, "-m", "mcstatbot_bot", "create-table"],
        env={**os.environ, **env},
        capture_output=True,
        timeout=60,
        check=True,
    )


def run(context: BenchContext) -> BenchmarkResult:
    config = context.config
    require_module(QUERY_MODULE)
    result = BenchmarkResult(
        "footprint",
        TITLE,
        method=(
            f"Each service is started {config.startup_runs} times (`python -m <module>` as in the image, "
            "from a virtual environment made as apps/Dockerfile makes the image's: `uv sync --frozen "
            "--no-dev --package mcstatbot-<app> --no-editable`, bytecode compiled, "
            "PYTHONDONTWRITEBYTECODE=1; the runtime dependencies only); "
            "start-up is the time from spawning the process to the first 200 from `GET /ready` (polled "
            f"every 10 ms). Idle RSS is that of the service's own Python process, read "
            f"{config.footprint_idle_s:g} s after ready, before any request, in the configuration the chart "
            "runs: the query service with REDIS_URL, the bot in webhook mode with STATE_BACKEND=dynamodb "
            "(DynamoDB Local) and REDIS_URL (its shared Telegram send budget); the bot is also measured in "
            "that configuration with STATE_BACKEND=sqlite (what the AWS SDK adds is the difference) and in "
            "the local default (`make run`: polling, STATE_BACKEND=sqlite, no REDIS_URL). "
            "RSS under load is the peak sampled every 100 ms during the cached-status runs (query service, "
            "Redis cache) and the bot-throughput runs (bot). Start-up times of the services started by the "
            "other benchmarks are included."
        ),
    )
    query_idle: list[float] = []
    bot_idle: list[float] = []
    bot_local_idle: list[float] = []
    bot_sqlite_idle: list[float] = []
    bot_available = True
    try:
        require_module(BOT_MODULE)
    except BenchmarkSkippedError as missing:
        bot_available = False
        result.notes.append(f"Bot not measured: {missing}.")
    with ExitStack() as stack:
        redis = stack.enter_context(redis_server(context))
        api = stack.enter_context(TimedBotApiServer()) if bot_available else None
        dynamodb = (
            stack.enter_context(DynamoDBLocal(context.log_path("footprint-dynamodb")))
            if bot_available
            else None
        )
        query_python = _image_python(context, "query")
        bot_python = _image_python(context, "bot") if bot_available else None
        query_config = _as_in_the_image(query_env(REDIS_URL=redis.url))
        for index in range(config.startup_runs):
            with service(
                context,
                QUERY_MODULE,
                f"query-footprint{index}",
                query_config,
                cpus=config.server_cpus,
                python=query_python,
            ) as query:
                query_idle.append(_idle_rss_mib(query.pid, config.footprint_idle_s))
                if api is None or dynamodb is None:
                    continue
                chart = _as_in_the_image(
                    {
                        **bot_env(api, query.url, secrets.token_urlsafe(16)),
                        **dynamodb.env(),
                        "STATE_BACKEND": "dynamodb",
                        "DYNAMODB_TABLE": f"mcstatbot-footprint{index}",
                        "REDIS_URL": redis.url,  # the shared Telegram send budget, as the chart sets it
                    },
                )
                _create_table(chart)
                with service(
                    context,
                    BOT_MODULE,
                    f"bot-footprint{index}",
                    chart,
                    cpus=config.server_cpus,
                    python=bot_python,
                ) as bot:
                    bot_idle.append(_idle_rss_mib(bot.pid, config.footprint_idle_s))
                # the chart's configuration with SQLite for DynamoDB: the AWS SDK's part is the difference
                sqlite = {
                    **{k: v for k, v in chart.items() if not k.startswith(("AWS_", "DYNAMODB_"))},
                    "STATE_BACKEND": "sqlite",
                    "SQLITE_PATH": str(context.work_dir / f"footprint-webhook{index}.db"),
                }
                with service(
                    context,
                    BOT_MODULE,
                    f"bot-sqlite-footprint{index}",
                    sqlite,
                    cpus=config.server_cpus,
                    python=bot_python,
                ) as bot:
                    bot_sqlite_idle.append(_idle_rss_mib(bot.pid, config.footprint_idle_s))
                local = _as_in_the_image(
                    {
                        **bot_env(api, query.url, secrets.token_urlsafe(16)),
                        "BOT_MODE": "polling",
                        "STATE_BACKEND": "sqlite",
                        "SQLITE_PATH": str(context.work_dir / f"footprint{index}.db"),
                    },
                )
                del local["WEBHOOK_SECRET"]
                with service(
                    context,
                    BOT_MODULE,
                    f"bot-local-footprint{index}",
                    local,
                    cpus=config.server_cpus,
                    python=bot_python,
                ) as bot:
                    bot_local_idle.append(_idle_rss_mib(bot.pid, config.footprint_idle_s))
    _figures(context, result, query_idle, bot_idle, bot_available=bot_available)
    if bot_sqlite_idle:
        result.add(
            "bot_sqlite_rss_idle_mib",
            "bot RSS idle (the chart's configuration with STATE_BACKEND=sqlite: no AWS SDK)",
            "MiB",
            bot_sqlite_idle,
        )
    if bot_local_idle:
        result.add(
            "bot_local_rss_idle_mib", "bot RSS idle (local default: polling, sqlite)", "MiB", bot_local_idle
        )
    _idle_targets(result)
    _sdk_note(result)
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


def _idle_targets(result: BenchmarkResult) -> None:
    """Each service's idle RSS against the goal."""
    for key, what in (
        ("query_rss_idle_mib", "query service idle RSS"),
        ("bot_rss_idle_mib", "bot idle RSS, as the chart runs it"),
        ("bot_local_rss_idle_mib", "bot idle RSS, local default"),
    ):
        figure = result.figures.get(key)
        if figure is not None and figure.values:
            idle = statistics.median(figure.values)
            goal = f"<= {TARGET_IDLE_MIB:g} MiB"
            result.targets.append(Target(what, goal, idle, "MiB", idle <= TARGET_IDLE_MIB))


def _sdk_note(result: BenchmarkResult) -> None:
    """What the bot's configurations add at rest, from the medians of the three."""
    medians = {
        key: statistics.median(figure.values)
        for key in ("bot_rss_idle_mib", "bot_sqlite_rss_idle_mib", "bot_local_rss_idle_mib")
        if (figure := result.figures.get(key)) is not None and figure.values
    }
    if len(medians) == 3:
        redis = medians["bot_sqlite_rss_idle_mib"] - medians["bot_local_rss_idle_mib"]
        sdk = medians["bot_rss_idle_mib"] - medians["bot_sqlite_rss_idle_mib"]
        result.notes.append(
            f"Of the bot's idle RSS as the chart runs it, the AWS SDK for DynamoDB (aiobotocore, botocore, "
            f"aiohttp, the client's service model) adds {sdk:.1f} MiB, and webhook mode with the Redis "
            f"client for the shared send budget {redis:.1f} MiB over the local default; neither is "
            f"imported by a configuration that does not use it."
        )


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
    result.add("query_rss_idle_mib", "query service RSS idle (REDIS_URL set)", "MiB", query_idle)
    result.add(
        "query_rss_load_mib", "query service RSS under load", "MiB", observed.get("query_rss_load_mib", [])
    )
    if bot_idle:
        result.add(
            "bot_rss_idle_mib",
            "bot RSS idle (chart: webhook, STATE_BACKEND=dynamodb, REDIS_URL)",
            "MiB",
            bot_idle,
        )
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
