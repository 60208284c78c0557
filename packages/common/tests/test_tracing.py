"""setup_tracing: X-Ray trace IDs, W3C + X-Ray propagation, spans from httpx, Redis, FastAPI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from mcstatbot_common.observability import instrument_app, setup_tracing
from mcstatbot_common.telemetry import (
    RedactingSpanExporter,
    current_trace_ids,
    span_exporters_from_env,
    xray_trace_id,
)
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

TOKEN = "123456789:AAFakeTokenForTracingTests_0123456789"  # noqa: S105 - a made-up token


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = setup_tracing("common-tests", span_processors=[SimpleSpanProcessor(exporter)])
    assert provider is not None
    yield exporter
    exporter.shutdown()  # the provider is process-wide: stop collecting for later test files


@pytest.fixture(autouse=True)
def _fresh(spans: InMemorySpanExporter) -> None:
    spans.clear()


def tracer() -> trace.Tracer:
    return trace.get_tracer("mcstatbot.tests")


def finished(exporter: InMemorySpanExporter, name: str | None = None) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if name is None or span.name == name]


def test_setup_tracing_is_idempotent_and_makes_xray_trace_ids(spans: InMemorySpanExporter) -> None:
    first = setup_tracing("common-tests")
    second = setup_tracing("common-tests")
    assert first is second
    assert isinstance(first, TracerProvider)
    with tracer().start_as_current_span("work") as span:
        trace_id = span.get_span_context().trace_id
    # AwsXRayIdGenerator: the first 32 bits are the epoch seconds when the trace began.
    assert abs(int(format(trace_id, "032x")[:8], 16) - time.time()) < 600
    assert xray_trace_id(trace_id) == f"1-{format(trace_id, '032x')[:8]}-{format(trace_id, '032x')[8:]}"
    assert [s.name for s in finished(spans)] == ["work"]


class HeaderRecorder:
    """A loopback HTTP server that answers 200 `{"ok":true}` and keeps each request's head."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in head[1:] if ": " in line)
        self.requests.append((head[0], {key.lower(): value for key, value in headers.items()}))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n")
        writer.write(b'{"ok":true}')
        await writer.drain()
        writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


async def test_httpx_client_spans_carry_w3c_and_xray_headers_and_no_token(
    spans: InMemorySpanExporter,
) -> None:
    recorder = HeaderRecorder()
    async with recorder as base_url, httpx.AsyncClient() as client:
        with tracer().start_as_current_span("update") as parent:
            response = await client.post(f"{base_url}/bot{TOKEN}/sendMessage", json={"text": "hi"})
    assert response.json() == {"ok": True}
    context = parent.get_span_context()
    [client_span] = [s for s in finished(spans) if s.kind is SpanKind.CLIENT]
    assert client_span.parent is not None
    assert client_span.parent.span_id == context.span_id
    assert client_span.context.trace_id == context.trace_id
    # The headers name the client span as the parent on the other side, in both formats.
    [(_, headers)] = recorder.requests
    trace_hex, span_hex = format(context.trace_id, "032x"), format(client_span.context.span_id, "016x")
    assert headers["traceparent"] == f"00-{trace_hex}-{span_hex}-01"
    assert headers["x-amzn-trace-id"] == f"Root={xray_trace_id(context.trace_id)};Parent={span_hex};Sampled=1"
    # The URL attribute is there, without the token.
    urls = [str(v) for k, v in (client_span.attributes or {}).items() if k in {"http.url", "url.full"}]
    assert urls
    assert all("/bot<redacted>/sendMessage" in url and TOKEN not in url for url in urls)


def test_redacting_exporter_cleans_names_attributes_events_and_status() -> None:
    inner = InMemorySpanExporter()
    exporter = RedactingSpanExporter(inner)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span(f"GET /bot{TOKEN}/getMe") as span:
        span.set_attribute("http.url", f"https://api.telegram.org/bot{TOKEN}/getMe")
        span.set_attribute("tags", [f"x {TOKEN}", "plain"])
        span.set_attribute("count", 3)
        span.add_event("retry", {"detail": f"token {TOKEN}"})
        span.set_status(StatusCode.ERROR, f"failed for {TOKEN}")
    with provider.get_tracer("t").start_as_current_span("clean") as clean:
        clean.set_attribute("mc.edition", "java")
    dirty_out, clean_out = inner.get_finished_spans()
    dumped = dirty_out.to_json()
    assert TOKEN not in dumped
    assert dirty_out.name == "GET /bot<redacted>/getMe"
    assert dirty_out.attributes is not None
    assert dirty_out.attributes["tags"] == ("x <redacted>", "plain")
    assert dirty_out.attributes["count"] == 3
    assert dirty_out.events[0].attributes == {"detail": "token <redacted>"}
    assert dirty_out.status.description == "failed for <redacted>"
    assert dirty_out.context.trace_id == span.get_span_context().trace_id
    assert clean_out.attributes == {"mc.edition": "java"}
    assert exporter.export([]) is SpanExportResult.SUCCESS


