"""3. Protection for Minecraft servers: many clients, two replicas, one Redis (or a Redis Cluster: 3 masters,
3 replicas, as ElastiCache in cluster mode); probes counted at the peer."""

from __future__ import annotations

import math
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import redis
import redis.cluster

from bench.core import BenchmarkResult, BenchmarkSkippedError, Chart, Target
from bench.stack import (
    QUERY_MODULE,
    java_peer,
    metric_samples,
    query_env,
    redis_cluster,
    redis_server,
    require_module,
    service,
)
from bench.wrk import WrkResult, finish_wrk, start_wrk, wrk_available

if TYPE_CHECKING:
    from bench.core import BenchContext
    from bench.launch import BenchService

TITLE = "3. Protection for Minecraft servers"
CLUSTER_TITLE = "3b. Protection for Minecraft servers, on a Redis Cluster"
REPLICAS = 2
CACHE_METRIC = "mcstatbot_cache_requests_total"


def _cache_counts(replicas: list[BenchService]) -> dict[str, float]:
    """Status cache look-ups by result (hit/miss), summed over the replicas' /metrics."""
    counts: dict[str, float] = {}
    for replica in replicas:
        for labels, value in metric_samples(f"{replica.url}/metrics", CACHE_METRIC):
            if labels.get("kind", "status") == "status":
                result = labels.get("result", "unknown")
                counts[result] = counts.get(result, 0.0) + value
    return counts


