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
token) come from the URL, for both kinds of client, and so does a CA of one's own (`?ssl_ca_certs=<PEM
file>`; ElastiCache's certificates are signed by a public CA, which the system's trust store has): the
cluster client keeps TLS, the AUTH token and the CA for every node the cluster announces.
`failure_reason` says in words why a connection failed (a wrong token, an untrusted certificate).

TLS connections share one `ssl.SSLContext` per set of TLS options (`SharedContextSSLConnection`):
redis-py 8.1 builds a new one for every connection, and `ssl.create_default_context()` parses the
system's CA bundle each time, on the event loop (tens of milliseconds; a burst of new connections to a
cold pool stalled a replica for seconds on a busy machine).
"""

from __future__ import annotations

import logging
import ssl
from typing import Any, TypeVar

import redis.asyncio as redis_asyncio
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import RedisSSLContext, SSLConnection
from redis.exceptions import AuthenticationError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

Client = redis_asyncio.Redis | RedisCluster
"""What `connect` returns: one Redis, or a Redis Cluster."""


AnyClient = TypeVar("AnyClient", redis_asyncio.Redis, RedisCluster)

_SSL_CONTEXTS: dict[tuple[object, ...], RedisSSLContext] = {}


def _shared_ssl_context(context: RedisSSLContext) -> RedisSSLContext:
    """The first RedisSSLContext seen with these options (its SSLContext is built once, on first use)."""
    options: list[object] = []
    for name in RedisSSLContext.__slots__:
        if name == "context":
            continue
        value = getattr(context, name)
        options.append(tuple(value) if isinstance(value, list) else value)
    return _SSL_CONTEXTS.setdefault(tuple(options), context)


class SharedContextSSLConnection(SSLConnection):
    """redis-py's asyncio SSLConnection, with one SSLContext for every connection of the same options.

    Relies on redis-py's `SSLConnection.ssl_context` (a `RedisSSLContext`, whose `get()` builds and keeps
    the SSLContext); pinned by the tests that check every node's connections share one context.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ssl_context = _shared_ssl_context(self.ssl_context)


def _share_tls_contexts(client: AnyClient) -> AnyClient:
    """Make `client`'s TLS connections SharedContextSSLConnection (no change for plain TCP)."""
    if isinstance(client, RedisCluster):
        kwargs = client.nodes_manager.connection_kwargs
        if kwargs.get("connection_class") is SSLConnection:
            kwargs["connection_class"] = SharedContextSSLConnection
            for node in client.nodes_manager.startup_nodes.values():
                node.connection_class = SharedContextSSLConnection
    elif client.connection_pool.connection_class is SSLConnection:
        client.connection_pool.connection_class = SharedContextSSLConnection
    return client


def _single(url: str, **options: Any) -> redis_asyncio.Redis:
    return _share_tls_contexts(redis_asyncio.Redis.from_url(url, **options))


async def is_cluster(url: str, **options: Any) -> bool:
    """Whether the Redis at `url` runs in cluster mode (`INFO cluster` says `cluster_enabled:1`)."""
    single = _single(url, **options)
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
        client = _share_tls_contexts(RedisCluster.from_url(url, **options))
        try:
            await client.initialize()
        except BaseException:
            await client.aclose()
            raise
        return client
    return _single(url, **options)


_REASON_LIMIT = 300
"""Characters of the exception's own message kept in `failure_reason`."""


def failure_reason(exc: BaseException, *, secret: str | None = None) -> str:
    """Why a Redis call failed, for a log line: the kind of failure an operator can fix (a wrong AUTH
    token, a certificate not trusted), then the exception's own message (shortened; `secret`, e.g. the
    token, never shown)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    message = " ".join(str(exc).split())[:_REASON_LIMIT]
    if secret:
        message = message.replace(secret, "***")
    if any(isinstance(link, ssl.SSLCertVerificationError) for link in chain):
        kind = (
            "TLS certificate not trusted (REDIS_URL: ?ssl_ca_certs=<CA file> for a CA of your own; "
            "ElastiCache's is in the system's trust store)"
        )
    elif isinstance(exc, (TimeoutError, RedisTimeoutError)):
        kind = "no answer in time (a slow or paused Redis, or rediss:// to a port without TLS)"
    elif any(isinstance(link, AuthenticationError) for link in chain) or "NOAUTH" in message:
        kind = "AUTH refused (the token or user in REDIS_URL)"
    else:
        kind = type(exc).__name__
    return f"{kind}: {message}" if message else kind
