"""configure_logging: JSON lines with trace ids and log_context fields, text format, no bot token anywhere."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import logging.config
import sys
import threading
import warnings
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from mcstatbot_common import logging as mclogging
from mcstatbot_common.logging import UVICORN_LOG_CONFIG, configure_logging, log_context, redact
from opentelemetry.sdk.trace import TracerProvider
from telegram import Bot
from telegram.error import NetworkError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from opentelemetry.trace import Tracer

TOKEN = "987654321:AAFakeTokenForLoggingTests_abcdefghijk"  # noqa: S105 - a made-up token
SHORT_TOKEN = "42:shortsecret99"  # noqa: S105 - too short for the pattern: only the registered value redacts it


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """configure_logging() writing into a StringIO; the root logger and hooks are restored afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, sys.excepthook, threading.excepthook)
    uvicorn_saved = {
        name: (
            logging.getLogger(name).handlers[:],
            logging.getLogger(name).propagate,
            logging.getLogger(name).level,
        )
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
    }
    saved_secrets = set(mclogging._secrets)
    buffer = io.StringIO()
    yield buffer
    root.handlers[:], level, sys.excepthook, threading.excepthook = saved
    root.setLevel(level)
    for name, (handlers, propagate, level) in uvicorn_saved.items():
        logging.getLogger(name).handlers[:] = handlers
        logging.getLogger(name).propagate = propagate
        logging.getLogger(name).setLevel(level)
    logging.captureWarnings(capture=False)
    mclogging._secrets.clear()
    mclogging._secrets.update(saved_secrets)


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def fail(message: str, kind: type[Exception] = RuntimeError) -> None:
    raise kind(message)


def tracer() -> Tracer:
    return TracerProvider().get_tracer("test")


def test_json_line_has_level_logger_message_and_service(stream: io.StringIO) -> None:
    configure_logging("INFO", "json", service="query", stream=stream)
    logging.getLogger("mcstatbot.test").info("hello %s", "world")
    [entry] = lines(stream)
    assert entry["level"] == "INFO"
    assert entry["logger"] == "mcstatbot.test"
    assert entry["message"] == "hello world"
    assert entry["service"] == "query"
    assert "trace_id" not in entry  # no span: no trace fields


def test_json_line_carries_trace_and_span_id_of_the_current_span(stream: io.StringIO) -> None:
    configure_logging("INFO", "json", stream=stream)
    with tracer().start_as_current_span("work") as span:
        logging.getLogger("mcstatbot.test").warning("inside")
        context = span.get_span_context()
    [entry] = lines(stream)
    assert entry["trace_id"] == format(context.trace_id, "032x")
    assert entry["span_id"] == format(context.span_id, "016x")
    hex_id = entry["trace_id"]
    assert entry["xray_trace_id"] == f"1-{hex_id[:8]}-{hex_id[8:]}"


def test_log_context_adds_update_id_and_extra_fields(stream: io.StringIO) -> None:
    configure_logging("INFO", "json", stream=stream)
    log = logging.getLogger("mcstatbot.test")
    with log_context(update_id=1234):
        log.info("handled", extra={"command": "status"})
    log.info("after")
    first, second = lines(stream)
    assert first["update_id"] == 1234
    assert first["command"] == "status"
    assert "update_id" not in second


async def test_log_context_is_per_task(stream: io.StringIO) -> None:
    configure_logging("INFO", "json", stream=stream)
    log = logging.getLogger("mcstatbot.test")

    async def handle(update_id: int) -> None:
        with log_context(update_id=update_id):
            await asyncio.sleep(0.01)
            log.info("update %s", update_id)

    await asyncio.gather(handle(1), handle(2), handle(3))
    assert {entry["message"]: entry["update_id"] for entry in lines(stream)} == {
        "update 1": 1,
        "update 2": 2,
        "update 3": 3,
    }


def test_text_format_is_one_readable_line_with_ids(stream: io.StringIO) -> None:
    configure_logging("DEBUG", "text", stream=stream)
    with tracer().start_as_current_span("work") as span, log_context(update_id=7):
        logging.getLogger("mcstatbot.test").debug("plain words")
    line = stream.getvalue().strip()
    assert "DEBUG" in line
    assert "mcstatbot.test: plain words" in line
    assert f"trace_id={format(span.get_span_context().trace_id, '032x')}" in line
    assert "update_id=7" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_level_filters_records(stream: io.StringIO) -> None:
    configure_logging("WARNING", "json", stream=stream)
    logging.getLogger("mcstatbot.test").info("hidden")
    logging.getLogger("mcstatbot.test").error("shown")
    assert [entry["message"] for entry in lines(stream)] == ["shown"]


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_token_is_redacted_in_messages_args_extras_and_tracebacks(stream: io.StringIO, fmt: str) -> None:
    configure_logging("DEBUG", fmt, stream=stream)
    log = logging.getLogger("telegram.ext.Application")
    url = f"https://api.telegram.org/bot{TOKEN}/getUpdates"
    log.info("calling %s", url)
    log.info("token in extra", extra={"url": url})
    log.info("url-encoded %s", f"https://example.invalid/?t={TOKEN.replace(':', '%3A')}")
    try:
        fail(f"request to {url} failed")
    except RuntimeError:
        log.exception("failed")
    output = stream.getvalue()
    assert output.count("<redacted>") >= (4 if fmt == "json" else 3)  # text lines carry no extras
    assert TOKEN not in output
    assert TOKEN.split(":")[1] not in output
    assert "request to https://api.telegram.org/bot<redacted>/getUpdates failed" in output


