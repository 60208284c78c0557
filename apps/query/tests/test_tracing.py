"""Each probe is a span "mc.probe" (never the address in its name) with the mc.* and server.* attributes."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

import httpx
from mcstatbot_common.observability import setup_tracing
from mcstatbot_query.settings import QuerySettings
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

if TYPE_CHECKING:
    from mcstatbot_testkit.minecraft import JavaPeer

SettingsFactory = Callable[..., QuerySettings]
ClientFactory = Callable[[QuerySettings], AbstractAsyncContextManager[httpx.AsyncClient]]


async def test_probe_spans(
    java_peer: JavaPeer, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    exporter = InMemorySpanExporter()
    assert setup_tracing("query-tests", span_processors=[SimpleSpanProcessor(exporter)]) is not None
    async with client_factory(settings_factory()) as client:
        await client.get(f"/api/v1/status/{java_peer.address}")
        await client.get(f"/api/v1/status/{java_peer.address}")
    spans = exporter.get_finished_spans()
    probes = [s for s in spans if s.name == "mc.probe"]
    requests = [s for s in spans if s.name == "mc.status"]
    assert {s.attributes["mc.edition"] for s in probes if s.attributes} == {"java", "bedrock"}
    java = next(s for s in probes if s.attributes and s.attributes["mc.edition"] == "java")
    assert java.attributes is not None
    assert java.attributes["mc.outcome"] == "online"
    assert java.attributes["mc.cache_hit"] is False
    assert java.attributes["server.address"] == "127.0.0.1"
    assert java.attributes["server.port"] == java_peer.port
    assert [s.attributes["mc.cache_hit"] for s in requests if s.attributes] == [False, True]
    assert all(java_peer.address not in s.name and "127.0.0.1" not in s.name for s in spans)
    exporter.shutdown()
