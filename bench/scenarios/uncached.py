"""2. Uncached status: a cache-miss probe through the service next to mcstatus called directly."""

from __future__ import annotations

import asyncio
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx
import redis.asyncio as aioredis
from mcstatbot_common.addresses import ServerAddress
from mcstatbot_common.models import Edition
from mcstatus import JavaServer

from bench.core import BenchmarkResult, Chart, Target
from bench.stack import QUERY_MODULE, java_peer, query_env, redis_server, require_module, service
from bench.stats import percentile

if TYPE_CHECKING:
    from mcstatbot_query.probe import Prober

    from bench.core import BenchContext

TITLE = "2. Uncached status: service vs mcstatus directly"
TARGET_OVERHEAD_MS = 5.0
WARMUP_SAMPLES = 5


def _prober() -> Prober:
    """The query service's own probe code (`Prober.status`), used in this process like the service does."""
    from mcstatbot_query.probe import Prober  # noqa: PLC0415 - the query service may be absent
    from mcstatbot_query.resolver import Resolver  # noqa: PLC0415
    from mcstatbot_query.settings import QuerySettings  # noqa: PLC0415

    settings = QuerySettings(allow_private_addresses=True)
    return Prober(settings, Resolver(allow_private=True))


@dataclass
class Samples:
    through: list[float] = field(default_factory=list)
    """ms, POST /api/v1/status through the service (cache emptied first)"""
    direct: list[float] = field(default_factory=list)
    """ms, mcstatus JavaServer.async_status()"""
    prober: list[float] = field(default_factory=list)
    """ms, the service's Prober.status() called in this process"""
    headers: dict[str, int] = field(default_factory=dict)


async def _measure(service_url: str, redis_url: str, host: str, port: int, samples: int) -> Samples:
    """Alternating samples: through the service after emptying the cache, mcstatus, the service's prober."""
    result = Samples()
    prober = _prober()
    address = ServerAddress(host, port)
    body = {"server_url": f"{host}:{port}", "edition": "java"}
    cache = aioredis.Redis.from_url(redis_url)
    try:
        async with httpx.AsyncClient(base_url=service_url, timeout=30) as client:
            for index in range(samples + WARMUP_SAMPLES):
                await cache.flushdb()
                started = time.perf_counter()
                response = await client.post("/api/v1/status", json=body)
                elapsed = (time.perf_counter() - started) * 1000
                response.raise_for_status()
                if not response.json().get("online"):
                    raise RuntimeError(f"the peer answered offline through the service: {response.text}")
                verdict = response.headers.get("x-cache", "none")
                started = time.perf_counter()
                await JavaServer(host, port, timeout=5).async_status()
                elapsed_direct = (time.perf_counter() - started) * 1000
                started = time.perf_counter()
                status = await prober.status(address, Edition.JAVA)
                elapsed_prober = (time.perf_counter() - started) * 1000
                if not status.online:
                    raise RuntimeError(f"the service's prober found the peer offline: {status.error}")
                if index < WARMUP_SAMPLES:
                    continue
                result.headers[verdict] = result.headers.get(verdict, 0) + 1
                result.through.append(elapsed)
                result.direct.append(elapsed_direct)
                result.prober.append(elapsed_prober)
    finally:
        await cache.aclose()
    return result


def run(context: BenchContext) -> BenchmarkResult:
    config = context.config
    require_module(QUERY_MODULE)
    result = BenchmarkResult(
        "uncached_status",
        TITLE,
        method=(
            f"{config.uncached_samples} sequential samples per run, alternating: `POST /api/v1/status` "
            '`{"server_url": "127.0.0.1:<peer>", "edition": "java"}` through the query service (with Redis; '
            "the Redis database is emptied with FLUSHDB before each request, outside the timed part, so each "
            "answer is a cache MISS, checked by its X-Cache header) and `JavaServer(...).async_status()` "
            "from mcstatus called directly, both against the same npm minecraft-protocol peer, from one "
            "asyncio client (httpx with a kept-alive connection), plus the service's own Prober in that "
            "client's process. Overhead = service p50 minus direct p50 in the same run."
        ),
    )
    with ExitStack() as stack:
        peer = stack.enter_context(java_peer(context))
        redis = stack.enter_context(redis_server(context))
        query = stack.enter_context(
            service(
                context,
                QUERY_MODULE,
                "query-uncached",
                query_env(REDIS_URL=redis.url),
                cpus=config.server_cpus,
            )
        )
        peer.reset_counts()
        runs = [
            asyncio.run(_measure(query.url, redis.url, "127.0.0.1", peer.port, config.uncached_samples))
            for _ in range(config.runs)
        ]
        peer_probes = peer.status_requests
    total_samples = (config.uncached_samples + WARMUP_SAMPLES) * config.runs
    result.details["peer_status_requests"] = peer_probes
    result.details["expected_peer_status_requests"] = 3 * total_samples
    result.details["x_cache"] = [run.headers for run in runs]
    misses = sum(run.headers.get("MISS", 0) for run in runs)
    if misses != config.uncached_samples * config.runs:
        result.notes.append(f"Only {misses} of the measured service answers said X-Cache: MISS.")
    series = {
        "service": [run.through for run in runs],
        "direct": [run.direct for run in runs],
        "prober": [run.prober for run in runs],
    }
    for key, label in (
        ("service", "through the service"),
        ("direct", "mcstatus directly"),
        ("prober", "the service's Prober in-process"),
    ):
        for pct in (50, 99):
            result.add(f"{key}_p{pct}_ms", f"{label} p{pct}", "ms", [percentile(s, pct) for s in series[key]])
    overheads = [
        percentile(through, 50) - percentile(direct, 50)
        for through, direct in zip(series["service"], series["direct"], strict=True)
    ]
    result.add("overhead_p50_ms", "service overhead at p50", "ms", overheads)
    overhead = result.median("overhead_p50_ms")
    result.targets.append(
        Target(
            "cache-miss overhead over mcstatus at p50",
            f"< {TARGET_OVERHEAD_MS:g} ms",
            overhead,
            "ms",
            None if overhead is None else overhead < TARGET_OVERHEAD_MS,
        )
    )
    result.notes.append(
        f"The peer counted {peer_probes} status requests for {total_samples} service, {total_samples} "
        f"mcstatus and {total_samples} Prober probes (warm-up included): each service MISS probed the peer "
        "exactly once when these match."
    )
    prober_overhead = [
        percentile(through, 50) - percentile(prober, 50)
        for through, prober in zip(series["service"], series["prober"], strict=True)
    ]
    result.add(
        "http_cache_overhead_p50_ms", "HTTP + cache part of the overhead at p50", "ms", prober_overhead
    )
    result.notes.append(
        "The service's own probe code (`mcstatbot_query.probe.Prober.status`, edition java) called in the "
        "client's process splits the overhead: Prober minus mcstatus is the probe code's share (its "
        "address checks, bounded reads, model building), service minus Prober is HTTP, the cache "
        "look-up/lock/write and the service's middleware."
    )
    result.charts = [
        Chart(
            "Uncached status latency",
            "ms",
            [
                "service_p50_ms",
                "prober_p50_ms",
                "direct_p50_ms",
                "service_p99_ms",
                "prober_p99_ms",
                "direct_p99_ms",
                "overhead_p50_ms",
            ],
        )
    ]
    return result
