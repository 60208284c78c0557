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
from dataclasses import dataclass
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
WATCHER_MODULE = "mcstatbot_watcher"
WORKSPACE_PACKAGES = ("mcstatbot-common", "mcstatbot-bot", "mcstatbot-query", "mcstatbot-watcher")
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


STDLIB_SKIPPED = r"/(test|tests|idlelib|lib2to3|turtledemo)/"
"""What apps/Dockerfile leaves out when it compiles the standard library for PYTHONOPTIMIZE=2."""


def _pycache(context: BenchContext) -> Path:
    """Where the image-like environments' -OO bytecode lives (PYTHONPYCACHEPREFIX): the image compiles
    its standard library and virtual environment for PYTHONOPTIMIZE=2; here the host's standard library is
    compiled into this folder instead of beside its sources."""
    return context.work_dir / "image-pycache"


def _image_python(context: BenchContext, app: str) -> str:
    """The interpreter of a virtual environment made as apps/Dockerfile makes the image's (`uv sync
    --frozen --no-dev --package mcstatbot-<app> --no-editable`, then every module and the standard library
    compiled with -OO): the service's runtime dependencies only, none of the development tools the
    workspace's own environment also holds."""
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        raise BenchmarkSkippedError("uv not found: the image-like environments cannot be made")
    venv = context.work_dir / f"image-{app}"
    subprocess.run(
        [uv, "sync", "--frozen", "--no-dev", "--package", f"mcstatbot-{app}", "--no-editable", "--quiet"]
        # the workspace's own packages built from the sources as they are now: uv's cache keys a local
        # package's build by its pyproject.toml, not by its sources
        + [f"--reinstall-package={package}" for package in WORKSPACE_PACKAGES],
        cwd=REPO_ROOT,
        env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv)},
        capture_output=True,
        timeout=900,
        check=True,
    )
    python = str(venv / "bin" / "python")
    stdlib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    for tree, skipped in ((stdlib, ["-x", STDLIB_SKIPPED]), (str(venv / "lib"), [])):
        subprocess.run(
            [python, "-OO", "-m", "compileall", "-q", "-j", "0", *skipped, tree],
            env={**os.environ, "PYTHONPYCACHEPREFIX": str(_pycache(context))},
            capture_output=True,
            timeout=900,
            check=True,
        )
    return python


def _as_in_the_image(context: BenchContext, env: dict[str, str]) -> dict[str, str]:
    """`env` plus what the image's runtime stage sets: PYTHONOPTIMIZE=2, its bytecode compiled at build
    time (here: in the bench's pycache folder) and never written at run time."""
    return {
        **env,
        "PYTHONOPTIMIZE": "2",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPYCACHEPREFIX": str(_pycache(context)),
    }


def _create_table(env: dict[str, str]) -> None:
    """`mcstatbot-bot create-table` (what an operator runs once) against DynamoDB Local."""
    subprocess.run(
        [sys.executable, "-m", "mcstatbot_bot", "create-table"],
        env={**os.environ, **env},
        capture_output=True,
        timeout=60,
        check=True,
    )


_IDLE_FIGURES = (
    ("bot_rss_idle_mib", ""),  # labelled in _figures
    (
        "bot_sqlite_rss_idle_mib",
        "bot RSS idle (the chart's configuration with STATE_BACKEND=sqlite: no DynamoDB client)",
    ),
    ("bot_local_rss_idle_mib", "bot RSS idle (local default: polling, sqlite)"),
    ("watcher_rss_idle_mib", "watcher RSS idle (chart: STATE_BACKEND=dynamodb, REDIS_URL), no watches"),
    ("watcher_local_rss_idle_mib", "watcher RSS idle (local default: sqlite), no watches"),
)


@dataclass(frozen=True)
class _Apps:
    """What the bot's and the watcher's configurations are measured against."""

    api: TimedBotApiServer
    dynamodb: DynamoDBLocal
    redis_url: str
    bot_python: str
    watcher_python: str


