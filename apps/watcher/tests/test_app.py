"""The watcher's HTTP side: the chart's probes (/health, /ready) before and after the lifespan started."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
from mcstatbot_watcher.app import create_app
from mcstatbot_watcher.settings import WatcherSettings

if TYPE_CHECKING:
    from pathlib import Path

    from mcstatbot_testkit.services import ServiceProcess
    from mcstatbot_testkit.telegram import BotApiServer


async def test_ready_waits_for_the_lifespan_then_says_what_it_watches(
    api: BotApiServer, query: ServiceProcess, tmp_path: Path
) -> None:
    settings = WatcherSettings(
        telegram_bot_token=api.token,
        telegram_api_base_url=api.base_url,
        query_service_url=query.url,
        state_backend="sqlite",
        sqlite_path=str(tmp_path / "state.db"),
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://watcher") as client:
        assert (await client.get("/health")).json() == {"status": "ok"}
        starting = await client.get("/ready")
        assert (starting.status_code, starting.json()) == (503, {"status": "starting"})
        async with app.router.lifespan_context(app):
            ready = await client.get("/ready")
            assert ready.status_code == 200
            assert ready.json() == {
                "status": "ready",
                "state_backend": "sqlite",
                "state_store": "ok",
                "watched_servers": 0,
            }
        stopped = await client.get("/ready")
        assert stopped.status_code == 503
