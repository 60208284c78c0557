"""Logging setup for both services: one JSON object per line, or plain text (LOG_FORMAT).

Every line carries the level, the logger, the message, the `trace_id`/`span_id` (and X-Ray form) of the
span it was written in, and the fields of the enclosing `log_context()` (e.g. `update_id`). Anything
shaped like a Telegram bot token, and the configured token itself, is replaced by `<redacted>` in the
whole line, tracebacks included.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import quote

from opentelemetry import trace

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import TracebackType

__all__ = [
    "UVICORN_LOG_CONFIG",
    "JsonFormatter",
    "RedactingFilter",
    "TextFormatter",
    "configure_logging",
    "current_trace_ids",
    "log_context",
    "redact",
    "register_secret",
]

REDACTED = "<redacted>"
# `<bot id>:<secret>`, also URL-encoded (`%3A`), with or without the `bot` prefix of Bot API URLs.
_BOT_TOKEN = re.compile(r"(?<![A-Za-z0-9])(bot)?\d{5,}(?::|%3[Aa])[A-Za-z0-9_-]{20,}")
_MIN_SECRET_LENGTH = 8
_SECRET_VARIABLES = ("TELEGRAM_BOT_TOKEN", "WEBHOOK_SECRET")
_secrets: set[str] = set()
_LOG_CONTEXT: ContextVar[dict[str, Any] | None] = ContextVar("mcstatbot_log_context", default=None)
# `color_message` is uvicorn's copy of the message with terminal colour codes.
_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
_QUIET_PATHS = ("/health", "/ready", "/metrics")

# For `uvicorn.run(..., log_config=UVICORN_LOG_CONFIG)` (or `log_config=None`): uvicorn's own loggers keep
# no handlers of their own and go through the root handler that `configure_logging` installed.
UVICORN_LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {name: {"handlers": [], "propagate": True} for name in _UVICORN_LOGGERS},
}


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add `fields` (e.g. `update_id=...`) to every log record written inside the block, in this task."""
    token = _LOG_CONTEXT.set({**(_LOG_CONTEXT.get() or {}), **fields})
    try:
        yield
    finally:
        _LOG_CONTEXT.reset(token)


def register_secret(value: str | None) -> None:
    """Redact this exact value (and its URL-encoded form) from every log line from now on.

    `configure_logging` registers `TELEGRAM_BOT_TOKEN` and `WEBHOOK_SECRET` itself. The pattern catches
    real tokens anyway; this also covers short test tokens and the secret half of a token on its own.
    """
    if not value or len(value) < _MIN_SECRET_LENGTH:
        return
    _secrets.update({value, quote(value, safe="")})
    _, sep, secret_half = value.partition(":")
    if sep and len(secret_half) >= _MIN_SECRET_LENGTH:
        _secrets.add(secret_half)


def redact(text: str) -> str:
    """Hide anything shaped like a Telegram bot token (it appears in Bot API URLs) and registered secrets."""
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return _BOT_TOKEN.sub(lambda m: f"{m.group(1) or ''}{REDACTED}", text)


def current_trace_ids() -> dict[str, str]:
    """`trace_id`, `span_id` (hex) and `xray_trace_id` of the current span; empty outside any span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    trace_id = format(context.trace_id, "032x")
    return {
        "trace_id": trace_id,
        "span_id": format(context.span_id, "016x"),
        "xray_trace_id": f"1-{trace_id[:8]}-{trace_id[8:]}",
    }


class RedactingFilter(logging.Filter):
    """Redacts the message of each record before any handler or formatter sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class _QuietProbesFilter(logging.Filter):
    """Drops uvicorn access lines for health checks and scrapes (they would drown everything else)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.levelno <= logging.INFO and isinstance(args, tuple) and len(args) >= 3:  # noqa: PLR2004
            path = str(args[2]).split("?", 1)[0]
            return path not in _QUIET_PATHS
        return True


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str | None = None) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.service:
            entry["service"] = self.service
        entry.update(current_trace_ids())
        entry.update(_LOG_CONTEXT.get() or {})
        entry.update(
            (key, value)
            for key, value in record.__dict__.items()
            if key not in _STANDARD_ATTRS and not key.startswith("_")
        )
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return redact(json.dumps(entry, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = {**current_trace_ids(), **(_LOG_CONTEXT.get() or {})}
        fields.pop("xray_trace_id", None)
        if fields:
            head, newline, rest = line.partition("\n")
            suffix = " ".join(f"{key}={value}" for key, value in fields.items())
            line = f"{head} [{suffix}]{newline}{rest}"
        return redact(line)


def _log_uncaught(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None, where: str
) -> None:
    logging.getLogger("mcstatbot.uncaught").critical(
        "uncaught exception in %s", where, exc_info=(exc_type, exc, tb)
    )


def _excepthook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    _log_uncaught(exc_type, exc, tb, "the main thread")


def _thread_excepthook(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None or issubclass(args.exc_type, SystemExit):
        return
    name = args.thread.name if args.thread is not None else "a thread"
    _log_uncaught(args.exc_type, args.exc_value, args.exc_traceback, name)


def configure_logging(
    level: str = "INFO", fmt: str = "json", service: str | None = None, stream: TextIO | None = None
) -> None:
    """Send every log record to stderr as JSON lines (`fmt="json"`) or text, with tokens redacted.

    Also routes uvicorn's loggers, Python warnings and uncaught exceptions (main thread and other
    threads) through the same handler, so a traceback is redacted like any other line. `service`, when
    given, is written into every JSON line; `stream` defaults to stderr.
    """
    for variable in _SECRET_VARIABLES:
        register_secret(os.environ.get(variable))
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter(service) if fmt == "json" else TextFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _UVICORN_LOGGERS:
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.setLevel(logging.NOTSET)  # LOG_LEVEL (the root's level) decides
        uvicorn_logger.propagate = True
        uvicorn_logger.disabled = False
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(existing, _QuietProbesFilter) for existing in access.filters):
        access.addFilter(_QuietProbesFilter())
    # httpx logs every request URL at INFO; Bot API URLs contain the token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.captureWarnings(capture=True)
    sys.excepthook = _excepthook
    threading.excepthook = _thread_excepthook