async def test_fastapi_server_spans_continue_the_callers_trace_and_skip_probes(
    spans: InMemorySpanExporter,
) -> None:
    app = FastAPI()

    @app.get("/api/v1/status/{server_url}")
    async def status(server_url: str) -> dict[str, str]:
        return {"address": server_url}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    instrument_app(app, "tracing-test")
    trace_hex, parent_hex = "6b0adf7262cf5a7779d6e2932679af3b", "c9da0a505591e067"
    xray_hex = "6b0adf7300000000000000000000abcd"
    xray_root = xray_trace_id(int(xray_hex, 16))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as client:
        assert (await client.get("/health")).status_code == 200
        await client.get("/metrics")
        w3c = await client.get(
            "/api/v1/status/play.example.com", headers={"traceparent": f"00-{trace_hex}-{parent_hex}-01"}
        )
        xray = await client.get(
            "/api/v1/status/mc.example.org",
            headers={"X-Amzn-Trace-Id": f"Root={xray_root};Parent={parent_hex};Sampled=1"},
        )
    assert w3c.json() == {"address": "play.example.com"}
    assert xray.status_code == 200
    server_spans = [s for s in finished(spans) if s.kind is SpanKind.SERVER]
    # Only the two API calls made spans; the span name is the route template, never the address.
    assert [s.name for s in server_spans] == ["GET /api/v1/status/{server_url}"] * 2
    by_trace = {format(s.context.trace_id, "032x"): s for s in server_spans}
    assert set(by_trace) == {trace_hex, xray_hex}
    for span in server_spans:
        assert span.parent is not None
        assert format(span.parent.span_id, "016x") == parent_hex
        assert span.parent.is_remote


async def test_server_spans_mark_failures_cover_error_handlers_and_honour_excluded_urls(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS", "/internal/.*,ping$")
    app = FastAPI()
    handled_in: list[dict[str, str]] = []

    @app.get("/boom/{what}")
    async def boom(what: str) -> None:
        raise RuntimeError(f"broken {what}")

    @app.get("/internal/{what}")
    async def internal(what: str) -> dict[str, str]:
        return {"what": what}

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"status": "pong"}

    async def on_error(_: Request, exc: Exception) -> JSONResponse:
        handled_in.append(current_trace_ids())  # the error handler runs inside the request's span
        return JSONResponse({"detail": str(exc)}, status_code=500)

    app.add_exception_handler(Exception, on_error)
    instrument_app(app, "tracing-errors")
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        assert (await client.get("/boom/now")).status_code == 500
        assert (await client.get("/internal/x")).status_code == 200
        assert (await client.get("/ping")).status_code == 200
        assert (await client.request("BREW", "/nowhere")).status_code == 404
    server_spans = [s for s in finished(spans) if s.kind is SpanKind.SERVER]
    assert [s.name for s in server_spans] == ["GET /boom/{what}", "HTTP"]
    failed, unmatched = server_spans
    assert failed.status.status_code is StatusCode.ERROR
    assert [event.name for event in failed.events] == ["exception"]
    # The exception event names it (the 500 answer sent after it leaves the status without a description).
    exception = dict(failed.events[0].attributes or {})
    assert (exception["exception.type"], exception["exception.message"]) == ("RuntimeError", "broken now")
    attributes = dict(failed.attributes or {})
    assert attributes["http.route"] == "/boom/{what}"
    assert attributes["http.response.status_code"] == 500
    assert attributes["url.path"] == "/boom/now"
    assert handled_in == [
        {
            "trace_id": format(failed.context.trace_id, "032x"),
            "span_id": format(failed.context.span_id, "016x"),
            "xray_trace_id": xray_trace_id(failed.context.trace_id),
        }
    ]
    assert (unmatched.attributes or {})["http.request.method"] == "_OTHER"
    assert (unmatched.attributes or {})["http.response.status_code"] == 404
    assert unmatched.status.status_code is StatusCode.UNSET


