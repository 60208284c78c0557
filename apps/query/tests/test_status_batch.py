"""`POST /api/v1/status/batch`: each server answered as `POST /api/v1/status` answers it (the same cache,
coalescing, address rules and errors), in the order asked; the size limit. Real Java peers and a real
Redis."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

import httpx
import pytest
from mcstatbot_common.models import MAX_BATCH_SERVERS, ErrorResponse, StatusBatchResponse
from mcstatbot_query.settings import QuerySettings
from mcstatbot_testkit.minecraft import JavaPeer
from mcstatbot_testkit.net import free_port
from mcstatbot_testkit.redis import RedisServer

if TYPE_CHECKING:
    from pathlib import Path

SettingsFactory = Callable[..., QuerySettings]
ClientFactory = Callable[[QuerySettings], AbstractAsyncContextManager[httpx.AsyncClient]]
BATCH = "/api/v1/status/batch"


def batch_of(response: httpx.Response) -> StatusBatchResponse:
    assert response.status_code == 200, response.text
    return StatusBatchResponse.model_validate_json(response.content)


async def test_results_in_order_and_an_item_error_leaves_the_others_answered(
    java_peer: JavaPeer,
    tmp_path: Path,
    settings_factory: SettingsFactory,
    client_factory: ClientFactory,
) -> None:
    closed = f"127.0.0.1:{free_port()}"
    with JavaPeer(tmp_path / "second.log", motd="second") as second:
        servers = [
            {"server_url": java_peer.address, "edition": "java"},
            {"server_url": "bad host"},
            {"server_url": second.address, "edition": "java"},
            {"server_url": closed, "edition": "java"},
        ]
        async with client_factory(settings_factory()) as client:
            response = await client.post(BATCH, json={"servers": servers})
        results = batch_of(response).results
    assert [item.status_code for item in results] == [200, 400, 200, 200]
    first, bad, other, offline = results
    assert first.status is not None
    assert first.status.online
    assert first.status.address == java_peer.address
    assert other.status is not None
    assert other.status.online
    assert other.status.address == second.address
    assert other.status.motd is not None
    assert other.status.motd.clean == "second"
    assert bad.status is None
    assert bad.error is not None
    assert bad.error.code == "invalid_address"
    assert "spaces" in bad.error.message
    assert offline.status is not None
    assert not offline.status.online
    assert offline.status.error is not None
    assert offline.status.error.code.value == "refused"
    assert offline.error is None
    assert first.max_age is not None
    assert first.max_age > 0
    assert response.headers["X-Cache"] == "MISS"
    assert response.headers["Cache-Control"].startswith("max-age=")


async def test_a_forbidden_address_is_that_items_403(
    java_peer: JavaPeer, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    async with client_factory(settings_factory(allow_private_addresses=False)) as client:
        single = await client.post("/api/v1/status", json={"server_url": java_peer.address})
        response = await client.post(BATCH, json={"servers": [{"server_url": java_peer.address}]})
    (item,) = batch_of(response).results
    assert single.status_code == 403
    assert item.status_code == 403
    assert item.error is not None
    assert item.error == ErrorResponse.model_validate(single.json()).detail


async def test_cache_shared_with_the_single_endpoint_one_probe_per_server_per_ttl(
    tmp_path: Path, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    """A single request's answer serves the batch and the other way round, across two replicas on one
    Redis, and a server asked twice in one batch is probed once."""
    with (
        RedisServer(tmp_path / "redis.log") as redis,
        JavaPeer(tmp_path / "a.log") as a,
        JavaPeer(tmp_path / "b.log") as b,
    ):
        settings = settings_factory(redis_url=redis.url, cache_ttl_status=60)
        async with client_factory(settings) as one, client_factory(settings) as two:
            single = await one.post("/api/v1/status", json={"server_url": a.address, "edition": "java"})
            first = batch_of(
                await one.post(
                    BATCH,
                    json={
                        "servers": [
                            {"server_url": a.address, "edition": "java"},
                            {"server_url": b.address, "edition": "java"},
                            {"server_url": b.address, "edition": "java"},
                        ]
                    },
                )
            )
            again = batch_of(
                await two.post(
                    BATCH,
                    json={
                        "servers": [
                            {"server_url": b.address, "edition": "java"},
                            {"server_url": a.address, "edition": "java"},
                        ]
                    },
                )
            )
            later = await two.post("/api/v1/status", json={"server_url": b.address, "edition": "java"})
        probes = (a.status_connections, b.status_connections)
    assert single.headers["X-Cache"] == "MISS"
    assert [item.cache_hit for item in first.results] == [True, False, False]
    assert [item.cache_hit for item in again.results] == [True, True]
    assert later.headers["X-Cache"] == "HIT"
    assert all(item.status is not None and item.status.online for item in (*first.results, *again.results))
    assert probes == (1, 1)


@pytest.mark.parametrize("count", [0, MAX_BATCH_SERVERS + 1])
async def test_an_empty_or_too_large_batch_is_refused_with_422(
    count: int, java_peer: JavaPeer, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    server = {"server_url": java_peer.address, "edition": "java"}
    async with client_factory(settings_factory()) as client:
        refused = await client.post(BATCH, json={"servers": [server] * count})
        largest = await client.post(BATCH, json={"servers": [server] * MAX_BATCH_SERVERS})
    assert refused.status_code == 422, refused.text
    detail = ErrorResponse.model_validate(refused.json()).detail
    assert detail.code == "invalid_request"
    assert detail.message.startswith("servers: ")
    if count:
        assert f"at most {MAX_BATCH_SERVERS} items" in detail.message
    assert len(batch_of(largest).results) == MAX_BATCH_SERVERS
