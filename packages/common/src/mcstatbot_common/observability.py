"""The one place both services get their HTTP metrics, `/metrics` endpoint and tracing from.

Each app calls `setup_tracing(service)` once at start-up and `instrument_app(app, service)` on its
FastAPI app. Domain metrics (probes, commands, ...) live in each app's own `metrics.py`, in the default
prometheus_client registry, so `/metrics` shows them all.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.responses import Response

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from fastapi import FastAPI, Request

HTTP_REQUESTS = Counter(
    "mcstatbot_http_requests",
    "HTTP requests answered, by service, method, route template and status code",
    ["service", "method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "mcstatbot_http_request_duration_seconds",
    "Time to answer an HTTP request, by service, method and route template",
    ["service", "method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10),
)


def _route_template(request: Request) -> str:
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


def instrument_app(app: FastAPI, service: str) -> None:
    """Add request metrics (route templates only: bounded cardinality) and `GET /metrics`."""

    @app.middleware("http")
    async def _measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = _route_template(request)
            if route != "/metrics":
                HTTP_REQUESTS.labels(service, request.method, route, str(status)).inc()
                HTTP_LATENCY.labels(service, request.method, route).observe(time.perf_counter() - started)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def setup_tracing(service: str) -> None:
    """Configure OpenTelemetry tracing from the standard OTEL_* variables (filled in by the tracing work)."""
    del service