async def test_redis_commands_make_client_spans(spans: InMemorySpanExporter, tmp_path: Path) -> None:
    import redis.asyncio as aioredis  # noqa: PLC0415 - the query service's client
    from mcstatbot_testkit.redis import RedisServer  # noqa: PLC0415

    with RedisServer(tmp_path / "redis.log") as server:
        client = aioredis.from_url(server.url)
        try:
            with tracer().start_as_current_span("probe") as parent:
                await client.set("mc:server:play.example.com:status", "{}", ex=60)
                assert await client.get("mc:server:play.example.com:status") == b"{}"
        finally:
            await client.aclose()
    redis_spans = [s for s in finished(spans) if s.name in {"SET", "GET"}]
    assert [s.name for s in redis_spans] == ["SET", "GET"]
    for span in redis_spans:
        assert span.kind is SpanKind.CLIENT
        assert span.parent is not None
        assert span.parent.span_id == parent.get_span_context().span_id


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, []),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, ["OTLPSpanExporter"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, ["OTLPSpanExporter"]),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, ["OTLPSpanExporter"]),
        ({"OTEL_TRACES_EXPORTER": "console,otlp"}, ["ConsoleSpanExporter", "OTLPSpanExporter"]),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, []),
    ],
)
def test_exporters_follow_the_otel_variables(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: list[str]
) -> None:
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert [type(exporter).__name__ for exporter in span_exporters_from_env()] == expected


PROBE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from opentelemetry import propagate, trace
    from mcstatbot_common.observability import setup_tracing
    provider = setup_tracing(sys.argv[1])
    if provider is None:
        print(json.dumps({"disabled": True}))
        raise SystemExit
    carrier = {}
    with trace.get_tracer("probe").start_as_current_span("work"):
        propagate.inject(carrier)
    provider.shutdown()
    print(json.dumps({
        "service": provider.resource.attributes.get("service.name"),
        "headers": sorted(key.lower() for key in carrier),
        "processors": len(provider._active_span_processor._span_processors),
    }))
    """
)


def run_probe(env: dict[str, str], service: str = "query") -> tuple[dict[str, Any], str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE_SCRIPT, service],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout), done.stderr


def test_without_a_collector_nothing_is_exported_and_nothing_is_logged() -> None:
    result, stderr = run_probe({})
    assert result == {"service": "query", "headers": ["traceparent", "x-amzn-trace-id"], "processors": 0}
    assert stderr == ""


def test_service_name_and_propagators_follow_the_otel_variables() -> None:
    result, _ = run_probe({"OTEL_SERVICE_NAME": "mcstatbot-query-eu", "OTEL_PROPAGATORS": "tracecontext"})
    assert result["service"] == "mcstatbot-query-eu"
    assert result["headers"] == ["traceparent"]
    result, _ = run_probe({"OTEL_PROPAGATORS": "xray"})
    assert result["headers"] == ["x-amzn-trace-id"]


def test_sdk_disabled_turns_tracing_off() -> None:
    result, stderr = run_probe({"OTEL_SDK_DISABLED": "true"})
    assert result == {"disabled": True}
    assert stderr == ""


RECORDING_SCRIPT = textwrap.dedent(
    """
    import json
    from opentelemetry import propagate, trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from mcstatbot_common.logging import current_trace_ids
    from mcstatbot_common.observability import setup_tracing

    def one_span():
        carrier = {}
        with trace.get_tracer("probe").start_as_current_span("work") as span:
            span.set_attribute("mc.edition", "java")
            propagate.inject(carrier)
            ids = current_trace_ids()
            recording = span.is_recording()
        return {"recording": recording, "ids": sorted(ids), "traceparent": carrier["traceparent"]}

    provider = setup_tracing("query")
    unheard = one_span()
    exporter = InMemorySpanExporter()
    setup_tracing("query", span_processors=[SimpleSpanProcessor(exporter)])
    heard = one_span()
    print(json.dumps({"unheard": unheard, "heard": heard,
                      "exported": [s.name for s in exporter.get_finished_spans()]}))
    """
)


def test_spans_are_recorded_only_once_something_receives_them() -> None:
    """Without an exporter or processor spans keep their IDs (logs, propagation) but record nothing."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", RECORDING_SCRIPT],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(done.stdout)
    for key in ("unheard", "heard"):
        assert result[key]["ids"] == ["span_id", "trace_id", "xray_trace_id"]
    assert result["unheard"]["recording"] is False
    assert result["unheard"]["traceparent"].endswith("-00")  # travels, marked not sampled
    assert result["heard"]["recording"] is True
    assert result["heard"]["traceparent"].endswith("-01")
    assert result["exported"] == ["work"]
    assert done.stderr == ""


SEMCONV_SCRIPT = textwrap.dedent(
    """
    import os
    from mcstatbot_common.observability import setup_tracing
    setup_tracing("query")
    print(os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"])
    """
)


@pytest.mark.parametrize(("given", "expected"), [(None, "http"), ("http/dup", "http/dup")])
def test_stable_http_semantic_conventions_unless_the_environment_chose(
    given: str | None, expected: str
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    if given is not None:
        clean["OTEL_SEMCONV_STABILITY_OPT_IN"] = given
    done = subprocess.run(
        [sys.executable, "-c", SEMCONV_SCRIPT],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == expected
