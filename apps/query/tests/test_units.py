"""Small pieces: error classification, the in-process cache, cached answers, settings from the environment."""

from __future__ import annotations

import asyncio
import errno
import json
import socket
import struct

import dns.exception
import dns.resolver
import pytest
from mcstatbot_common.addresses import ServerAddress
from mcstatbot_common.models import Edition, ErrorCode, ServerStatus
from mcstatbot_query.cache import MemoryCache, pack, unpack
from mcstatbot_query.errors import ProbeFailedError, classify
from mcstatbot_query.service import QueryService, key_base
from mcstatbot_query.settings import QuerySettings


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (TimeoutError(), ErrorCode.TIMEOUT),
        (dns.exception.Timeout(), ErrorCode.TIMEOUT),  # type: ignore[no-untyped-call]  # dnspython: untyped __init__
        (dns.resolver.NXDOMAIN(), ErrorCode.DNS),  # type: ignore[no-untyped-call]  # dnspython: untyped __init__
        (dns.resolver.NoAnswer(), ErrorCode.DNS),  # type: ignore[no-untyped-call]  # dnspython: untyped __init__
        (socket.gaierror(socket.EAI_NONAME, "unknown"), ErrorCode.DNS),
        (ConnectionRefusedError(), ErrorCode.REFUSED),
        (OSError(errno.ENETUNREACH, "unreachable"), ErrorCode.UNREACHABLE),
        (OSError(errno.EHOSTUNREACH, "no route"), ErrorCode.UNREACHABLE),
        (ConnectionResetError(), ErrorCode.PROTOCOL),
        (OSError("Received invalid JSON"), ErrorCode.PROTOCOL),
        (json.JSONDecodeError("x", "doc", 0), ErrorCode.PROTOCOL),
        (struct.error("unpack"), ErrorCode.PROTOCOL),
        (ValueError("bad"), ErrorCode.PROTOCOL),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"), ErrorCode.PROTOCOL),
        (KeyError("players"), ErrorCode.PROTOCOL),
        (TypeError("not a dict"), ErrorCode.PROTOCOL),
        (RecursionError(), ErrorCode.PROTOCOL),
        (ProbeFailedError(ErrorCode.UNREACHABLE), ErrorCode.UNREACHABLE),
    ],
)
def test_every_exception_maps_to_one_code(exc: BaseException, code: ErrorCode) -> None:
    failure = classify(exc)
    assert failure.code is code
    assert failure.message
    assert failure.to_model().code is code


async def test_memory_cache_ttl_and_bound() -> None:
    cache = MemoryCache(max_entries=3)
    await cache.write([(f"k{i}", pack({"i": i}, 60), 60) for i in range(5)], delete=[])
    assert await cache.get_many(["k0", "k1"]) == [None, None]  # least recently used went first
    values = await cache.get_many(["k2", "k3", "k4"])
    assert all(value is not None for value in values)
    await cache.write([("short", pack({"x": 1}, 0.05), 0.05)], delete=["k2"])
    assert (await cache.get_many(["k2"])) == [None]
    await asyncio.sleep(0.1)
    assert (await cache.get_many(["short"])) == [None]


def test_envelope_round_trip_and_garbage() -> None:
    unpacked = unpack(pack({"a": 1}, 30))
    assert unpacked is not None
    data, left = unpacked
    assert data == {"a": 1}
    assert 29 < left <= 30
    assert unpack(b"not json") is None
    assert unpack(b'{"exp": 1, "data": {}}') is None  # expired
    assert unpack(b'{"data": {}}') is None


async def test_cached_answers_carry_cached_and_their_age() -> None:
    """A cached value's hits carry `cached: true` and their time left."""
    settings = QuerySettings(cache_ttl_status=60)
    cache = MemoryCache(max_entries=10)
    service = QueryService(settings, cache, prober=None)  # type: ignore[arg-type]  # a hit never probes
    address = ServerAddress("play.example.com", 25565)
    status = ServerStatus(
        address="play.example.com:25565",
        host="play.example.com",
        port=25565,
        edition=Edition.JAVA,
        online=True,
    )
    base = key_base(address, Edition.JAVA)
    await cache.write([(f"{base}:status", pack(status.model_dump(mode="json"), 60), 60)], delete=[])
    first = await service.status(address, Edition.JAVA)
    second = await service.status(address, Edition.JAVA)
    assert first.hit
    assert second.hit
    assert json.loads(first.body.model_dump_json()) == {
        **status.model_dump(mode="json"),
        "cached": True,
        "age_seconds": 0,
    }
    assert 59 <= first.max_age <= 60
    # An incompatible value (another version wrote it) is a miss, and so is an expired one.
    await cache.write([(f"{base}:status", pack({"online": "maybe"}, 60), 60)], delete=[])
    assert await service._lookup(base, "status") is None
    await cache.write([(f"{base}:status", pack(status.model_dump(mode="json"), 0.05), 60)], delete=[])
    assert await service._lookup(base, "status") is not None
    await asyncio.sleep(0.1)
    assert await service._lookup(base, "status") is None
    stale = await service._lookup(base, "status", stale_window=30)  # within CACHE_STALE_SECONDS
    assert stale is not None
    assert stale.body.stale
    assert (stale.max_age, stale.tier) == (0, "stale")


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "")
    monkeypatch.setenv("MC_TIMEOUT", "2.5")
    monkeypatch.setenv("ALLOW_PRIVATE_ADDRESSES", "true")
    monkeypatch.setenv("DNS_NAMESERVERS", "127.0.0.1:5353, 10.0.0.2,[::1]:53")
    settings = QuerySettings()
    assert settings.port == 8081
    assert settings.redis_url is None
    assert settings.mc_timeout == 2.5
    assert settings.allow_private_addresses is True
    assert settings.nameservers() == [("127.0.0.1", 5353), ("10.0.0.2", 53), ("::1", 53)]
    assert (settings.cache_ttl_status, settings.cache_ttl_players, settings.cache_ttl_offline) == (60, 30, 10)
    for name, field in QuerySettings.model_fields.items():
        if name not in {"host", "log_level", "log_format"}:
            assert field.description, name
