"""The baseline for the cached-status benchmark: a plain FastAPI app with one endpoint returning a constant
JSON body (a ServerStatus-shaped document of the same size class), served by uvicorn with the same settings
as the query service, one worker. Run as `python -m bench.baseline_app` (env HOST, PORT).

With BASELINE_OBSERVABILITY=1 the same app also gets the services' shared observability stack
(`setup_tracing` and `instrument_app` from mcstatbot_common: HTTP metrics middleware, tracing), which
separates what that stack costs per request from what the query service itself does."""

from __future__ import annotations

import os
from typing import Any

import uvicorn
from fastapi import FastAPI

CONSTANT_BODY: dict[str, Any] = {
    "address": "127.0.0.1:25565",
    "host": "127.0.0.1",
    "port": 25565,
    "edition": "java",
    "online": True,
    "version": {"name": "1.21.1", "protocol": 767},
    "motd": {
        "raw": "§aA Minecraft Server\n§6§lsecond line",
        "clean": "A Minecraft Server\nsecond line",
        "html": '<span style="color: #55FF55">A Minecraft Server</span><br>'
        '<span style="color: #FFAA00; font-weight: bold">second line</span>',
    },
    "players": {
        "online": 2,
        "max": 20,
        "sample": [
            {"name": "Steve", "id": "8667ba71-b85a-4004-af54-457a9734eed7"},
            {"name": "Alex", "id": "ec561538-f3fd-461d-aff5-086b22154bce"},
        ],
    },
    "latency_ms": 1.2,
    "srv": None,
    "icon": None,
    "retrieved_at": "2026-11-28T09:00:00Z",
    "cached": True,
    "error": None,
}


def create_app(*, observability: bool = False) -> FastAPI:
    app = FastAPI()
    if observability:
        from mcstatbot_common.observability import instrument_app, setup_tracing  # noqa: PLC0415 - optional

        setup_tracing("baseline")
        instrument_app(app, "baseline")

    @app.get("/constant")
    async def constant() -> dict[str, Any]:
        return CONSTANT_BODY

    @app.get("/ready")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    return app


def uvicorn_options() -> dict[str, Any]:
    """The uvicorn settings of the query service's entry point (`mcstatbot_query.__main__`), kept in step:
    default loop and HTTP implementation (uvloop and httptools, from uvicorn[standard]), no access log."""
    return {"log_config": None, "access_log": False, "proxy_headers": True, "timeout_graceful_shutdown": 10}


def main() -> None:
    uvicorn.run(
        create_app(observability=os.environ.get("BASELINE_OBSERVABILITY") == "1"),
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "8090")),
        **uvicorn_options(),
    )


if __name__ == "__main__":
    main()
