"""The HTTP API's contract: 4xx for bad input (never 5xx), cache headers, ops endpoints, metrics."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest
from mcstatbot_common.models import MAX_SERVER_URL_LENGTH, ErrorResponse, ServerStatus
from mcstatbot_query.settings import QuerySettings
from mcstatbot_testkit.minecraft import JavaPeer
from mcstatbot_testkit.net import free_port
from prometheus_client.parser import text_string_to_metric_families

SettingsFactory = Callable[..., QuerySettings]
ClientFactory = Callable[[QuerySettings], AbstractAsyncContextManager[httpx.AsyncClient]]


def error_of(response: httpx.Response) -> ErrorResponse:
    return ErrorResponse.model_validate(response.json())


@pytest.mark.parametrize(
    ("server_url", "needle"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("host name", "spaces"),
        ("example.com:0", "port"),
        ("example.com:65536", "port"),
        ("example.com:port", "port"),
        ("http://example.com", "scheme"),
        ("exa_mple..com", "empty part"),
        ("[::1", "close"),
        ("1.2.3.999", "IP address"),
        ("a" * 254, "longer"),
        ("-bad-.com", "letters"),
    ],
)
async def test_invalid_address_is_400_with_code(
    server_url: str, needle: str, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    async with client_factory(settings_factory()) as client:
        post = await client.post("/api/v1/status", json={"server_url": server_url})
        players = await client.post("/api/v1/players", json={"server_url": server_url})
    for response in (post, players):
        assert response.status_code in {400, 422}, response.text
        detail = error_of(response).detail
        assert detail.code in {"invalid_address", "invalid_request"}
        assert needle.lower() in detail.message.lower() or detail.code == "invalid_request"
        assert response.headers["X-Cache"] == "MISS"


async def test_get_with_bad_address_is_400(
    settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    async with client_factory(settings_factory()) as client:
        response = await client.get("/api/v1/status/bad%20host")
    assert response.status_code == 400
    assert error_of(response).detail.code == "invalid_address"


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "invalid_json"),
        (
            {"content": b"[" * 5000 + b"]" * 5000, "headers": {"content-type": "application/json"}},
            400,
            "invalid_json",
        ),
        (
            {"content": b'{"server_url": "\xff"}', "headers": {"content-type": "application/json"}},
            400,
            "invalid_json",
        ),
        ({"json": {}}, 422, "invalid_request"),
        ({"json": {"server_url": 5}}, 422, "invalid_request"),
        ({"json": {"server_url": "example.com", "edition": "pocket"}}, 422, "invalid_request"),
        ({"json": ["example.com"]}, 422, "invalid_request"),
        ({"json": {"server_url": "x" * 400}}, 422, "invalid_request"),
        ({"content": b'{"server_url": "' + b"a" * 20000 + b'"}'}, 413, "body_too_large"),
    ],
)
async def test_malformed_requests_are_4xx_naming_the_problem(
    kwargs: dict[str, Any],
    status: int,
    code: str,
    settings_factory: SettingsFactory,
    client_factory: ClientFactory,
) -> None:
    async with client_factory(settings_factory()) as client:
        response = await client.post("/api/v1/status", **kwargs)
    assert response.status_code == status, response.text
    detail = error_of(response).detail
    assert detail.code == code
    assert detail.message


async def test_bad_edition_in_query_string_names_the_field(
    settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    async with client_factory(settings_factory()) as client:
        response = await client.get("/api/v1/status/example.com", params={"edition": "pocket"})
    assert response.status_code == 422
    assert "edition" in error_of(response).detail.message


async def test_wrong_method_is_405_with_allow(
    settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    async with client_factory(settings_factory()) as client:
        response = await client.delete("/api/v1/status")
        health = await client.post("/health")
    for answer, allowed in ((response, "POST"), (health, "GET")):
        assert answer.status_code == 405
        assert error_of(answer).detail.code == "method_not_allowed"
        assert allowed in answer.headers["Allow"]


async def test_unknown_route_is_json_404(
    settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    async with client_factory(settings_factory()) as client:
        response = await client.get("/api/v2/status/example.com")
    assert response.status_code == 404
    assert error_of(response).detail.code == "not_found"


async def test_cache_headers_miss_then_hit(
    java_peer: JavaPeer, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    async with client_factory(settings_factory()) as client:
        first = await client.get(f"/api/v1/status/{java_peer.address}", params={"edition": "java"})
        second = await client.post(
            "/api/v1/status", json={"server_url": java_peer.address, "edition": "java"}
        )
    assert first.headers["X-Cache"] == "MISS"
    assert first.headers["Cache-Control"] == "max-age=60, stale-while-revalidate=30"
    assert first.json()["cached"] is False
    assert second.headers["X-Cache"] == "HIT"
    match = re.fullmatch(r"max-age=(\d+), stale-while-revalidate=30", second.headers["Cache-Control"])
    assert match is not None
    assert 0 < int(match.group(1)) <= 60
    assert second.json()["cached"] is True
    assert ServerStatus.model_validate(second.json()).online


async def test_offline_answer_cached_for_offline_ttl_and_shared_with_players(
    settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    port = free_port()
    async with client_factory(settings_factory()) as client:
        status = await client.get(f"/api/v1/status/127.0.0.1:{port}", params={"edition": "java"})
        players = await client.get(f"/api/v1/players/127.0.0.1:{port}", params={"edition": "java"})
    assert status.headers["X-Cache"] == "MISS"
    assert status.headers["Cache-Control"] == "max-age=10, stale-while-revalidate=30"
    assert players.headers["X-Cache"] == "HIT"  # the :error key answers both kinds
    assert players.json()["online"] is False
    assert players.json()["error"]["code"] == "refused"


async def test_ops_endpoints(settings_factory: SettingsFactory, client_factory: ClientFactory) -> None:
    async with client_factory(settings_factory()) as client:
        health = await client.get("/health")
        ready = await client.get("/ready")
        await client.get("/api/v1/status/bad%20host")
        metrics = await client.get("/metrics")
        openapi = await client.get("/openapi.json")
    assert health.status_code == 200
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "cache": "memory", "cache_up": True}
    assert metrics.status_code == 200
    text = metrics.text
    for name in (
        "mcstatbot_probes_total",
        "mcstatbot_probe_duration_seconds",
        "mcstatbot_cache_requests_total",
        "mcstatbot_coalesced_waits_total",
        "mcstatbot_cache_backend_up",
        "mcstatbot_cache_backend_errors_total",
        "mcstatbot_errors_total",
        "mcstatbot_http_requests_total",
    ):
        assert name in text, name
    assert 'mcstatbot_errors_total{service="query",type="invalid_address"}' in text
    assert "mcstatbot_cache_backend_up 1.0" in text
    paths = openapi.json()["paths"]
    for path in ("/api/v1/status", "/api/v1/players", "/api/v1/status/{server_url}", "/health", "/ready"):
        assert path in paths, sorted(paths)


async def test_in_process_coalescing_one_probe_for_many_requests(
    tmp_path_factory: pytest.TempPathFactory, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    with JavaPeer(tmp_path_factory.mktemp("coalesce") / "java.log") as peer:
        async with client_factory(settings_factory()) as client:
            responses = await asyncio.gather(
                *(client.get(f"/api/v1/status/{peer.address}", params={"edition": "java"}) for _ in range(50))
            )
        assert peer.status_connections == 1
    assert all(r.status_code == 200 and r.json()["online"] for r in responses)


async def test_gets_answer_alike_whatever_else_their_query_string_holds(
    java_peer: JavaPeer, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    """An extra query parameter (ignored by the endpoints) changes nothing in the answer or its counting."""
    address = java_peer.address
    async with client_factory(settings_factory()) as client:
        before = (await client.get("/metrics")).text
        miss = await client.get(f"/api/v1/status/{address}", params={"edition": "java"})
        direct = await client.get(f"/api/v1/status/{address}", params={"edition": "java"})
        routed = await client.get(f"/api/v1/status/{address}", params={"edition": "java", "via": "fastapi"})
        players = [
            await client.get(f"/api/v1/players/{address}", params=params)
            for params in ({"edition": "java"}, {"edition": "java"}, {"edition": "java", "via": "fastapi"})
        ]
        bad = [await client.get("/api/v1/status/bad%20host", params=p) for p in ({}, {"via": "fastapi"})]
        invalid = [
            await client.get(f"/api/v1/status/{address}", params={"edition": "Java"}),
            await client.get(f"/api/v1/status/{'a' * (MAX_SERVER_URL_LENGTH + 1)}"),
            await client.get("/api/v1/status/"),
        ]
        metrics = (await client.get("/metrics")).text
    async with client_factory(settings_factory(allow_private_addresses=False)) as client:
        forbidden = [
            await client.get(f"/api/v1/status/{address}", params=p) for p in ({}, {"via": "fastapi"})
        ]
    assert miss.headers["X-Cache"] == "MISS"
    assert direct.content == routed.content
    assert direct.json()["cached"] is True
    for name in ("content-type", "x-cache", "content-length"):
        assert direct.headers[name] == routed.headers[name], name
    assert [p.headers["X-Cache"] for p in players] == ["MISS", "HIT", "HIT"]
    assert players[1].content == players[2].content
    for pair in (bad, forbidden):
        assert pair[0].status_code == pair[1].status_code
        assert pair[0].json() == pair[1].json()
        assert pair[0].headers["X-Cache"] == pair[1].headers["X-Cache"] == "MISS"
    assert [error_of(r).detail.code for r in bad] == ["invalid_address"] * 2
    assert [error_of(r).detail.code for r in forbidden] == ["forbidden_address"] * 2
    assert [r.status_code for r in invalid] == [422, 422, 400]
    # Every GET counts under the route template (the registry is the process's: compare with before).
    route = {"service": "query", "method": "GET", "route": "/api/v1/status/{server_url:path}"}
    for status, count in (("200", 3), ("400", 3)):
        labels = {**route, "status": status}
        moved = counter(metrics, "mcstatbot_http_requests_total", labels) - counter(
            before, "mcstatbot_http_requests_total", labels
        )
        assert moved == count, status


def counter(text: str, name: str, labels: dict[str, str]) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0