def _one_run(
    context: BenchContext,
    replicas: list[BenchService],
    address: str,
    cache: redis.Redis | redis.cluster.RedisCluster,
) -> tuple[list[WrkResult], dict[str, float]]:
    config = context.config
    cache.flushall()  # on a cluster: every master
    before = _cache_counts(replicas)
    per_replica = [config.protection_clients // REPLICAS] * REPLICAS
    per_replica[0] += config.protection_clients - sum(per_replica)
    procs = [
        start_wrk(
            f"{replica.url}/api/v1/status/{address}",
            connections=clients,
            threads=1,
            duration_s=config.protection_duration_s,
            cpus=config.load_cpus,
            count_cache=True,
            timeout_s=30,
        )
        for replica, clients in zip(replicas, per_replica, strict=True)
    ]
    results = [finish_wrk(proc, timeout_s=config.protection_duration_s + 120) for proc in procs]
    after = _cache_counts(replicas)
    delta = {key: after.get(key, 0.0) - before.get(key, 0.0) for key in after}
    return results, delta


def run(context: BenchContext) -> BenchmarkResult:
    """Two replicas on one redis-server."""
    return _run(context, "protection", TITLE, on_cluster=False)


def run_on_cluster(context: BenchContext) -> BenchmarkResult:
    """The same on the testkit's Redis Cluster (REDIS_CLUSTER unset: the replicas detect it)."""
    return _run(context, "protection_cluster", CLUSTER_TITLE, on_cluster=True)


def _run(context: BenchContext, name: str, title: str, *, on_cluster: bool) -> BenchmarkResult:
    config = context.config
    if not wrk_available():
        raise BenchmarkSkippedError("wrk is not installed (scripts/install-test-deps.sh installs it)")
    require_module(QUERY_MODULE)
    ttl = config.protection_ttl_s
    windows = math.ceil(config.protection_duration_s / ttl)
    shared = (
        "a Redis Cluster (the testkit's: 3 masters and 3 replicas of redis-server on loopback, as "
        "ElastiCache in cluster mode; the replicas detect it)"
        if on_cluster
        else "one redis-server"
    )
    result = BenchmarkResult(
        name,
        title,
        method=(
            f"{config.protection_clients} concurrent clients (keep-alive connections; two wrk processes, "
            f"half on each replica) ask `GET /api/v1/status/127.0.0.1:<peer>` for "
            f"{config.protection_duration_s:g} s of two query-service replicas sharing {shared}, "
            f"with CACHE_TTL_STATUS={ttl} s, so {windows} TTL windows. Redis is emptied before each run. The "
            "npm minecraft-protocol peer counts the status requests it received; the target is one probe per "
            "TTL window. The hit ratio comes from the replicas' `mcstatbot_cache_requests_total` "
            "(kind=status) and, independently, from the X-Cache headers wrk saw."
        ),
    )
    env = {"CACHE_TTL_STATUS": str(ttl), "CACHE_TTL_OFFLINE": str(ttl), "CACHE_TTL_PLAYERS": str(ttl)}
    runs: list[dict[str, Any]] = []
    with ExitStack() as stack:
        peer = stack.enter_context(java_peer(context))
        redis_url = (
            stack.enter_context(redis_cluster(context)).url
            if on_cluster
            else stack.enter_context(redis_server(context)).url
        )
        replicas = [
            stack.enter_context(
                service(
                    context,
                    QUERY_MODULE,
                    f"query-replica{index}",
                    query_env(REDIS_URL=redis_url, **env),
                    cpus=config.server_cpus,
                )
            )
            for index in range(REPLICAS)
        ]
        cache: redis.Redis | redis.cluster.RedisCluster = (
            redis.cluster.RedisCluster.from_url(redis_url) if on_cluster else redis.Redis.from_url(redis_url)
        )
        stack.callback(cache.close)
        for _ in range(config.protection_runs):
            peer.reset_counts()
            wrk_results, metric_delta = _one_run(context, replicas, peer.address, cache)
            probes = peer.status_requests
            requests = sum(r.requests for r in wrk_results)
            hits = sum(int(r.cache["hit"]) for r in wrk_results)
            misses = sum(int(r.cache["miss"]) for r in wrk_results)
            metric_total = metric_delta.get("hit", 0.0) + metric_delta.get("miss", 0.0)
            runs.append(
                {
                    "probes": probes,
                    "windows": windows,
                    "requests": requests,
                    "rps": sum(r.rps for r in wrk_results),
                    "x_cache_hit": hits,
                    "x_cache_miss": misses,
                    "bad_status": sum(int(r.cache["bad_status"]) for r in wrk_results),
                    "errors": sum(r.error_count for r in wrk_results),
                    "metrics": metric_delta,
                    "hit_ratio_metrics": metric_delta.get("hit", 0.0) / metric_total
                    if metric_total
                    else None,
                    "hit_ratio_headers": hits / (hits + misses) if hits + misses else None,
                    "p50_ms": max(r.latency_us["p50"] for r in wrk_results) / 1000,
                    "p99_ms": max(r.latency_us["p99"] for r in wrk_results) / 1000,
                }
            )
    result.details["runs"] = runs
    result.details["ttl_s"] = ttl
    result.details["windows"] = windows
    result.add("probes", "probes at the peer", "probes", [float(r["probes"]) for r in runs])
    result.add("windows", "TTL windows", "windows", [float(windows) for _ in runs])
    result.add("probes_per_window", "probes per TTL window", "probes", [r["probes"] / windows for r in runs])
    result.add("requests_per_s", "requests answered (both replicas)", "requests/s", [r["rps"] for r in runs])
    result.add("requests", "requests answered per run", "requests", [float(r["requests"]) for r in runs])
    if all(r["hit_ratio_metrics"] is not None for r in runs):
        result.add("hit_ratio", "cache hit ratio (/metrics)", "ratio", [r["hit_ratio_metrics"] for r in runs])
    else:
        result.notes.append(f"The replicas' /metrics had no {CACHE_METRIC} samples.")
    if all(r["hit_ratio_headers"] is not None for r in runs):
        result.add(
            "hit_ratio_headers", "cache hit ratio (X-Cache)", "ratio", [r["hit_ratio_headers"] for r in runs]
        )
    result.add("p50_ms", "client latency p50 (worse replica)", "ms", [r["p50_ms"] for r in runs])
    result.add("p99_ms", "client latency p99 (worse replica)", "ms", [r["p99_ms"] for r in runs])
    per_window = result.median("probes_per_window")
    result.targets.append(
        Target(
            f"probes per TTL window at {config.protection_clients} concurrent clients",
            "1",
            per_window,
            "probes",
            None if per_window is None else max(r["probes"] for r in runs) <= windows + 1,
        )
    )
    result.notes.append(
        "Met when no run probed more than once per window (one extra probe is allowed for a window that "
        "the end of the run cuts short: the run lasts slightly longer than its nominal duration)."
    )
    bad = sum(r["bad_status"] + r["errors"] for r in runs)
    if bad:
        result.notes.append(f"wrk counted {bad} errors or non-2xx answers over all runs.")
    result.charts = [Chart("Probes reaching the Minecraft server", "count", ["windows", "probes"])]
    return result
