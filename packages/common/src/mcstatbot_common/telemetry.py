"""OpenTelemetry tracing for both services, configured by the standard `OTEL_*` variables.

`setup_tracing(service)` installs one SDK `TracerProvider` per process with X-Ray-compatible trace IDs,
W3C trace context + baggage + X-Ray propagation, and the httpx and Redis instrumentations (Redis only
once spans are exported, and only when the process imports it). Spans are always created (so log lines
carry trace IDs and the trace travels from the bot to the query service); they are exported over
OTLP/HTTP only when a collector is configured.

While nothing would receive them (no exporter configured and no span processor added), spans are not
recorded: each still has its trace and span IDs, is current while it runs, and travels in the
`traceparent` / `X-Amzn-Trace-Id` headers (marked not sampled), but filling in attributes and events that
nobody will ever read is skipped.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Any

from opentelemetry import propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.aws import AwsXRayPropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.extension.aws.trace import AwsXRayIdGenerator
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, Sampler, SamplingResult
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.trace.status import Status
from wrapt import register_post_import_hook  # type: ignore[import-untyped]  # no type information upstream

from mcstatbot_common.logging import current_trace_ids, redact

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import SpanProcessor
    from opentelemetry.trace import Link, SpanKind, TraceState
    from opentelemetry.util.types import Attributes

__all__ = [
    "RedactingSpanExporter",
    "current_trace_ids",
    "opt_in_stable_http_semconv",
    "setup_tracing",
    "span_exporters_from_env",
    "xray_trace_id",
]

logger = logging.getLogger(__name__)

_OTLP_PROTOCOL = "http/protobuf"
_URL_ATTRIBUTES = ("http.url", "url.full")


def xray_trace_id(trace_id: int) -> str:
    """The X-Ray form of an OpenTelemetry trace ID: `1-<8 hex: epoch seconds>-<24 hex>`."""
    hex_id = format(trace_id, "032x")
    return f"1-{hex_id[:8]}-{hex_id[8:]}"


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, tuple | list) and any(isinstance(item, str) for item in value):
        return tuple(redact(item) if isinstance(item, str) else item for item in value)
    return value


def _redact_attributes(attributes: Attributes | Mapping[str, Any]) -> dict[str, Any] | None:
    if not attributes:
        return None
    cleaned = {key: _redact_value(value) for key, value in attributes.items()}
    return cleaned if cleaned != dict(attributes) else None


class RedactingSpanExporter(SpanExporter):
    """Removes anything shaped like a bot token from span names, attributes, events and statuses.

    The Bot API URL carries the token (`/bot<token>/sendMessage`), and the httpx instrumentation records
    request URLs; this wrapper makes sure no exported span ever contains one.
    """

    def __init__(self, exporter: SpanExporter) -> None:
        self._exporter = exporter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._exporter.export([self._clean(span) for span in spans])

    def shutdown(self) -> None:
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._exporter.force_flush(timeout_millis)

    @staticmethod
    def _clean(span: ReadableSpan) -> ReadableSpan:
        name = redact(span.name)
        attributes = _redact_attributes(span.attributes)
        events = [
            Event(event.name, cleaned, event.timestamp)
            if (cleaned := _redact_attributes(event.attributes)) is not None
            else event
            for event in span.events
        ]
        events_changed = any(new is not old for new, old in zip(events, span.events, strict=True))
        description = span.status.description
        clean_description = redact(description) if description else description
        if (
            name == span.name
            and attributes is None
            and not events_changed
            and clean_description == description
        ):
            return span
        return ReadableSpan(
            name=name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=attributes if attributes is not None else span.attributes,
            events=events,
            links=span.links,
            kind=span.kind,
            status=Status(span.status.status_code, clean_description),
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )


class _UntilReceivedSampler(Sampler):
    """Drops every span until a span processor is there to receive them; then `inner` decides.

    A dropped span still gets its IDs (log correlation, propagation) but records nothing.
    """

    def __init__(self, inner: Sampler) -> None:
        self.inner = inner
        self.receiving = False

    def should_sample(  # noqa: PLR0917 - the Sampler interface
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        sampler = self.inner if self.receiving else ALWAYS_OFF
        return sampler.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"UntilReceived{{{self.inner.get_description()}}}"


class _TracerProvider(TracerProvider):
    """The SDK's provider; spans are recorded from the first added span processor on (an exporter, a
    test's collector), sampled as `OTEL_TRACES_SAMPLER` says (default: parent-based, always on)."""

    def __init__(self, *, resource: Resource) -> None:
        super().__init__(resource=resource, id_generator=AwsXRayIdGenerator())
        self._gate = _UntilReceivedSampler(self.sampler)
        self.sampler = self._gate  # tracers are made later and take this one

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        super().add_span_processor(span_processor)
        self._gate.receiving = True

    @property
    def receiving(self) -> bool:
        """Whether spans are recorded (a span processor is there to receive them)."""
        return self._gate.receiving


def _env(name: str) -> str:
    return os.environ.get(name, "").strip()


