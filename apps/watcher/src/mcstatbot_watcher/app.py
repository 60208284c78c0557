"""The watcher service: the check loop (service.Watcher) in a FastAPI app that serves /health, /ready
and /metrics for the chart's probes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from typing import TYPE_CHECKING

from fastapi import FastAPI
from mcstatbot_bot.breaker import CircuitBreaker
from mcstatbot_bot.clients import query_http_client
from mcstatbot_bot.probes import add_probe_routes
from mcstatbot_bot.query_client import BATCH_TIMEOUT, QueryClient
from mcstatbot_bot.state import build_store
from mcstatbot_bot.telegram_api import build_application
from mcstatbot_common.observability import instrument_app

from mcstatbot_watcher.service import Watcher
from mcstatbot_watcher.slots import LocalSlots, RedisSlots, Slots

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from mcstatbot_watcher.settings import WatcherSettings

log = logging.getLogger(__name__)
BATCH_RESPONSE_BYTES = 32 * 1024 * 1024
"""Largest batch answer read from the query service (a larger one fails that batch as unavailable)."""


def create_app(settings: WatcherSettings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            store = build_store(settings)
            await store.open()
            stack.push_async_callback(store.close)
            # a batch answer holds up to MAX_BATCH_SERVERS statuses: a larger bound than one answer's
            http = query_http_client(
                settings.query_service_url,
                timeout=max(settings.query_timeout, BATCH_TIMEOUT),
                max_response_bytes=BATCH_RESPONSE_BYTES,
            )
            stack.push_async_callback(http.aclose)
            breaker = CircuitBreaker(settings.breaker_failure_threshold, settings.breaker_reset_seconds)
            query = QueryClient(http, breaker, timeout=settings.query_timeout, retries=settings.query_retries)
            # the bot's Application (its request settings and rate limiter), without an updater: the
            # watcher only sends
            application = build_application(settings, webhook=True)
            await application.initialize()
            stack.push_async_callback(application.shutdown)
            slots: Slots = (
                RedisSlots(
                    settings.redis_url.get_secret_value(),
                    f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}",
                    cluster=settings.redis_cluster,
                )
                if settings.redis_url
                else LocalSlots()
            )
            stack.push_async_callback(slots.close)
            watcher = Watcher(settings, store, query, application.bot, slots)
            task = asyncio.create_task(watcher.run())

            async def stop() -> None:
                watcher.halt()
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await watcher.stop()

            stack.push_async_callback(stop)
            app.state.store = store
            app.state.watcher = watcher
            app.state.ready = True
            log.info(
                "watcher started",
                extra={"backend": store.backend, "replicas": "redis" if settings.redis_url else "single"},
            )
            try:
                yield
            finally:
                app.state.ready = False
                log.info("watcher stopping")

    app = FastAPI(title="mcstatbot watcher", lifespan=lifespan, docs_url=None, redoc_url=None)
    instrument_app(app, "watcher")

    add_probe_routes(app, lambda state: {"watched_servers": len(state.watcher.servers)})
    return app
