"""One Redis or a Redis Cluster behind REDIS_URL: the REDIS_CLUSTER setting and the client for it.

Every Redis user (the query service's cache, the bot's and watcher's Telegram send budget, the watcher's
replica slots) reads REDIS_URL and REDIS_CLUSTER the same way:

- `REDIS_CLUSTER=true`: REDIS_URL is a Redis Cluster (ElastiCache with cluster mode enabled: its
  configuration endpoint, or any one node); redis-py's `RedisCluster` finds the other nodes.
- `REDIS_CLUSTER=false`: one Redis (or a primary endpoint); redis-py's `Redis`.
- `REDIS_CLUSTER=auto` or unset: asked once, at the first connection, with `INFO cluster`
  (`cluster_enabled:1` means a cluster).

The setting's type is `mcstatbot_common.settings.ClusterMode` (that module imports no Redis client: a
service without REDIS_URL never imports redis-py). `rediss://` (TLS) and `user:password@` (an AUTH
token) come from the URL, for both kinds of client.
"""

from __future__ import annotations

import logging
from typing import Any

import redis.asyncio as redis_asyncio
from redis.asyncio.cluster import RedisCluster

log = logging.getLogger(__name__)

Client = redis_asyncio.Redis | RedisCluster
"""What `connect` returns: one Redis, or a Redis Cluster."""


async def is_cluster(url: str, **options: Any) -> bool:
    """Whether the Redis at `url` runs in cluster mode (`INFO cluster` says `cluster_enabled:1`)."""
    single = redis_asyncio.Redis.from_url(url, **options)
    try:
        info = await single.info("cluster")
    finally:
        await single.aclose()
    return bool(info.get("cluster_enabled"))


async def connect(url: str, *, cluster: bool | None, what: str = "Redis", **options: Any) -> Client:
    """A client for `url`, ready to use: a `RedisCluster` (initialized) when `cluster` is True, or when it
    is None and `INFO cluster` says so; else a `Redis`. `options` go to redis-py's `from_url` (timeouts,
    retry, ...). `what` names the user in the log line that says which kind was found."""
    if cluster is None:
        cluster = await is_cluster(url, **options)
        log.info(
            "%s: %s",
            what,
            "Redis Cluster (INFO cluster says cluster_enabled:1)" if cluster else "Redis (single node)",
        )
    if cluster:
        client = RedisCluster.from_url(url, **options)
        try:
            await client.initialize()
        except BaseException:
            await client.aclose()
            raise
        return client
    return redis_asyncio.Redis.from_url(url, **options)