def span_exporters_from_env() -> list[SpanExporter]:
    """The exporters `OTEL_TRACES_EXPORTER` asks for (`otlp`, `console`, `none`).

    Unlike the SDK's own default (`otlp` to localhost), an unset `OTEL_TRACES_EXPORTER` exports only
    when an OTLP endpoint is configured: with no collector nothing is exported and nothing logs errors.
    Only the OTLP/HTTP protobuf protocol is shipped; `grpc` falls back to it with a warning.
    """
    names = [name.strip().lower() for name in _env("OTEL_TRACES_EXPORTER").split(",") if name.strip()]
    if not names and (_env("OTEL_EXPORTER_OTLP_ENDPOINT") or _env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        names = ["otlp"]
    if "none" in names:
        return []
    exporters: list[SpanExporter] = []
    for name in dict.fromkeys(names):
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415 - only when asked for
                OTLPSpanExporter,
            )

            protocol = _env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or _env("OTEL_EXPORTER_OTLP_PROTOCOL")
            if protocol and protocol != _OTLP_PROTOCOL:
                logger.warning(
                    "OTLP protocol %r is not available, exporting traces over %s", protocol, _OTLP_PROTOCOL
                )
            exporters.append(OTLPSpanExporter())
        elif name == "console":
            exporters.append(
                ConsoleSpanExporter(out=sys.stderr, formatter=lambda span: span.to_json(indent=None) + "\n")
            )
        else:
            logger.warning("unknown OTEL_TRACES_EXPORTER entry %r ignored (use otlp, console or none)", name)
    return exporters


def opt_in_stable_http_semconv() -> None:
    """Ask OpenTelemetry's HTTP instrumentations for the stable semantic conventions (`url.full`,
    `http.request.method`, `http.response.status_code`, ...) unless `OTEL_SEMCONV_STABILITY_OPT_IN` is set.

    The instrumentations read the variable once, when the first of them is set up: call this before.
    """
    if "OTEL_SEMCONV_STABILITY_OPT_IN" not in os.environ:
        os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "http"


def _configure_propagators() -> None:
    """W3C trace context + baggage + X-Ray, unless `OTEL_PROPAGATORS` chose others.

    The SDK reads `OTEL_PROPAGATORS` itself when `opentelemetry.propagate` is imported (`xray` is one of
    the names it knows). X-Ray comes first so that, when a request carries both headers, the W3C one wins.
    """
    if _env("OTEL_PROPAGATORS"):
        return
    propagate.set_global_textmap(
        CompositePropagator([AwsXRayPropagator(), TraceContextTextMapPropagator(), W3CBaggagePropagator()])
    )


def _redact_url_attributes(span: trace.Span) -> None:
    attributes = getattr(span, "attributes", None) or {}
    for key in _URL_ATTRIBUTES:
        value = attributes.get(key)
        if isinstance(value, str) and (clean := redact(value)) != value:
            span.set_attribute(key, clean)


def _httpx_request_hook(span: trace.Span, request: object) -> None:
    del request
    _redact_url_attributes(span)


async def _httpx_async_request_hook(span: trace.Span, request: object) -> None:
    del request
    _redact_url_attributes(span)


def _instrument_redis(_module: object) -> None:
    from opentelemetry.instrumentation.redis import RedisInstrumentor  # noqa: PLC0415 - only once redis is used

    instrumentor = RedisInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()


# The client libraries instrumented once spans are received, each when (and only when) the process
# imports it: a configuration that uses no Redis loads neither the library nor its instrumentation.
# (The bot's DynamoDB calls go through httpx, covered above, each under a span of its own.)
_LIBRARY_INSTRUMENTATIONS = (("redis", _instrument_redis),)
_library_hooks_registered = False


def _instrument_libraries(*, receiving: bool) -> None:
    """Instrument httpx (client spans + header injection) always; Redis once spans are received, when
    the configuration imports it (a post-import hook by wrapt, which
    OpenTelemetry's instrumentations use themselves: at once when it is imported already)."""
    global _library_hooks_registered  # noqa: PLW0603 - one registration per process
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor  # noqa: PLC0415

    httpx_instrumentor = HTTPXClientInstrumentor()
    if not httpx_instrumentor.is_instrumented_by_opentelemetry:
        httpx_instrumentor.instrument(
            request_hook=_httpx_request_hook, async_request_hook=_httpx_async_request_hook
        )
    if not receiving or _library_hooks_registered:
        return
    _library_hooks_registered = True
    for module, instrument in _LIBRARY_INSTRUMENTATIONS:
        register_post_import_hook(instrument, module)


def _service_name(service: str) -> str:
    return _env("OTEL_SERVICE_NAME") or service


def _sdk_disabled() -> bool:
    return _env("OTEL_SDK_DISABLED").lower() == "true"


def setup_tracing(service: str, *, span_processors: Iterable[SpanProcessor] = ()) -> TracerProvider | None:
    """Install the process's tracer provider, propagators and library instrumentation; idempotent.

    `service` is the `service.name` resource attribute unless `OTEL_SERVICE_NAME` is set.
    `span_processors` are added to the provider (also on later calls): tests use this to collect spans.
    Returns the provider, or None when `OTEL_SDK_DISABLED=true`.
    """
    if _sdk_disabled():
        return None
    opt_in_stable_http_semconv()
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        provider = current
    else:
        resource = Resource.create({SERVICE_NAME: _service_name(service)})
        provider = _TracerProvider(resource=resource)
        for exporter in span_exporters_from_env():
            provider.add_span_processor(BatchSpanProcessor(RedactingSpanExporter(exporter)))
        trace.set_tracer_provider(provider)
        _configure_propagators()
    for processor in span_processors:
        provider.add_span_processor(processor)
    _instrument_libraries(receiving=not isinstance(provider, _TracerProvider) or provider.receiving)
    return provider
