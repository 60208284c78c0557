"""One structured INFO line per API request: route, outcome, duration, cache hit, trace id; none for ops."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

import httpx
from mcstatbot_common.logging import JsonFormatter
from mcstatbot_query.settings import QuerySettings

if TYPE_CHECKING:
    import pytest
    from mcstatbot_testkit.minecraft import JavaPeer

SettingsFactory = Callable[..., QuerySettings]
ClientFactory = Callable[[QuerySettings], AbstractAsyncContextManager[httpx.AsyncClient]]


async def test_one_line_per_api_request_and_none_for_ops(
    java_peer: JavaPeer,
    settings_factory: SettingsFactory,
    client_factory: ClientFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="mcstatbot_query.requests")
    async with client_factory(settings_factory()) as client:
        url = f"/api/v1/status/{java_peer.address}"
        await client.get(url, params={"edition": "java"})
        await client.get(url, params={"edition": "java"})
        await client.post("/api/v1/players", json={"server_url": "bad host"})
        await client.post("/api/v1/status", json={})
        await client.post("/api/v1/status", content=b"x" * 20_000)
        for path in ("/health", "/ready", "/metrics"):
            await client.get(path)
    lines = [r for r in caplog.records if r.name == "mcstatbot_query.requests"]
    assert [r.levelno for r in lines] == [logging.INFO] * 5
    fields = [
        (r.__dict__["route"], r.__dict__["status"], r.__dict__["outcome"], r.__dict__["cache_hit"])
        for r in lines
    ]
    assert fields == [
        ("/api/v1/status/{server_url:path}", 200, "online", False),
        ("/api/v1/status/{server_url:path}", 200, "online", True),
        ("/api/v1/players", 400, "invalid_address", False),
        ("/api/v1/status", 422, "invalid_request", False),
        ("unmatched", 413, "body_too_large", False),  # refused before routing
    ]
    for record in lines:
        assert record.__dict__["duration_ms"] >= 0
        assert record.__dict__["method"] in {"GET", "POST"}
        assert java_peer.address not in record.getMessage()  # the route template, never the address


async def test_the_line_carries_the_trace_id_of_the_request(
    settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    """The JSON line as the services write it (formatted when written, inside the request's span)."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("mcstatbot_query.requests")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    try:
        async with client_factory(settings_factory()) as client:
            await client.get(
                "/api/v1/status/bad%20host", headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
            )
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    (line,) = out.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["trace_id"] == trace_id
    assert entry["level"] == "INFO"
    assert (entry["route"], entry["outcome"], entry["cache_hit"]) == (
        "/api/v1/status/{server_url:path}",
        "invalid_address",
        False,
    )
