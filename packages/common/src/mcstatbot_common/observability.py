"""The one place both services get their HTTP metrics, `/metrics` endpoint and tracing from.

Each app calls `setup_tracing(service)` once at start-up and `instrument_app(app, service)` on its
FastAPI app. Domain metrics (probes, commands, ...) live in each app's own `metrics.py`, in the default
prometheus_client registry, so `/metrics` shows them all, next to the process collector's
`process_cpu_seconds_total` and `process_resident_memory_bytes`.

The server spans come from OpenTelemetry's FastAPI instrumentation, whose middleware wraps the error
handlers, so the request's span is current while its error handlers and log lines run; the HTTP metrics
(Prometheus names the dashboard and alert rules read) from one small pure ASGI middleware around it all.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.process_collector import PROCESS_COLLECTOR
from starlette.responses import Response

from mcstatbot_common.telemetry import (
    current_trace_ids,
    opt_in_stable_http_semconv,
    setup_tracing,
    xray_trace_id,
)

if TYPE_CHECKING:
    from fastapi import FastAPI
    from prometheus_client.metrics import Counter as _CounterChild
    from prometheus_client.metrics import Histogram as _HistogramChild
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "BUILD_INFO",
    "ERRORS",
    "HTTP_LATENCY",
    "HTTP_REQUESTS",
    "TRACE_EXCLUDED_PATHS",
    "HttpTelemetryMiddleware",
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
_UNMATCHED = "unmatched"
_SERVER_ERROR = 500


def ensure_process_collector() -> None:
    """Make sure the process collector (CPU seconds, resident memory, ...) is in the default registry."""
    with contextlib.suppress(ValueError):  # already registered: prometheus_client does it on import
        REGISTRY.register(PROCESS_COLLECTOR)


def _service_version(service: str) -> str:
    try:
        return version(f"mcstatbot-{service}")
    except PackageNotFoundError:
        return "unknown"


def _excluded_urls() -> str:
    """What FastAPIInstrumentor should not trace: `/health`, `/ready`, `/metrics` (exact paths) and the
    comma-separated regexes of `OTEL_PYTHON_FASTAPI_EXCLUDED_URLS` (or `OTEL_PYTHON_EXCLUDED_URLS`), which
    OpenTelemetry searches in the full URL (`scheme://host/path`)."""
    ours = "^[a-z]+://[^/]*(" + "|".join(re.escape(path) for path in TRACE_EXCLUDED_PATHS) + ")$"
    extra = os.environ.get("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS") or os.environ.get("OTEL_PYTHON_EXCLUDED_URLS")
    return ",".join([ours, *(pattern.strip() for pattern in (extra or "").split(",") if pattern.strip())])


class HttpTelemetryMiddleware:
    """The HTTP metrics, as a pure ASGI middleware around the whole app (error handlers included).

    `mcstatbot_http_requests_total` and `mcstatbot_http_request_duration_seconds` by route template
    (`unmatched` for unknown paths; `/metrics` itself is not counted), method (`OTHER` for unusual ones)
    and status (500 when the app raised before answering). The server spans come from OpenTelemetry's
    FastAPI instrumentation (see instrument_app).
    """

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service
        # Label children by (method, route, status), looked up once each. Methods, route templates and
        # statuses are bounded, so is this dict.
        self._children: dict[tuple[str, str, int], tuple[_CounterChild, _HistogramChild]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method = scope["method"] if scope["method"] in _HTTP_METHODS else "OTHER"
        status = _SERVER_ERROR  # until the app answers otherwise

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            path = getattr(scope.get("route"), "path", None)
            route = path if isinstance(path, str) else None
            if route != "/metrics":
                self._count(method, route or _UNMATCHED, status, time.perf_counter() - started)

    def _count(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (
                HTTP_REQUESTS.labels(self.service, method, route, str(status)),
                HTTP_LATENCY.labels(self.service, method, route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)


def _disable_fastapi_native_telemetry(app: FastAPI) -> None:
    """Newer FastAPI releases trace requests themselves once an SDK tracer provider is set: turn that off,
    so each request has one server span (ours) and pays for one."""
    config = getattr(app, "_telemetry", None)
    if isinstance(config, dict):
        config.update(tracing=False, metrics=False, logs=False)


def instrument_app(app: FastAPI, service: str) -> None:
    """Add request metrics (route templates only: bounded cardinality), `GET /metrics` and server spans.

    Server spans come from OpenTelemetry's FastAPIInstrumentor: one per request, named
    `METHOD /route/{template}` (`HTTP` for unknown paths), continuing the caller's trace (W3C or X-Ray
    header, through the global propagator), current while the error handlers and their log lines run,
    an exception recorded on it; none for `/health`, `/ready`, `/metrics` and the URLs in
    `OTEL_PYTHON_FASTAPI_EXCLUDED_URLS`. Attributes follow the stable HTTP semantic conventions
    (`OTEL_SEMCONV_STABILITY_OPT_IN=http`, set unless the environment says otherwise). The metrics
    middleware (HttpTelemetryMiddleware) wraps all of it.
    """
    ensure_process_collector()
    BUILD_INFO.labels(service, _service_version(service)).set(1)
    _disable_fastapi_native_telemetry(app)
    opt_in_stable_http_semconv()

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    # No internal spans per ASGI send/receive message: one span per request, as before.
    FastAPIInstrumentor.instrument_app(app, excluded_urls=_excluded_urls(), exclude_spans=["receive", "send"])
    build_stack = app.build_middleware_stack

    def build_middleware_stack() -> ASGIApp:
        return HttpTelemetryMiddleware(build_stack(), service)

    app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]  # outermost layer
    app.middleware_stack = None  # built again (with ours) on the first request
