"""The one place both services get their HTTP metrics, `/metrics` endpoint and tracing from.

Each app calls `setup_tracing(service)` once at start-up and `instrument_app(app, service)` on its
FastAPI app. Domain metrics (probes, commands, ...) live in each app's own `metrics.py`, in the default
prometheus_client registry, so `/metrics` shows them all, next to the process collector's
`process_cpu_seconds_total` and `process_resident_memory_bytes`.

The HTTP metrics and the server spans come from one pure ASGI middleware around the whole app (error
handlers included), so the request's span is current while its error handlers and log lines run.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.process_collector import PROCESS_COLLECTOR
from starlette.responses import Response

from mcstatbot_common.telemetry import current_trace_ids, setup_tracing, xray_trace_id

if TYPE_CHECKING:
    from contextvars import Token

    from fastapi import FastAPI
    from opentelemetry.context import Context
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
_tracer = trace.get_tracer("mcstatbot.http")


def ensure_process_collector() -> None:
    """Make sure the process collector (CPU seconds, resident memory, ...) is in the default registry."""
    with contextlib.suppress(ValueError):  # already registered: prometheus_client does it on import
        REGISTRY.register(PROCESS_COLLECTOR)


def _service_version(service: str) -> str:
    try:
        return version(f"mcstatbot-{service}")
    except PackageNotFoundError:
        return "unknown"


def _extra_excluded_urls() -> re.Pattern[str] | None:
    """`OTEL_PYTHON_FASTAPI_EXCLUDED_URLS` (or `OTEL_PYTHON_EXCLUDED_URLS`): comma-separated regexes searched
    in the full URL, as OpenTelemetry's instrumentations read them; None when unset."""
    extra = os.environ.get("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS") or os.environ.get("OTEL_PYTHON_EXCLUDED_URLS")
    patterns = [pattern.strip() for pattern in (extra or "").split(",") if pattern.strip()]
    return re.compile("|".join(patterns)) if patterns else None


class _ScopeHeaders(Getter[dict[str, list[str]]]):
    """Reads propagation headers (traceparent, X-Amzn-Trace-Id, baggage) from a dict of decoded headers."""

    def get(self, carrier: dict[str, list[str]], key: str) -> list[str] | None:
        return carrier.get(key.lower())

    def keys(self, carrier: dict[str, list[str]]) -> list[str]:
        return list(carrier)


_SCOPE_HEADERS = _ScopeHeaders()


def _carrier(scope: Scope) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in scope.get("headers") or ():
        headers.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    return headers


def _full_url(scope: Scope, headers: dict[str, list[str]]) -> str:
    """`scheme://host/path` (no query), what OpenTelemetry's ASGI instrumentation matches exclusions with."""
    host = headers.get("host", [""])[0]
    if not host and (server := scope.get("server")):
        host = f"{server[0]}:{server[1]}" if server[1] is not None else str(server[0])
    return f"{scope.get('scheme', 'http')}://{host}{scope.get('root_path', '')}{scope['path']}"