def _bot_and_watcher_idle(context: BenchContext, apps: _Apps, query_url: str, index: int) -> dict[str, float]:
    """One round: the bot in its three configurations, then the watcher in two, each started on its own."""
    chart = _as_in_the_image(
        context,
        {
            **bot_env(apps.api, query_url, secrets.token_urlsafe(16)),
            **apps.dynamodb.env(),
            "STATE_BACKEND": "dynamodb",
            "DYNAMODB_TABLE": f"mcstatbot-footprint{index}",
            "REDIS_URL": apps.redis_url,  # the shared Telegram send budget, as the chart sets it
        },
    )
    _create_table(chart)
    # the chart's configuration with SQLite for DynamoDB: the AWS SDK's part is the difference
    sqlite = {
        **{k: v for k, v in chart.items() if not k.startswith(("AWS_", "DYNAMODB_"))},
        "STATE_BACKEND": "sqlite",
        "SQLITE_PATH": str(context.work_dir / f"footprint-webhook{index}.db"),
    }
    local = {
        **{k: v for k, v in sqlite.items() if k not in {"REDIS_URL", "WEBHOOK_SECRET"}},
        "BOT_MODE": "polling",
        "SQLITE_PATH": str(context.work_dir / f"footprint{index}.db"),
    }
    # the watcher as the chart runs it (DynamoDB, REDIS_URL for its slots), and locally (SQLite)
    watcher = {k: v for k, v in chart.items() if k not in {"BOT_MODE", "WEBHOOK_SECRET"}}
    watcher_local = {k: v for k, v in local.items() if k != "BOT_MODE"}
    runs = (
        ("bot_rss_idle_mib", "bot-footprint", BOT_MODULE, chart, apps.bot_python),
        ("bot_sqlite_rss_idle_mib", "bot-sqlite-footprint", BOT_MODULE, sqlite, apps.bot_python),
        ("bot_local_rss_idle_mib", "bot-local-footprint", BOT_MODULE, local, apps.bot_python),
        ("watcher_rss_idle_mib", "watcher-footprint", WATCHER_MODULE, watcher, apps.watcher_python),
        (
            "watcher_local_rss_idle_mib",
            "watcher-local-footprint",
            WATCHER_MODULE,
            watcher_local,
            apps.watcher_python,
        ),
    )
    measured: dict[str, float] = {}
    for key, name, module, env, python in runs:
        with service(
            context, module, f"{name}{index}", env, cpus=context.config.server_cpus, python=python
        ) as process:
            measured[key] = _idle_rss_mib(process.pid, context.config.footprint_idle_s)
    return measured


def run(context: BenchContext) -> BenchmarkResult:
    config = context.config
    require_module(QUERY_MODULE)
    result = BenchmarkResult(
        "footprint",
        TITLE,
        method=(
            f"Each service is started {config.startup_runs} times (`python -m <module>` as in the image, "
            "from a virtual environment made as apps/Dockerfile makes the image's: `uv sync --frozen "
            "--no-dev --package mcstatbot-<app> --no-editable`, the runtime dependencies only; it and the "
            "standard library compiled with -OO, run with PYTHONOPTIMIZE=2 and PYTHONDONTWRITEBYTECODE=1 "
            "as the image's runtime stage sets them); "
            "start-up is the time from spawning the process to the first 200 from `GET /ready` (polled "
            f"every 10 ms). Idle RSS is that of the service's own Python process, read "
            f"{config.footprint_idle_s:g} s after ready, before any request, in the configuration the chart "
            "runs: the query service with REDIS_URL, the bot in webhook mode with STATE_BACKEND=dynamodb "
            "(DynamoDB Local) and REDIS_URL (its shared Telegram send budget); the bot is also measured in "
            "that configuration with STATE_BACKEND=sqlite (what the DynamoDB client adds is the difference) "
            "and in the local default (`make run`: polling, STATE_BACKEND=sqlite, no REDIS_URL); the "
            "watcher, with no watches, as the chart runs it (DynamoDB, REDIS_URL) and in the local default "
            "(SQLite). "
            "RSS under load is the peak sampled every 100 ms during the cached-status runs (query service, "
            "Redis cache) and the bot-throughput runs (bot). Start-up times of the services started by the "
            "other benchmarks are included."
        ),
    )
    query_idle: list[float] = []
    idle: dict[str, list[float]] = {key: [] for key, _ in _IDLE_FIGURES}
    bot_available = True
    try:
        require_module(BOT_MODULE)
    except BenchmarkSkippedError as missing:
        bot_available = False
        result.notes.append(f"Bot not measured: {missing}.")
    with ExitStack() as stack:
        redis = stack.enter_context(redis_server(context))
        query_python = _image_python(context, "query")
        apps = None
        if bot_available:
            apps = _Apps(
                api=stack.enter_context(TimedBotApiServer()),
                dynamodb=stack.enter_context(DynamoDBLocal(context.log_path("footprint-dynamodb"))),
                redis_url=redis.url,
                bot_python=_image_python(context, "bot"),
                watcher_python=_image_python(context, "watcher"),
            )
        query_config = _as_in_the_image(context, query_env(REDIS_URL=redis.url))
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
                if apps is not None:
                    for key, value in _bot_and_watcher_idle(context, apps, query.url, index).items():
                        idle[key].append(value)
    _figures(context, result, query_idle, idle["bot_rss_idle_mib"], bot_available=bot_available)
    for key, label in _IDLE_FIGURES[1:]:
        if idle[key]:
            result.add(key, label, "MiB", idle[key])
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
        ("watcher_rss_idle_mib", "watcher idle RSS, as the chart runs it"),
        ("watcher_local_rss_idle_mib", "watcher idle RSS, local default"),
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
            f"Of the bot's idle RSS as the chart runs it, the DynamoDB client (aiodynamo on the bot's httpx, "
            f"yarl) adds {sdk:.1f} MiB, and webhook mode with the Redis "
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
