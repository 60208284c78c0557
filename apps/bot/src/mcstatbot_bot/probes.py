"""`/health` and `/ready` for the services built on the bot's state store (the bot and the watcher).

`/health` answers 200 while the process serves. `/ready` answers 503 `starting` until the lifespan sets
`app.state.ready`, then 200 with `ready` or `degraded` (the state store unreachable: the service still runs on
what it can) and the service's own details."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import Request  # noqa: TC002 - FastAPI reads the annotation at run time
from fastapi.responses import JSONResponse

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi import FastAPI
    from starlette.datastructures import State


def add_probe_routes(app: FastAPI, details: Callable[[State], dict[str, Any]]) -> None:
    """The two probes on `app`; `details(app.state)` adds the service's own fields to a ready answer."""
    app.state.ready = False

    # Both answer a response object: a route without a response model builds no pydantic field for it
    # (FastAPI's check of a model field imports pydantic.v1, held for the life of the process).
    @app.get("/health")
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/ready")
    async def ready(request: Request) -> JSONResponse:
        state = request.app.state
        if not getattr(state, "ready", False):
            return JSONResponse({"status": "starting"}, status_code=503)
        store_ok = await state.store.healthy()
        return JSONResponse(
            {
                "status": "ready" if store_ok else "degraded",
                "state_backend": state.store.backend,
                "state_store": "ok" if store_ok else "unavailable",
                **details(state),
            }
        )
