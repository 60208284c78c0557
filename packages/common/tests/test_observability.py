"""instrument_app: HTTP metrics by route template (bounded labels), the process collector, GET /metrics."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from mcstatbot_common.observability import instrument_app
from prometheus_client.parser import text_string_to_metric_families


def sample_value(text: str, name: str, labels: dict[str, str]) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


async def test_metrics_count_requests_by_route_template_with_process_metrics() -> None:
    app = FastAPI()
    service = "metrics-test"

    @app.get("/api/v1/status/{server_url}")
    async def status(server_url: str) -> dict[str, str]:
        return {"address": server_url}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("broken handler")

    instrument_app(app, service)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        for host in ("a.example.com", "b.example.com", "c.example.com"):
            assert (await client.get(f"/api/v1/status/{host}")).status_code == 200
        assert (await client.get("/no/such/path/for/anyone")).status_code == 404
        assert (await client.get("/boom")).status_code == 500
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    route = "/api/v1/status/{server_url}"
    ok = {"service": service, "method": "GET", "route": route, "status": "200"}
    assert sample_value(text, "mcstatbot_http_requests_total", ok) == 3
    # No address ever becomes a label value: unknown paths share one "unmatched" route.
    assert "a.example.com" not in text
    assert "/no/such/path" not in text
    unmatched = {"service": service, "route": "unmatched", "status": "404"}
    assert sample_value(text, "mcstatbot_http_requests_total", unmatched) == 1
    assert sample_value(text, "mcstatbot_http_requests_total", {"service": service, "status": "500"}) == 1
    count = sample_value(
        text, "mcstatbot_http_request_duration_seconds_count", {"service": service, "route": route}
    )
    assert count == 3
    bucket = {"service": service, "route": route, "le": "+Inf"}
    assert sample_value(text, "mcstatbot_http_request_duration_seconds_bucket", bucket) == 3
    # /metrics itself is not counted (scrapes would dominate).
    assert (
        sample_value(text, "mcstatbot_http_requests_total", {"service": service, "route": "/metrics"}) is None
    )
    # The process collector: CPU and memory per pod for the dashboard.
    cpu = sample_value(text, "process_cpu_seconds_total", {})
    memory = sample_value(text, "process_resident_memory_bytes", {})
    assert cpu is not None
    assert cpu > 0
    assert memory is not None
    assert memory > 10_000_000
    assert sample_value(text, "mcstatbot_build_info", {"service": service, "version": "unknown"}) == 1


async def test_unusual_methods_share_one_label() -> None:
    app = FastAPI()
    instrument_app(app, "methods-test")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as client:
        await client.request("PROPFIND", "/x")
        await client.request("BREW", "/x")
        text = (await client.get("/metrics")).text
    labels = {"service": "methods-test", "method": "OTHER", "route": "unmatched"}
    assert sample_value(text, "mcstatbot_http_requests_total", labels) == 2
    assert "BREW" not in text
