"""One watcher replica without REDIS_URL loads no Redis client (nor the OpenTelemetry metrics SDK that
redis-py brings), and no DynamoDB client on SQLite: a fresh interpreter runs the service's own start
(`setup_tracing("watcher")`, then `create_app` and its whole lifespan against the Bot API test server and
the query service); REDIS_URL set, the replicas' slots load it."""

from __future__ import annotations

import os
import textwrap
from typing import TYPE_CHECKING

from mcstatbot_testkit.process import run_python_json
from mcstatbot_testkit.redis import RedisServer
from mcstatbot_testkit.telegram import BotApiServer

if TYPE_CHECKING:
    from pathlib import Path

    from mcstatbot_testkit.services import ServiceProcess

HEAVY = ("redis", "aiodynamo", "botocore", "aiobotocore", "aiohttp", "matplotlib", "numpy")

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    from mcstatbot_common.observability import setup_tracing

    setup_tracing("watcher")
    from mcstatbot_watcher.app import create_app
    from mcstatbot_watcher.settings import WatcherSettings

    app = create_app(WatcherSettings())

    async def run():
        async with app.router.lifespan_context(app):
            await asyncio.sleep(0.5)  # a first tick of the check loop

    asyncio.run(run())
    heavy = set(sys.argv[1].split(","))
    print(json.dumps(
        sorted({name.split(".")[0] for name in sys.modules} & heavy)
        + sorted(name for name in sys.modules if name == "opentelemetry.sdk.metrics")
    ))
    """
)


def _imported(query: ServiceProcess, env: dict[str, str]) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "REDIS_", "AWS_", "STATE_"))}
    # The Bot API test server runs here, not in the measured interpreter.
    with BotApiServer() as api:
        settings = {
            "TELEGRAM_BOT_TOKEN": api.token,
            "TELEGRAM_API_BASE_URL": api.base_url,
            "QUERY_SERVICE_URL": query.url,
            "SET_COMMANDS": "false",
        }
        imported: list[str] = run_python_json(SCRIPT, [",".join(HEAVY)], {**clean, **settings, **env})
    return imported


def test_one_replica_on_sqlite_imports_no_redis_nor_aws_sdk(query: ServiceProcess, tmp_path: Path) -> None:
    assert _imported(query, {"STATE_BACKEND": "sqlite", "SQLITE_PATH": str(tmp_path / "w.db")}) == []


def test_replicas_sharing_redis_load_it(query: ServiceProcess, tmp_path: Path) -> None:
    with RedisServer(tmp_path / "redis.log") as redis_server:
        imported = _imported(
            query,
            {"STATE_BACKEND": "sqlite", "SQLITE_PATH": str(tmp_path / "w.db"), "REDIS_URL": redis_server.url},
        )
    assert "redis" in imported
