"""What wraps every request of the query service: telemetry, the body-size limit, the request log line."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from mcstatbot_common.asgi import BodySizeLimitMiddleware
from mcstatbot_common.models import MAX_REQUEST_BODY_BYTES
from mcstatbot_common.observability import instrument_app

from mcstatbot_query.handlers import body_too_large

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = MAX_REQUEST_BODY_BYTES
"""Largest request body accepted; a larger one answers 413 `body_too_large` without being read further."""

request_log = logging.getLogger("mcstatbot_query.requests")
_OUTCOME_BY_STATUS = {413: "body_too_large", 500: "internal"}
"""Answers given before (the body limit) or after (an unhandled error) the handlers that note the outcome."""


class RequestLogMiddleware:
    """One INFO line per API request (`/api/...`; not /health, /ready, /metrics): route, outcome, duration.

    Fields: `route` (the template, never the address asked), `method`, `status`, `outcome` (`online`, the
    probe's error code, or the error answer's code), `cache_hit`, `duration_ms`; the trace and span IDs
    come with every line (mcstatbot_common.logging).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            state = scope.get("state") or {}
            path = getattr(scope.get("route"), "path", None)
            request_log.info(
                "request answered",
                extra={
                    "route": path if isinstance(path, str) else "unmatched",
                    "method": scope["method"],
                    "status": status,
                    "outcome": state.get("outcome") or _OUTCOME_BY_STATUS.get(status, f"http_{status}"),
                    "cache_hit": bool(state.get("cache_hit", False)),
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                },
            )


def add_middleware(app: FastAPI) -> None:
    """Telemetry outermost (metrics, the server span), then the request log line, then the body limit."""
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=MAX_BODY_BYTES, too_large=body_too_large)
    app.add_middleware(RequestLogMiddleware)
    instrument_app(app, "query")
