"""Hostile servers: a typed error within MC_TIMEOUT plus a margin, bounded memory, a healthy service."""

from __future__ import annotations

import asyncio
import json
import struct
import time
import tracemalloc
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

import httpx
import pytest
from mcstatbot_common.models import PlayerList, ServerStatus
from mcstatbot_query.settings import QuerySettings
from mcstatbot_testkit.hostile import LEGACY_FIELDS, Behaviour, HostileServer
from mcstatbot_testkit.udp import Reply, UdpResponder

if TYPE_CHECKING:
    from mcstatbot_testkit.minecraft import JavaPeer

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


async def _measured_status(
    client: httpx.AsyncClient, port: int, edition: str
) -> tuple[httpx.Response, float, int]:
    """GET the status of 127.0.0.1:`port`: the response, the seconds it took, the peak traced memory."""
    tracemalloc.start()
    started = time.monotonic()
    try:
        response = await client.get(f"/api/v1/status/127.0.0.1:{port}", params={"edition": edition})
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return response, elapsed, peak


@pytest.mark.parametrize("behaviour", [b for b in Behaviour if b not in {Behaviour.LEGACY, Behaviour.ANSWER}])
async def test_hostile_server_gets_typed_error_in_time(
    behaviour: Behaviour, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    settings = settings_factory(mc_timeout=MC_TIMEOUT)
    async with HostileServer(behaviour) as server, client_factory(settings) as client:
        response, elapsed, peak = await _measured_status(client, server.port, "java")
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


# -- Hostile UDP peers: the Bedrock ping and the Query protocol ------------------------------------------


def _pong(text: bytes) -> bytes:
    """A RakNet unconnected pong carrying `text` as its server id string."""
    header = b"\x1c" + bytes(16) + bytes.fromhex("00ffff00fefefefefdfdfdfd12345678")
    return header + struct.pack(">H", len(text)) + text


_GOOD_ID = b"MCPE;A Bedrock server;766;1.21.2;3;10;12345;world;Survival"
UDP_BEHAVIOURS: dict[str, tuple[Reply, str]] = {
    "silent": (lambda _: [], "timeout"),
    "garbage": (lambda _: [b"\x00not a pong at all"], "protocol"),
    "truncated": (lambda _: [_pong(_GOOD_ID)[:40]], "protocol"),
    "too few fields": (lambda _: [_pong(b"MCPE;")], "protocol"),
    "lying counts": (lambda _: [_pong(b"MCPE;motd;766;1.21.2;-5;many;1;world;Survival")], "protocol"),
    "not utf-8": (lambda _: [_pong(b"MCPE;\xff\xfe;766;1.21.2;3;10;1;world;Survival")], "protocol"),
    "flood": (lambda _: [bytes(1000)] * 5000, "protocol"),
}


@pytest.mark.parametrize("name", list(UDP_BEHAVIOURS))
async def test_hostile_bedrock_server_gets_typed_error_in_time(
    name: str, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    reply, expected = UDP_BEHAVIOURS[name]
    settings = settings_factory(mc_timeout=MC_TIMEOUT)
    async with UdpResponder(reply) as server, client_factory(settings) as client:
        response, elapsed, peak = await _measured_status(client, server.port, "bedrock")
        health = await client.get("/health")
    assert response.status_code == 200
    status = ServerStatus.model_validate(response.json())
    assert not status.online
    assert status.error is not None
    assert status.error.code == expected
    assert elapsed < MC_TIMEOUT + MARGIN
    # A silent server is asked MC_TRIES times; one that answers, once.
    assert server.requests == (settings.mc_tries if expected == "timeout" else 1)
    assert peak < 4 * 1024 * 1024, peak  # a flood is dropped, not buffered
    assert health.status_code == 200


async def test_huge_bedrock_answer_is_one_datagram_at_most(
    settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    """A pong can carry at most one datagram (< 64 KiB): a 60 KB MOTD is data, passed on as such."""
    motd = "§c" + "A" * 60_000
    server_id = f"MCPE;{motd};766;1.21.2;3;10;1;world;Survival".encode()
    async with (
        UdpResponder(lambda _: [_pong(server_id)]) as server,
        client_factory(settings_factory()) as client,
    ):
        response = await client.get(f"/api/v1/status/127.0.0.1:{server.port}", params={"edition": "bedrock"})
    status = ServerStatus.model_validate(response.json())
    assert status.online
    assert status.motd is not None
    assert status.motd.clean == "A" * 60_000
    assert status.players is not None
    assert (status.players.online, status.players.max) == (3, 10)
    assert len(response.content) < 4 * 65_536  # raw, clean and html of one datagram


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(lambda _: [b"\x09\x00\x00\x00\x01not-a-number\x00"], id="bad challenge"),
        pytest.param(lambda _: [b"\x00\x00\x00\x00\x01" + b"\xff" * 2000], id="garbage stat"),
        pytest.param(lambda _: [bytes(1000)] * 5000, id="flood"),
    ],
)
async def test_hostile_query_answer_falls_back_to_the_status_sample(
    reply: Reply, java_peer: JavaPeer, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    settings = settings_factory(mc_timeout=MC_TIMEOUT, mc_query_timeout=0.5)
    async with UdpResponder(reply, port=java_peer.port) as query, client_factory(settings) as client:
        started = time.monotonic()
        response = await client.get(f"/api/v1/players/{java_peer.address}", params={"edition": "java"})
        elapsed = time.monotonic() - started
    players = PlayerList.model_validate(response.json())
    assert query.requests >= 1
    assert players.online
    assert players.source == "sample"
    assert players.names == ["Steve", "Alex"]
    assert elapsed < MC_TIMEOUT + MARGIN


# -- Numbers no Minecraft server sends (beyond 64 bits): an offline `protocol` answer, cached -----------

_HUGE_NUMBERS = [10**30, -(10**30), 2**63]
_JAVA_FIELDS = {"version.protocol": ("version", "protocol"), "players.max": ("players", "max"),
                "players.online": ("players", "online")}  # fmt: skip


def _java_answer(field: str, value: int) -> bytes:
    status: dict[str, dict[str, object]] = {
        "version": {"name": "1.21.1", "protocol": 767},
        "players": {"max": 20, "online": 1},
    }
    outer, inner = _JAVA_FIELDS[field]
    status[outer][inner] = value
    return json.dumps({**status, "description": "x"}).encode()


async def _asked_twice(client: httpx.AsyncClient, path: str, edition: str) -> list[httpx.Response]:
    return [await client.get(path, params={"edition": edition}) for _ in range(2)]


def _offline_protocol_and_cached(responses: list[httpx.Response]) -> None:
    for response in responses:
        assert response.status_code == 200
        body = response.json()
        assert body["online"] is False
        assert body["error"]["code"] == "protocol"
        assert "out of range" in body["error"]["message"]
    assert [r.headers["X-Cache"] for r in responses] == ["MISS", "HIT"]


@pytest.mark.parametrize("kind", ["status", "players"])
@pytest.mark.parametrize("value", _HUGE_NUMBERS)
@pytest.mark.parametrize("field", list(_JAVA_FIELDS))
async def test_java_numbers_beyond_64_bits_are_an_offline_protocol_answer_cached(
    field: str, value: int, kind: str, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    answer = _java_answer(field, value)
    async with (
        HostileServer(Behaviour.ANSWER, answer=answer) as server,
        client_factory(settings_factory()) as client,
    ):
        responses = await _asked_twice(client, f"/api/v1/{kind}/127.0.0.1:{server.port}", "java")
        assert server.connections == 1  # the second answer came from the cache
    _offline_protocol_and_cached(responses)


@pytest.mark.parametrize("kind", ["status", "players"])
@pytest.mark.parametrize("value", _HUGE_NUMBERS)
@pytest.mark.parametrize("field", [2, 4, 5], ids=["protocol", "players.online", "players.max"])
async def test_bedrock_numbers_beyond_64_bits_are_an_offline_protocol_answer_cached(
    field: int, value: int, kind: str, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    fields = _GOOD_ID.decode().split(";")
    fields[field] = str(value)
    pong = _pong(";".join(fields).encode())
    async with UdpResponder(lambda _: [pong]) as server, client_factory(settings_factory()) as client:
        responses = await _asked_twice(client, f"/api/v1/{kind}/127.0.0.1:{server.port}", "bedrock")
        assert server.requests == 1
    _offline_protocol_and_cached(responses)


@pytest.mark.parametrize("field", [0, 3, 4], ids=["protocol", "players.online", "players.max"])
async def test_legacy_numbers_beyond_64_bits_are_an_offline_protocol_answer_cached(
    field: int, settings_factory: SettingsFactory, client_factory: ClientFactory
) -> None:
    fields = list(LEGACY_FIELDS)
    fields[field] = str(10**30)
    async with (
        HostileServer(Behaviour.LEGACY, legacy_fields=tuple(fields)) as server,
        client_factory(settings_factory()) as client,
    ):
        responses = await _asked_twice(client, f"/api/v1/status/127.0.0.1:{server.port}", "java")
        assert server.connections == 2  # the modern ping and the legacy one, once
    _offline_protocol_and_cached(responses)
