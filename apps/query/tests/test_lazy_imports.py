"""What a configuration does not use is not imported: Redis without REDIS_URL, exporters without OTLP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    from mcstatbot_common.observability import setup_tracing
    from mcstatbot_query.app import create_app
    from mcstatbot_query.settings import QuerySettings

    setup_tracing("query")
    app = create_app(QuerySettings())

    async def run():
        async with app.router.lifespan_context(app):
            pass

    asyncio.run(run())
    print(json.dumps(sorted({name.split(".")[0] for name in sys.modules} & {"redis", "botocore", "boto3"})
                     + sorted(name for name in sys.modules if name.startswith("opentelemetry.exporter"))))
    """
)


def _imported(env: dict[str, str]) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "REDIS_"))}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: list[str] = json.loads(done.stdout)
    return result


def test_a_plain_configuration_imports_neither_redis_nor_exporters() -> None:
    assert _imported({}) == []


def test_redis_and_the_exporter_come_with_their_configuration() -> None:
    imported = _imported(
        {"REDIS_URL": "redis://127.0.0.1:1/0", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}
    )
    assert "redis" in imported
    assert any(name.startswith("opentelemetry.exporter.otlp") for name in imported)
