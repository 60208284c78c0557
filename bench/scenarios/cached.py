"""1. Cached status: `GET /api/v1/status/{server}` answered from cache next to a plain FastAPI endpoint."""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import httpx

from bench.core import BenchmarkResult, BenchmarkSkippedError, Chart, Target
from bench.procstat import RssSampler
from bench.stack import QUERY_MODULE, java_peer, query_env, redis_server, require_module, service
from bench.wrk import WrkResult, run_wrk, wrk_available

if TYPE_CHECKING:
    from bench.core import BenchContext
    from bench.launch import BenchService

TITLE = "1. Cached status vs a plain FastAPI endpoint"
TARGET_RATIO = 1.5
MIB = 1024 * 1024


def _wrk(context: BenchContext, url: str, duration: float) -> WrkResult:
    config = context.config
    return run_wrk(
        url,
        connections=config.wrk_connections,
        threads=config.wrk_threads,
        duration_s=duration,
        cpus=config.load_cpus,
    )


def _method(context: BenchContext) -> str:
    config = context.config
    return (
        f"wrk ({config.wrk_threads} thread, {config.wrk_connections} connections, "
        f"{config.wrk_duration_s:g} s per run after a {config.wrk_warmup_s:g} s warm-up, latency from "
        "wrk's own histogram) against four servers started alike (`python -m <module>`, uvicorn, one "
        "worker, same CPU): the plain FastAPI app `bench/baseline_app.py` returning a constant "
        "ServerStatus-sized JSON body; the same app with the services' shared observability stack "
        "(mcstatbot_common `setup_tracing` + `instrument_app`: metrics middleware, tracing); the query "
        "service with its in-process cache; the query service with Redis. The query service's cache is "
        "filled by one request before the runs (CACHE_TTL_STATUS=3600, so every measured answer is a "
        "HIT, checked by its X-Cache header). Runs are interleaved "
        "(plain, plain + observability, in-process, Redis, plain, ...)."
    )


def run(context: BenchContext) -> BenchmarkResult:
    config = context.config
    if not wrk_available():
        raise BenchmarkSkippedError("wrk is not installed (scripts/install-test-deps.sh installs it)")
    require_module(QUERY_MODULE)
    result = BenchmarkResult(
        "cached_status",
        TITLE,
        method=_method(context),
    )
    with ExitStack() as stack:
        peer = stack.enter_context(java_peer(context))
        redis = stack.enter_context(redis_server(context))
        cpus = config.server_cpus
        servers: dict[str, tuple[BenchService, str]] = {}
        baseline = stack.enter_context(service(context, "bench.baseline_app", "baseline", cpus=cpus))
        servers["plain"] = (baseline, f"{baseline.url}/constant")
        observed = stack.enter_context(
            service(
                context,
                "bench.baseline_app",
                "baseline-observability",
                {"BASELINE_OBSERVABILITY": "1"},
                cpus=cpus,
            )
        )
        servers["observability"] = (observed, f"{observed.url}/constant")
        ttl = {"CACHE_TTL_STATUS": "3600", "CACHE_TTL_PLAYERS": "3600", "CACHE_TTL_OFFLINE": "3600"}
        memory = stack.enter_context(
            service(context, QUERY_MODULE, "query-memory", query_env(**ttl), cpus=cpus)
        )
        servers["memory"] = (memory, f"{memory.url}/api/v1/status/{peer.address}")
        with_redis = stack.enter_context(
            service(context, QUERY_MODULE, "query-redis", query_env(REDIS_URL=redis.url, **ttl), cpus=cpus)
        )
        servers["redis"] = (with_redis, f"{with_redis.url}/api/v1/status/{peer.address}")

        cache_headers: dict[str, list[str]] = {}
        for key, (_, url) in servers.items():
            first = httpx.get(url, timeout=30)
            first.raise_for_status()
            second = httpx.get(url, timeout=30)
            cache_headers[key] = [first.headers.get("x-cache", "-"), second.headers.get("x-cache", "-")]
            if key in {"memory", "redis"} and second.headers.get("x-cache") != "HIT":
                result.notes.append(
                    f"{key}: the second request answered X-Cache {second.headers.get('x-cache')}"
                )
        result.details["x_cache_first_second"] = cache_headers
        result.details["body_bytes"] = {key: len(httpx.get(url).content) for key, (_, url) in servers.items()}
        for _, url in servers.values():
            _wrk(context, url, config.wrk_warmup_s)

        runs: dict[str, list[WrkResult]] = {key: [] for key in servers}
        peaks: dict[str, int] = dict.fromkeys(servers, 0)
        for _ in range(config.runs):
            for key, (process, url) in servers.items():
                with RssSampler(process.pid) as sampler:
                    runs[key].append(_wrk(context, url, config.wrk_duration_s))
                peaks[key] = max(peaks[key], sampler.peak)
                if key == "redis":
                    context.observe("query_rss_load_mib", sampler.peak / MIB)
        result.details["wrk_runs"] = {key: [r.as_dict() for r in value] for key, value in runs.items()}
        result.details["peak_rss_mib"] = {key: round(value / MIB, 1) for key, value in peaks.items()}

    _figures(result, runs)
    details: dict[str, Any] = result.details
    details["servers"] = {
        "plain": "bench.baseline_app",
        "observability": "bench.baseline_app with BASELINE_OBSERVABILITY=1",
        "memory": QUERY_MODULE,
        "redis": QUERY_MODULE,
    }
    return result


