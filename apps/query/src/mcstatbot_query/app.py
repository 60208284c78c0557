"""The query service's app factory: clients (cache, resolver, prober, service) live in the lifespan."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI

from mcstatbot_query.cache import create_cache
from mcstatbot_query.handlers import add_error_handlers
from mcstatbot_query.middleware import add_middleware
from mcstatbot_query.probe import Prober
from mcstatbot_query.resolver import Resolver
from mcstatbot_query.routes import router
from mcstatbot_query.service import QueryService
from mcstatbot_query.settings import QuerySettings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


def create_app(settings: QuerySettings | None = None) -> FastAPI:
    """The query service (SPEC.md, "Query service HTTP API (v1)")."""
    settings = settings or QuerySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        cache = create_cache(settings)
        resolver = Resolver(
            allow_private=settings.allow_private_addresses, nameservers=settings.nameservers()
        )
        app.state.settings = settings
        app.state.cache = cache
        service = QueryService(settings, cache, Prober(settings, resolver))
        app.state.service = service
        try:
            yield
        finally:
            await service.close()
            await cache.close()

    app = FastAPI(
        title="mcstatbot query service",
        version="1.0.0",
        description="Minecraft Java and Bedrock server status and player lists, cached and coalesced.",
        lifespan=lifespan,
    )
    add_middleware(app)
    add_error_handlers(app)
    app.include_router(router)
    return app
