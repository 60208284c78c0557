"""What a configuration does not use is not imported (a fresh interpreter each, the service's own start:
`setup_tracing("bot")`, then `create_app` and its whole lifespan against the Bot API test server): no
Redis client without REDIS_URL, no DynamoDB client (aiodynamo) without STATE_BACKEND=dynamodb and never
the AWS SDK (botocore) nor aiohttp,
no exporter without a collector, never matplotlib nor numpy (only the /history chart worker process
imports them), never pydantic.v1 (FastAPI imports it to check a route's response model: the bot's routes
answer response objects and have none), and the Redis instrumentation only when spans are exported and
Redis is in use."""

from __future__ import annotations

import os
import textwrap
from typing import TYPE_CHECKING

from mcstatbot_testkit.process import run_python_json
from mcstatbot_testkit.redis import RedisServer
from mcstatbot_testkit.telegram import BotApiServer

if TYPE_CHECKING:
    from pathlib import Path

    from mcstatbot_testkit.dynamodb import DynamoDBLocal

HEAVY = (
    "redis",
    "aiodynamo",
    "botocore",
    "aiobotocore",
    "aioboto3",
    "boto3",
    "aiohttp",
    "matplotlib",
    "numpy",
)

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    from mcstatbot_common.observability import setup_tracing

    setup_tracing("bot")
    from mcstatbot_bot.app import create_app
    from mcstatbot_bot.settings import BotSettings

    app = create_app(BotSettings())

    async def run():
        async with app.router.lifespan_context(app):
            pass

    asyncio.run(run())
    heavy = set(sys.argv[1].split(","))
    print(json.dumps(
        sorted({name.split(".")[0] for name in sys.modules} & heavy)
        + sorted(name for name in sys.modules if name.startswith("opentelemetry.exporter."))
        + sorted(
            name for name in sys.modules
            if name in {"opentelemetry.instrumentation.redis", "opentelemetry.instrumentation.botocore"}
        )
        + sorted(name for name in sys.modules if name == "pydantic.v1")
    ))
    """
)


def _imported(env: dict[str, str]) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "REDIS_", "AWS_", "STATE_"))}
    # The Bot API test server runs here, not in the measured interpreter (it is a FastAPI app too).
    with BotApiServer() as api:
        telegram = {"TELEGRAM_BOT_TOKEN": api.token, "TELEGRAM_API_BASE_URL": api.base_url}
        imported: list[str] = run_python_json(
            SCRIPT,
            [",".join(HEAVY)],
            {**clean, "BOT_MODE": "webhook", "SET_COMMANDS": "false", **telegram, **env},
        )
    return imported


def test_the_local_configuration_imports_no_redis_no_aws_sdk_no_exporter(tmp_path: Path) -> None:
    assert _imported({"STATE_BACKEND": "sqlite", "SQLITE_PATH": str(tmp_path / "s.db")}) == []


def test_the_chart_configuration_without_a_collector_imports_no_exporter_nor_instrumentation(
    tmp_path: Path, dynamodb: DynamoDBLocal
) -> None:
    with RedisServer(tmp_path / "redis.log") as redis_server:
        imported = _imported({"STATE_BACKEND": "dynamodb", "REDIS_URL": redis_server.url, **dynamodb.env()})
    assert set(imported) == {"redis", "aiodynamo"}  # no AWS SDK, no exporter, no instrumentation


def test_what_a_collector_asks_for_comes_with_it(tmp_path: Path, dynamodb: DynamoDBLocal) -> None:
    with RedisServer(tmp_path / "redis.log") as redis_server:
        imported = _imported(
            {
                "STATE_BACKEND": "dynamodb",
                "REDIS_URL": redis_server.url,
                "OTEL_TRACES_EXPORTER": "console",
                **dynamodb.env(),
            }
        )
    assert "opentelemetry.instrumentation.redis" in imported
    assert "botocore" not in imported  # DynamoDB's spans are the store's own, over httpx's


def test_a_collector_instruments_only_the_libraries_the_configuration_uses(tmp_path: Path) -> None:
    """Spans exported, but SQLite and no REDIS_URL: neither aiodynamo nor Redis, nor Redis's
    instrumentation, are loaded (instrumenting what is merely installed would load them)."""
    imported = _imported(
        {
            "STATE_BACKEND": "sqlite",
            "SQLITE_PATH": str(tmp_path / "s.db"),
            "OTEL_TRACES_EXPORTER": "console",
        }
    )
    assert imported == []