def _figures(result: BenchmarkResult, runs: dict[str, list[WrkResult]]) -> None:
    names = {
        "plain": "plain FastAPI",
        "observability": "plain + shared observability",
        "memory": "cached, in-process",
        "redis": "cached, Redis",
    }
    for key, label in names.items():
        result.add(f"{key}_rps", label, "requests/s", [r.rps for r in runs[key]])
        result.add(f"{key}_p50_ms", f"{label} p50", "ms", [r.latency_us["p50"] / 1000 for r in runs[key]])
        result.add(f"{key}_p99_ms", f"{label} p99", "ms", [r.latency_us["p99"] / 1000 for r in runs[key]])
        errors = sum(r.error_count for r in runs[key])
        if errors:
            result.notes.append(f"{label}: wrk counted {errors} errors or non-2xx answers over all runs")
    for key in ("observability", "memory", "redis"):
        ratios = [p.rps / c.rps for p, c in zip(runs["plain"], runs[key], strict=True) if c.rps]
        result.add(f"{key}_cost_ratio", f"{names[key]}: cost vs plain", "x", ratios)
        ratio = result.median(f"{key}_cost_ratio")
        if key == "observability":
            continue
        result.targets.append(
            Target(
                f"{names[key]}: cost per request vs plain endpoint",
                f"<= {TARGET_RATIO}x",
                ratio,
                "x",
                None if ratio is None else ratio <= TARGET_RATIO,
            )
        )
    result.notes.append(
        "Cost ratio = plain requests/s divided by cached requests/s in the same round (CPU time per request, "
        "as the server is CPU-bound on one core)."
    )
    observed = result.median("observability_cost_ratio")
    for key in ("memory", "redis"):
        ratios = [o.rps / c.rps for o, c in zip(runs["observability"], runs[key], strict=True) if c.rps]
        result.add(f"{key}_vs_observability", f"{names[key]}: cost vs plain + observability", "x", ratios)
    over_observed = result.median("redis_vs_observability")
    if observed is not None and over_observed is not None:
        result.notes.append(
            f"Of the gap, the shared observability stack alone (metrics middleware, OpenTelemetry server "
            f"spans) makes a constant endpoint {observed:.1f}x as costly; the query service's own work on a "
            f"Redis cache hit then costs {over_observed:.2f}x that instrumented endpoint."
        )
    result.charts = [
        Chart("Cached status: throughput", "requests/s", [f"{k}_rps" for k in names]),
        Chart(
            "Cached status: latency",
            "ms",
            [f"{k}_p50_ms" for k in names] + [f"{k}_p99_ms" for k in names],
        ),
    ]
