"""The pieces a benchmark starts (peer, Redis, services), each stopped for sure when the benchmark ends."""

from __future__ import annotations

import importlib.util
import re
from contextlib import contextmanager
from typing import TYPE_CHECKING

import httpx
from mcstatbot_testkit.minecraft import JavaPeer
from mcstatbot_testkit.redis import RedisServer
from mcstatbot_testkit.redis_cluster import RedisCluster

from bench.core import BenchmarkSkippedError
from bench.launch import BenchService

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from bench.core import BenchContext

QUERY_MODULE = "mcstatbot_query"
BOT_MODULE = "mcstatbot_bot"


def require_module(module: str) -> None:
    """Skip the benchmark when `python -m module` cannot run (the service is not in the workspace yet)."""
    try:
        found = importlib.util.find_spec(f"{module}.__main__")
    except ModuleNotFoundError:
        found = None
    if found is None:
        raise BenchmarkSkippedError(f"`python -m {module}` is not available in this checkout")


def query_env(**overrides: str) -> dict[str, str]:
    """The query service's environment for loopback peers (ALLOW_PRIVATE_ADDRESSES=true)."""
    return {"ALLOW_PRIVATE_ADDRESSES": "true", "LOG_LEVEL": "WARNING", **overrides}


@contextmanager
def java_peer(context: BenchContext, name: str = "java-peer") -> Iterator[JavaPeer]:
    with JavaPeer(context.log_path(name)) as peer:
        yield peer


@contextmanager
def redis_server(context: BenchContext, name: str = "redis") -> Iterator[RedisServer]:
    with RedisServer(context.log_path(name)) as server:
        yield server


@contextmanager
def redis_cluster(context: BenchContext, name: str = "redis-cluster") -> Iterator[RedisCluster]:
    with RedisCluster(context.work_dir / name) as cluster:
        yield cluster


@contextmanager
def service(
    context: BenchContext,
    module: str,
    name: str,
    env: Mapping[str, str] | None = None,
    *,
    cpus: str | None = None,
    python: str | None = None,
) -> Iterator[BenchService]:
    process = BenchService(module, context.log_path(name), env, cpus=cpus, python=python)
    try:
        process.start()
        if process.startup_s is not None:
            context.observe(f"{name.split('-', maxsplit=1)[0]}_startup_s", process.startup_s)
        yield process
    finally:
        process.stop()


_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def metric_samples(url: str, metric: str) -> list[tuple[dict[str, str], float]]:
    """The samples of `metric` in a Prometheus text page at `url` ({labels}, value)."""
    text = httpx.get(url, timeout=5.0).text
    samples = []
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and match["name"] == metric:
            labels = dict(_LABEL.findall(match["labels"] or ""))
            samples.append((labels, float(match["value"])))
    return samples
