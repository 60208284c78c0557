"""The one place both services get their HTTP metrics, `/metrics` endpoint and tracing from.

Each app calls `setup_tracing(service)` once at start-up and `instrument_app(app, service)` on its
FastAPI app. Domain metrics (probes, commands, ...) live in each app's own `metrics.py`, in the default
prometheus_client registry, so `/metrics` shows them all, next to the process collector's
`process_cpu_seconds_total` and `process_resident_memory_bytes`.
"""

from __future__ import annotations

import contextlib
import os
import time
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.process_collector import PROCESS_COLLECTOR
from starlette.responses import Response

from mcstatbot_common.telemetry import current_trace_ids, setup_tracing, xray_trace_id

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from fastapi import FastAPI, Request

__all__ = [
    "BUILD_INFO",
    "ERRORS",
    "HTTP_LATENCY",
    "HTTP_REQUESTS",
    "TRACE_EXCLUDED_PATHS",
    "current_trace_ids",
    "ensure_process_collector",
    "instrument_app",
    "setup_tracing",
    "xray_trace_id",
]

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
# Shared: both services count their errors in this one family (`mcstatbot_errors_total{service,type}`);
# two definitions of one name cannot live in one registry (e.g. one test process importing both apps).
ERRORS = Counter(
    "mcstatbot_errors",
    "Errors by service and type: the query service's error codes (invalid_address, forbidden_address,"
    " internal), the bot's unexpected exception class names",
    ["service", "type"],
)
BUILD_INFO = Gauge(
    "mcstatbot_build_info",
    "Always 1; the labels tell which version of which service this process runs",
    ["service", "version"],
)

# Kubelet probes and Prometheus scrapes make no spans (they would be most of the traffic).
TRACE_EXCLUDED_PATHS = ("/health", "/ready", "/metrics")
_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def ensure_process_collector() -> None:
    """Make sure the process collector (CPU seconds, resident memory, ...) is in the default registry."""
    with contextlib.suppress(ValueError):  # already registered: prometheus_client does it on import
        REGISTRY.register(PROCESS_COLLECTOR)


def _route_template(request: Request) -> str:
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


def _service_version(service: str) -> str:
    try:
        return version(f"mcstatbot-{service}")
    except PackageNotFoundError:
        return "unknown"


def _trace_excluded_urls() -> str:
    """Regexes (comma-separated, matched against the full URL) for the paths that make no spans."""
    ours = [rf"^[a-z]+://[^/]+{path}$" for path in TRACE_EXCLUDED_PATHS]
    extra = os.environ.get("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS") or os.environ.get("OTEL_PYTHON_EXCLUDED_URLS")
    return ",".join([*ours, *([extra] if extra else [])])


def instrument_app(app: FastAPI, service: str) -> None:
    """Add request metrics (route templates only: bounded cardinality), `GET /metrics` and server spans.

    Server spans come from the OpenTelemetry FastAPI instrumentation (named `METHOD /route/{template}`),
    continue the caller's trace (W3C or X-Ray header) and skip `/health`, `/ready` and `/metrics`.
    """
    ensure_process_collector()
    BUILD_INFO.labels(service, _service_version(service)).set(1)

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
                method = request.method if request.method in _HTTP_METHODS else "OTHER"
                HTTP_REQUESTS.labels(service, method, route, str(status)).inc()
                HTTP_LATENCY.labels(service, method, route).observe(time.perf_counter() - started)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    FastAPIInstrumentor.instrument_app(
        app, excluded_urls=_trace_excluded_urls(), exclude_spans=["receive", "send"]
    )