class HttpTelemetryMiddleware:
    """HTTP metrics and one OpenTelemetry server span per request, as a pure ASGI middleware.

    Metrics: `mcstatbot_http_requests_total` and `mcstatbot_http_request_duration_seconds` by route
    template (`unmatched` for unknown paths; `/metrics` itself is not counted), method (`OTHER` for
    unusual ones) and status (500 when the app raised before answering).

    Spans: `METHOD /route/{template}` (kind SERVER; `METHOD` alone for unknown paths), continuing the
    caller's trace (W3C `traceparent` or `X-Amzn-Trace-Id`, through the global propagator) and current
    while the app, its error handlers and the server's access log run; none for `/health`, `/ready`,
    `/metrics` and the URLs in `OTEL_PYTHON_FASTAPI_EXCLUDED_URLS`. A 5xx answer or an exception marks the
    span as an error.
    """

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service
        self._excluded_paths = frozenset(TRACE_EXCLUDED_PATHS)
        self._excluded_urls = _extra_excluded_urls()
        # Label children by (method, route, status), looked up once each. Methods, route templates and
        # statuses are bounded, so is this dict.
        self._children: dict[tuple[str, str, int], tuple[_CounterChild, _HistogramChild]] = {}

    def _traced(self, scope: Scope, headers: dict[str, list[str]]) -> bool:
        if scope["path"] in self._excluded_paths:
            return False
        return self._excluded_urls is None or self._excluded_urls.search(_full_url(scope, headers)) is None

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

        headers = _carrier(scope)
        span, token = self._start_span(scope, headers) if self._traced(scope, headers) else (None, None)
        failure: Exception | None = None
        try:
            await self.app(scope, receive, send_and_note_status)
        except Exception as exc:
            failure = exc
            raise
        finally:
            path = getattr(scope.get("route"), "path", None)
            route = path if isinstance(path, str) else None
            if span is not None and token is not None:
                if span.is_recording():
                    _describe(span, scope, headers, route, status, failure)
                span.end()
                otel_context.detach(token)
            if route != "/metrics":
                self._count(method, route or _UNMATCHED, status, time.perf_counter() - started)

    @staticmethod
    def _start_span(scope: Scope, headers: dict[str, list[str]]) -> tuple[trace.Span, Token[Context]]:
        parent = propagate.extract(headers, getter=_SCOPE_HEADERS)
        span = _tracer.start_span(_span_method(scope), parent, kind=SpanKind.SERVER)
        return span, otel_context.attach(trace.set_span_in_context(span, parent))

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


def _span_method(scope: Scope) -> str:
    method: str = scope["method"]
    return method if method in _HTTP_METHODS else "HTTP"


def _describe(  # noqa: PLR0917 - one private call site
    span: trace.Span,
    scope: Scope,
    headers: dict[str, list[str]],
    route: str | None,
    status: int,
    failure: Exception | None,
) -> None:
    """The server span's final name, its HTTP attributes (OpenTelemetry semantic conventions), and the
    exception or 5xx that failed it."""
    method = _span_method(scope)
    attributes: dict[str, Any] = {
        "http.request.method": method if method != "HTTP" else "_OTHER",
        "url.scheme": scope.get("scheme", "http"),
        "url.path": scope["path"],
        "http.response.status_code": status,
    }
    if route is not None:
        attributes["http.route"] = route
    if scope.get("http_version"):
        attributes["network.protocol.version"] = scope["http_version"]
    if (client := scope.get("client")) is not None:
        attributes["client.address"] = client[0]
    if (agent := headers.get("user-agent")) is not None:
        attributes["user_agent.original"] = agent[0]
    span.set_attributes(attributes)
    if route is not None:
        span.update_name(f"{method} {route}")
    if failure is not None:
        span.record_exception(failure)
        span.set_status(StatusCode.ERROR, f"{type(failure).__name__}: {failure}")
    elif status >= _SERVER_ERROR:
        span.set_status(StatusCode.ERROR)


def _disable_fastapi_native_telemetry(app: FastAPI) -> None:
    """Newer FastAPI releases trace requests themselves once an SDK tracer provider is set: turn that off,
    so each request has one server span (ours) and pays for one."""
    config = getattr(app, "_telemetry", None)
    if isinstance(config, dict):
        config.update(tracing=False, metrics=False, logs=False)


def instrument_app(app: FastAPI, service: str) -> None:
    """Add request metrics (route templates only: bounded cardinality), `GET /metrics` and server spans.

    Server spans (named `METHOD /route/{template}`) continue the caller's trace (W3C or X-Ray header) and
    skip `/health`, `/ready` and `/metrics`; see HttpTelemetryMiddleware. The middleware wraps the whole
    middleware stack, so error handlers and their log lines run inside the request's span.
    """
    ensure_process_collector()
    BUILD_INFO.labels(service, _service_version(service)).set(1)
    _disable_fastapi_native_telemetry(app)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    build_stack = app.build_middleware_stack

    def build_middleware_stack() -> ASGIApp:
        return HttpTelemetryMiddleware(build_stack(), service)

    app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]  # outermost layer
    app.middleware_stack = None  # built again (with ours) on the first request
