"""The query client: retry, breaker, 4xx meaning, against real HTTP servers on loopback.

Most tests use a small FastAPI stand-in that serves the query API's shape and can be told to fail
(5xx, hang, refuse), because the real service cannot be made to do that on demand; the last tests use
the real query service (`python -m mcstatbot_query`) with a real Java peer behind it.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from mcstatbot_bot.breaker import BreakerState, CircuitBreaker
from mcstatbot_bot.clients import query_http_client
from mcstatbot_bot.query_client import QueryClient, QueryRejected, QueryUnavailable
from mcstatbot_common.models import MAX_BATCH_SERVERS, MAX_REQUEST_BODY_BYTES, Edition, ServerStatus
from mcstatbot_testkit.net import LOOPBACK, async_wait_for_tcp, free_port

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import httpx
    from mcstatbot_testkit.minecraft import JavaPeer
    from mcstatbot_testkit.services import ServiceProcess

STATUS = {
    "address": "a.example:25565",
    "host": "a.example",
    "port": 25565,
    "edition": "java",
    "online": True,
    "retrieved_at": "2026-11-28T09:00:00Z",
}


class StandIn:
    """Serves POST /api/v1/status and /players; `script` lists what the next requests get."""

    def __init__(self) -> None:
        self.script: list[int | str] = []  # status code, or "hang"
        self.bodies: list[dict[str, Any]] = []
        self.healthy = True
        self.app = FastAPI()

        @self.app.get("/health")
        async def health() -> JSONResponse:
            return JSONResponse(
                {"status": "ok"} if self.healthy else {"status": "down"}, 200 if self.healthy else 503
            )

        @self.app.post("/api/v1/{endpoint}")
        async def endpoint(endpoint: str, request: Request) -> JSONResponse:
            self.bodies.append(await request.json())
            step = self.script.pop(0) if self.script else 200
            if step == "hang":
                await asyncio.sleep(2)  # longer than the client's timeout in the test
            if step == 403:
                return JSONResponse({"detail": {"code": "forbidden_address", "message": "loopback"}}, 403)
            if step == 400:
                return JSONResponse({"detail": {"code": "invalid_address", "message": "bad port"}}, 400)
            if step == 422:
                return JSONResponse({"detail": [{"loc": ["body"], "msg": "x"}]}, 422)
            if isinstance(step, int) and step >= 500:
                return JSONResponse({"detail": "boom"}, step)
            if endpoint == "players":
                return JSONResponse({"address": "a.example:25565", "online": True, "names": ["Steve"]})
            return JSONResponse(STATUS)


@pytest.fixture
async def stand_in() -> AsyncIterator[tuple[StandIn, str]]:
    server_app = StandIn()
    port = free_port()
    config = uvicorn.Config(
        server_app.app, host=LOOPBACK, port=port, log_level="warning", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await async_wait_for_tcp(port)
    try:
        yield server_app, f"http://{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        await task


async def _no_sleep(_: float) -> None:
    return None


def _client(url: str, breaker: CircuitBreaker | None = None, timeout: float = 3.0) -> QueryClient:
    http = query_http_client(url, timeout=timeout)
    return QueryClient(http, breaker or CircuitBreaker(3, 30), timeout=timeout, retries=1, sleep=_no_sleep)


async def test_ok_and_body(stand_in: tuple[StandIn, str]) -> None:
    fake, url = stand_in
    client = _client(url)
    status = await client.status("a.example", Edition.JAVA)
    assert status.online
    players = await client.players("a.example")
    assert players.names == ["Steve"]
    assert fake.bodies == [
        {"server_url": "a.example", "edition": "java"},
        {"server_url": "a.example", "edition": "auto"},
    ]


async def test_one_retry_after_a_5xx(stand_in: tuple[StandIn, str]) -> None:
    fake, url = stand_in
    fake.script = [503]
    assert (await _client(url).status("a.example")).online
    assert len(fake.bodies) == 2


async def test_two_failures_are_unavailable(stand_in: tuple[StandIn, str]) -> None:
    fake, url = stand_in
    fake.script = [500, 502]
    with pytest.raises(QueryUnavailable):
        await _client(url).status("a.example")
    assert len(fake.bodies) == 2


async def test_timeout_is_unavailable(stand_in: tuple[StandIn, str]) -> None:
    fake, url = stand_in
    fake.script = ["hang", "hang"]
    with pytest.raises(QueryUnavailable, match="timeout"):
        await _client(url, timeout=0.3).status("a.example")


@pytest.mark.parametrize(
    ("code", "expected"), [(403, "forbidden_address"), (400, "invalid_address"), (422, "invalid_address")]
)
async def test_4xx_is_its_meaning_not_an_outage(
    stand_in: tuple[StandIn, str], code: int, expected: str
) -> None:
    fake, url = stand_in
    breaker = CircuitBreaker(1, 30)
    fake.script = [code]
    with pytest.raises(QueryRejected) as caught:
        await _client(url, breaker).status("a.example")
    assert caught.value.code == expected
    assert len(fake.bodies) == 1  # no retry
    assert breaker.state is BreakerState.CLOSED


@pytest.mark.parametrize("failure", [500, "hang"])
async def test_a_failure_for_one_server_does_not_open_the_breaker(
    stand_in: tuple[StandIn, str], failure: int | str
) -> None:
    # the service answers /health: a 500 or a timeout for one request is that request's (a hostile
    # server's), not the service's, and no number of them opens the breaker
    fake, url = stand_in
    breaker = CircuitBreaker(2, 30)
    client = _client(url, breaker, timeout=0.3)
    fake.script = [failure] * 6
    for _ in range(3):
        with pytest.raises(QueryUnavailable) as caught:
            await client.status("hostile.example")
        assert not caught.value.short_circuited
    assert breaker.consecutive_failures == 0
    assert (await client.status("a.example")).online
    # the same failures while /health fails too: the service's own, and the breaker opens
    fake.healthy = False
    fake.script = [failure] * 4
    for _ in range(2):
        with pytest.raises(QueryUnavailable):
            await client.status("hostile.example")
    assert breaker.state is BreakerState.OPEN


async def test_breaker_opens_short_circuits_and_recovers() -> None:
    port = free_port()  # nothing listens: connection refused
    now = [0.0]
    breaker = CircuitBreaker(2, 10, clock=lambda: now[0])
    client = _client(f"http://{LOOPBACK}:{port}", breaker)
    for _ in range(2):
        with pytest.raises(QueryUnavailable) as caught:
            await client.status("a.example")
        assert not caught.value.short_circuited
    with pytest.raises(QueryUnavailable) as caught:
        await client.status("a.example")
    assert caught.value.short_circuited
    # the service comes back on that port
    fake = StandIn()
    server = uvicorn.Server(uvicorn.Config(fake.app, host=LOOPBACK, port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    await async_wait_for_tcp(port)
    try:
        with pytest.raises(QueryUnavailable):
            await client.status("a.example")  # still open: no request
        assert fake.bodies == []
        now[0] = 10
        assert (await client.status("a.example")).online  # the half-open trial
        assert breaker.state is BreakerState.CLOSED
    finally:
        server.should_exit = True
        await task


async def test_real_query_service(query: ServiceProcess, java_peer: JavaPeer) -> None:
    http = query_http_client(query.url, timeout=5)
    try:
        client = QueryClient(http, CircuitBreaker(3, 30))
        status = await client.status(java_peer.address)
        assert status.online
        assert status.players is not None
        assert status.players.online == 3
        players = await client.players(java_peer.address, Edition.JAVA)
        assert sorted(players.names) == sorted(["zed", "Alex", "<b>"])
        with pytest.raises(QueryRejected) as caught:
            await client.status("exa mple")
        assert caught.value.code == "invalid_address"
    finally:
        await http.aclose()


async def test_real_query_service_forbidden(strict_query: ServiceProcess, java_peer: JavaPeer) -> None:
    http = query_http_client(strict_query.url, timeout=5)
    try:
        client = QueryClient(http, CircuitBreaker(3, 30))
        with pytest.raises(QueryRejected) as caught:
            await client.status(java_peer.address)
        assert caught.value.code == "forbidden_address"
        assert caught.value.status_code == 403
    finally:
        await http.aclose()


async def test_real_query_service_statuses_in_order_chunked_with_item_errors(
    query: ServiceProcess, java_peer: JavaPeer
) -> None:
    """`statuses` asks in batches of at most MAX_BATCH_SERVERS and answers in the order asked; an
    invalid address is that server's QueryRejected, the others are answered."""
    http = query_http_client(query.url, timeout=10)
    asked: list[int] = []

    async def note(request: httpx.Request) -> None:
        asked.append(len(json.loads(request.content)["servers"]))

    http.event_hooks["request"].append(note)
    try:
        client = QueryClient(http, CircuitBreaker(3, 30))
        servers = [(java_peer.address, Edition.JAVA)] * MAX_BATCH_SERVERS + [("exa mple", Edition.AUTO)]
        servers.append((java_peer.address, Edition.AUTO))
        results = await client.statuses(servers)
    finally:
        await http.aclose()
    assert sorted(asked) == [2, MAX_BATCH_SERVERS]
    assert len(results) == len(servers)
    rejected = results[MAX_BATCH_SERVERS]
    assert isinstance(rejected, QueryRejected)
    assert rejected.code == "invalid_address"
    assert rejected.status_code == 400
    for index, result in enumerate(results):
        if index != MAX_BATCH_SERVERS:
            assert isinstance(result, ServerStatus)
            assert result.online
            assert result.address == java_peer.address