def test_configured_token_is_redacted_even_when_it_looks_like_no_token(
    stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", SHORT_TOKEN)
    monkeypatch.setenv("WEBHOOK_SECRET", "whsec-0123456789")
    configure_logging("INFO", "json", stream=stream)
    logging.getLogger("x").info("GET /bot%s/getMe", SHORT_TOKEN)
    logging.getLogger("x").info("secret half alone: shortsecret99")
    logging.getLogger("x").info("header was %s", "whsec-0123456789")
    output = stream.getvalue()
    assert SHORT_TOKEN not in output
    assert "shortsecret99" not in output
    assert "whsec-0123456789" not in output
    assert output.count("<redacted>") == 3


def test_redact_keeps_ordinary_text() -> None:
    text = "play.example.com:25565 answered in 12 ms; chat 123456789 asked"
    assert redact(text) == text


async def test_python_telegram_bot_network_errors_leak_no_token(stream: io.StringIO) -> None:
    """PTB with DEBUG logging, talking to a Bot API URL where nothing listens: no line has the token."""
    from mcstatbot_testkit.net import free_port  # noqa: PLC0415

    configure_logging("DEBUG", "json", stream=stream)
    port = free_port()
    bot = Bot(TOKEN, base_url=f"http://127.0.0.1:{port}/bot")
    with pytest.raises(NetworkError) as caught:
        await bot.get_me()
    logging.getLogger("mcstatbot_bot.test").error("Bot API failed", exc_info=caught.value)
    await bot.shutdown()
    output = stream.getvalue()
    assert "Bot API failed" in output
    assert TOKEN not in output
    assert TOKEN.split(":")[1] not in output


async def test_httpx_request_lines_are_silenced(stream: io.StringIO) -> None:
    """httpx logs each request URL at INFO (Bot API URLs carry the token): configure_logging hides them."""
    configure_logging("DEBUG", "json", stream=stream)
    transport = httpx.MockTransport(lambda _request: httpx.Response(200, json={"ok": True}))
    async with httpx.AsyncClient(transport=transport) as client:
        await client.get(f"https://api.telegram.org/bot{TOKEN}/getMe")
    assert TOKEN not in stream.getvalue()
    assert "getMe" not in stream.getvalue()


def test_uvicorn_loggers_go_through_the_same_handler_and_skip_probe_lines(stream: io.StringIO) -> None:
    logging.getLogger("uvicorn.access").addHandler(logging.StreamHandler(io.StringIO()))
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)  # as an earlier uvicorn.run may leave it
    configure_logging("INFO", "json", stream=stream)
    logging.config.dictConfig(UVICORN_LOG_CONFIG)
    access = logging.getLogger("uvicorn.access")
    access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/health", "1.1", 200)
    access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "POST", "/api/v1/status", "1.1", 200)
    logging.getLogger("uvicorn.error").error("boom")
    entries = lines(stream)
    assert [entry["logger"] for entry in entries] == ["uvicorn.access", "uvicorn.error"]
    assert "/api/v1/status" in entries[0]["message"]
    assert not logging.getLogger("uvicorn.access").handlers


def test_uncaught_exceptions_and_warnings_are_logged_redacted(stream: io.StringIO) -> None:
    configure_logging("INFO", "json", stream=stream)
    try:
        fail(f"bad {TOKEN}", ValueError)
    except ValueError as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)

    def crash() -> None:
        raise RuntimeError(f"thread saw {TOKEN}")

    worker = threading.Thread(target=crash, name="worker-1")
    worker.start()
    worker.join()
    warnings.warn(f"careful with {TOKEN}", UserWarning, stacklevel=1)
    entries = lines(stream)
    output = stream.getvalue()
    assert TOKEN not in output
    assert [entry["logger"] for entry in entries] == [
        "mcstatbot.uncaught",
        "mcstatbot.uncaught",
        "py.warnings",
    ]
    assert "ValueError: bad <redacted>" in entries[0]["exc_info"]
    assert "worker-1" in entries[1]["message"]
