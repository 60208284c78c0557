"""Hostile servers: a typed error within MC_TIMEOUT plus a margin, bounded memory, a healthy service."""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx
import pytest
from mcstatbot_common.models import ServerStatus
from mcstatbot_query.settings import QuerySettings
from mcstatbot_testkit.hostile import Behaviour, HostileServer

SettingsFactory = Callable[..., QuerySettings]
ClientFactory = Callable[[QuerySettings], AbstractAsyncContextManager[httpx.AsyncClient]]

MC_TIMEOUT = 1.5
MARGIN = 1.0

EXPECTED = {
    Behaviour.SILENT: "timeout",
    Behaviour.TRICKLE: "timeout",
    Behaviour.HUGE: "protocol",
    Behaviour.BAD_VARINT: "protocol",
    Behaviour.BAD_JSON: "protocol",
    Behaviour.WRONG_SHAPE: "protocol",
    Behaviour.CLOSE: "protocol",
}


@pytest.mark.parametrize("behaviour", [b for b in Behaviour if b is not Behaviour.LEGACY])
async def test_hostile_server_gets_typed_error_in_time(
    behaviour: Behaviour, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    settings = settings_factory(mc_timeout=MC_TIMEOUT)
    async with HostileServer(behaviour) as server, client_factory(settings) as client:
        tracemalloc.start()
        started = time.monotonic()
        try:
            response = await client.get(f"/api/v1/status/127.0.0.1:{server.port}", params={"edition": "java"})
            elapsed = time.monotonic() - started
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        health = await client.get("/health")
    assert response.status_code == 200
    status = ServerStatus.model_validate(response.json())
    assert not status.online
    assert status.error is not None
    assert status.error.code == EXPECTED[behaviour]
    assert elapsed < MC_TIMEOUT + MARGIN
    assert server.connections >= 1
    # Bounded memory: the probe never holds the 10 MB answer (nor anything close to it).
    assert peak < 4 * 1024 * 1024, peak
    assert health.status_code == 200


async def test_huge_status_is_cut_off_early(
    settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    async with HostileServer(Behaviour.HUGE) as server, client_factory(settings_factory()) as client:
        response = await client.get(f"/api/v1/status/127.0.0.1:{server.port}", params={"edition": "java"})
    status = ServerStatus.model_validate(response.json())
    assert status.error is not None
    assert "larger than" in status.error.message


async def test_auto_edition_against_silent_server_is_bounded_too(
    settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    async with (
        HostileServer(Behaviour.SILENT) as server,
        client_factory(settings_factory(mc_timeout=1.0)) as client,
    ):
        started = time.monotonic()
        response = await client.post("/api/v1/players", json={"server_url": f"127.0.0.1:{server.port}"})
        elapsed = time.monotonic() - started
    assert response.status_code == 200
    body = response.json()
    assert body["online"] is False
    assert body["error"]["code"] == "timeout"
    assert elapsed < 1.0 + MARGIN


async def test_pre_1_7_server_answers_through_the_legacy_ping(
    settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    async with HostileServer(Behaviour.LEGACY) as server, client_factory(settings_factory()) as client:
        response = await client.get(f"/api/v1/status/127.0.0.1:{server.port}", params={"edition": "java"})
    status = ServerStatus.model_validate(response.json())
    assert status.online, status.error
    assert status.version is not None
    assert (status.version.name, status.version.protocol) == ("1.6.4", 127)
    assert status.motd is not None
    assert status.motd.clean == "A legacy server"
    assert status.players is not None
    assert (status.players.online, status.players.max) == (3, 20)
    assert server.connections == 2  # the modern ping (closed by the server), then the legacy ping


async def test_probe_slots_bound_concurrency_and_excess_times_out(
    settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    settings = settings_factory(mc_timeout=1.0, mc_max_concurrent_probes=2)
    async with HostileServer(Behaviour.SILENT) as silent, client_factory(settings) as client:
        # Three different cache keys for the same silent server: three probes wanted, two slots.
        hosts = ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"]
        urls = [f"/api/v1/status/{host}:{silent.port}?edition=java" for host in hosts]
        started = time.monotonic()
        pending = asyncio.gather(*(client.get(url) for url in urls))
        await asyncio.sleep(0.5)
        in_flight = silent.connections  # two probes hold the slots, the third waits for one
        responses = await pending
        elapsed = time.monotonic() - started
    assert in_flight == 2
    assert all(r.status_code == 200 and r.json()["error"]["code"] == "timeout" for r in responses)
    assert elapsed < 1.0 + MARGIN