async def test_real_query_service_statuses_of_long_names_stay_within_the_body_limit(
    query: ServiceProcess,
) -> None:
    """A hundred addresses of 250 characters would make a body over the service's 16 KiB (a 413 for all
    of them): `statuses` splits them so that every request is read and every server answered."""
    http = query_http_client(query.url, timeout=10)
    sizes: list[int] = []

    async def note(request: httpx.Request) -> None:
        sizes.append(len(request.content))

    http.event_hooks["request"].append(note)
    try:
        client = QueryClient(http, CircuitBreaker(3, 30))
        servers = [(f"{index:03d} " + "x" * 246, Edition.JAVA) for index in range(MAX_BATCH_SERVERS)]
        results = await client.statuses(servers)
    finally:
        await http.aclose()
    assert len(sizes) > 1
    assert max(sizes) <= MAX_REQUEST_BODY_BYTES
    assert len(results) == MAX_BATCH_SERVERS
    for result in results:
        assert isinstance(result, QueryRejected)
        assert result.code == "invalid_address"


async def test_statuses_from_a_service_without_the_batch_route_go_one_by_one(
    stand_in: tuple[StandIn, str],
) -> None:
    """A query service from before `POST /api/v1/status/batch` (the stand-in serves only the single
    routes, so the batch is its 404), as during a rolling upgrade that reaches the watcher first: each
    server is asked on its own and answered, nothing is recorded as refused."""
    server, url = stand_in
    client = _client(url)
    results = await client.statuses([("a.example", Edition.JAVA), ("b.example", Edition.AUTO)])
    assert [type(r) for r in results] == [ServerStatus, ServerStatus]
    assert sorted(body["server_url"] for body in server.bodies) == ["a.example", "b.example"]
    assert client.breaker.state is BreakerState.CLOSED
