"""One update's run, in process: outcomes, the span with its attributes, state-store child spans, and
log lines that carry the update_id (but never the message text)."""

from __future__ import annotations

import io
import json
import logging

from mcstatbot_bot.state import ResilientStore
from mcstatbot_bot.state.memory import MemoryStore
from mcstatbot_bot.updates import Outcome, UpdateRunner, describe, mark_current_update_failed
from mcstatbot_common.logging import JsonFormatter
from mcstatbot_common.observability import setup_tracing
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from telegram import Update


def _update(update_id: int, text: str) -> Update:
    body = {
        "update_id": update_id,
        "message": {
            "message_id": 1,
            "date": 1_700_000_000,
            "chat": {"id": 5, "type": "private"},
            "text": text,
            "entities": [{"type": "bot_command", "offset": 0, "length": len(text.split(maxsplit=1)[0])}],
        },
    }
    return Update.de_json(body, None)


def test_describe() -> None:
    assert describe(_update(1, "/status@SomeBot play.example.com")) == "/status"
    callback = Update.de_json(
        {
            "update_id": 2,
            "callback_query": {
                "id": "1",
                "from": {"id": 1, "is_bot": False, "first_name": "x"},
                "chat_instance": "c",
                "data": "v1|p|a|host",
            },
        },
        None,
    )
    assert describe(callback) == "callback:p"
    inline = Update.de_json(
        {
            "update_id": 3,
            "inline_query": {
                "id": "9",
                "from": {"id": 1, "is_bot": False, "first_name": "x"},
                "query": "secret.example.com",
                "offset": "",
            },
        },
        None,
    )
    assert describe(inline) == "inline"


async def test_outcomes_spans_and_log_context() -> None:
    exporter = InMemorySpanExporter()
    provider = setup_tracing("bot", span_processors=[SimpleSpanProcessor(exporter)])
    assert provider is not None
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("bot"))
    logger = logging.getLogger("mcstatbot_bot.test_runner")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    runner = UpdateRunner(ResilientStore(MemoryStore()), lease_seconds=60)
    seen: list[int] = []

    async def handle(update: Update) -> None:
        seen.append(update.update_id)
        logger.info("handling")

    async def fail(update: Update) -> None:
        seen.append(-update.update_id)
        mark_current_update_failed()  # what the PTB error handler does

    try:
        update = _update(4242, "/status secret.example.com")
        assert await runner.run(update, handle) is Outcome.HANDLED
        assert await runner.run(update, handle) is Outcome.DUPLICATE
        other = _update(4243, "/players x")
        assert await runner.run(other, fail) is Outcome.FAILED
        assert await runner.run(other, handle) is Outcome.HANDLED  # the failed claim was released
    finally:
        logger.removeHandler(handler)
    assert seen == [4242, -4243, 4243]

    spans = exporter.get_finished_spans()
    updates = [s for s in spans if s.name == "telegram.update"]
    assert [s.attributes["telegram.update_id"] for s in updates if s.attributes] == [4242, 4242, 4243, 4243]
    first = updates[0]
    assert first.attributes is not None
    assert first.attributes["telegram.command"] == "/status"
    assert first.attributes["telegram.outcome"] == "handled"
    children = [s for s in spans if s.parent is not None and s.parent.span_id == first.context.span_id]
    assert {s.name for s in children} >= {"state.claim_update", "state.finish_update"}
    assert all("secret.example.com" not in str(s.attributes) for s in spans)

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["update_id"] for line in lines] == [4242, 4243]
    assert all("secret.example.com" not in json.dumps(line) for line in lines)


async def test_one_structured_line_per_update() -> None:
    assert setup_tracing("bot") is not None
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("bot"))
    logger = logging.getLogger("mcstatbot_bot.updates")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    runner = UpdateRunner(ResilientStore(MemoryStore()), 60, frozenset({"status", "players"}))

    async def handle(_: Update) -> None:
        return None

    async def fail(_: Update) -> None:
        mark_current_update_failed()

    try:
        await runner.run(_update(7001, "/status secret.example.com"), handle)
        await runner.run(_update(7001, "/status secret.example.com"), handle)
        await runner.run(_update(7002, "/players secret.example.com"), fail)
        await runner.run(_update(7003, "/mysecretword hello"), handle)
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    summary = [line for line in lines if "outcome" in line]
    assert [(line["update_id"], line["command"], line["outcome"]) for line in summary] == [
        (7001, "status", "handled"),
        (7001, "status", "duplicate"),
        (7002, "players", "failed"),
        (7003, "other", "handled"),
    ]
    for line in summary:
        assert line["level"] == "INFO"
        assert isinstance(line["duration_ms"], float)
        assert len(line["trace_id"]) == 32
    assert summary[0]["trace_id"] != summary[1]["trace_id"]  # each update its own span
    text = stream.getvalue()
    assert "secret" not in text
    assert "hello" not in text
