"""The query service's configuration, read from the environment (SPEC.md, "Query service")."""

from __future__ import annotations

import urllib.parse

from mcstatbot_common.settings import CLUSTER_DESCRIPTION, ClusterMode, ServiceSettings
from pydantic import Field, field_validator


class QuerySettings(ServiceSettings):
    """Environment variables of the query service; each field's description says what it does."""

    port: int = Field(default=8081, ge=1, le=65535, description="TCP port the HTTP API listens on")
    redis_url: str | None = Field(
        default=None,
        description="redis:// or rediss:// URL of the shared cache (rediss://: TLS, with "
        "?ssl_ca_certs=<PEM file> for a CA of one's own); unset: an in-process cache",
    )
    redis_cluster: ClusterMode = Field(default=None, description=CLUSTER_DESCRIPTION)
    cache_ttl_status: int = Field(default=60, ge=1, description="seconds an online status stays cached")
    cache_ttl_players: int = Field(default=30, ge=1, description="seconds a player list stays cached")
    cache_ttl_offline: int = Field(
        default=10, ge=1, description="seconds an offline/error answer stays cached (status and players)"
    )
    mc_timeout: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="seconds for the whole probe of one server (DNS, connect, exchange)",
    )
    mc_tries: int = Field(
        default=2,
        ge=1,
        le=5,
        description="UDP exchanges (Bedrock ping, Query) are sent this many times within MC_TIMEOUT",
    )
    mc_query_timeout: float = Field(
        default=2.0,
        gt=0,
        description="seconds to wait for the Query protocol (full player list) before using the sample",
    )
    mc_max_concurrent_probes: int = Field(
        default=512,
        ge=1,
        description="probes (per edition) at once in one process; more wait for a slot within MC_TIMEOUT",
    )
    mc_max_status_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        description="largest status packet accepted from a server; a larger one is a protocol error",
    )
    allow_private_addresses: bool = Field(
        default=False,
        description="when false, addresses resolving to loopback, private, link-local, CGNAT, multicast, "
        "reserved or cloud-metadata IPs are refused (403 forbidden_address)",
    )
    dns_nameservers: str = Field(
        default="",
        description="comma-separated resolvers (ip or ip:port) for all lookups (SRV, A, AAAA); "
        "empty: the system's (getaddrinfo for names, resolv.conf for SRV)",
    )
    dns_srv: bool = Field(
        default=True, description="follow _minecraft._tcp SRV records when no port is given"
    )
    cache_stale_seconds: int = Field(
        default=30,
        ge=0,
        description="seconds after an entry expires during which it is still answered (marked stale) "
        "while one background refresh runs; 0: an expired entry is a miss",
    )
    cache_max_entries: int = Field(
        default=10_000, ge=1, description="entries the in-process cache keeps (used when REDIS_URL is unset)"
    )
    redis_timeout: float = Field(
        default=0.5, gt=0, description="seconds for one Redis call; a slower Redis counts as down"
    )
    redis_backoff: float = Field(
        default=1.0, ge=0, description="seconds Redis is left alone after a failure before it is tried again"
    )
    lock_poll_interval: float = Field(
        default=0.05, gt=0, description="seconds between cache checks while another replica probes"
    )

    @field_validator("redis_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("redis_url")
    @classmethod
    def _tls_options_need_rediss(cls, value: str | None) -> str | None:
        """`ssl_*` parameters on a plain redis:// URL would make every Redis call fail with a TypeError
        in redis-py (not a connection error): refused at start-up instead."""
        if value is None:
            return value
        parts = urllib.parse.urlsplit(value)
        tls_options = sorted(k for k in urllib.parse.parse_qs(parts.query) if k.startswith("ssl_"))
        if tls_options and parts.scheme != "rediss":
            raise ValueError(
                f"{', '.join(tls_options)} in REDIS_URL need rediss:// (TLS), not {parts.scheme}://"
            )
        return value

    def nameservers(self) -> list[tuple[str, int]]:
        """DNS_NAMESERVERS as (ip, port) pairs."""
        result: list[tuple[str, int]] = []
        for item in self.dns_nameservers.split(","):
            text = item.strip()
            if not text:
                continue
            if text.startswith("["):
                host, _, port = text[1:].partition("]:")
                result.append((host.rstrip("]"), int(port) if port else 53))
            elif text.count(":") == 1:
                host, _, port = text.partition(":")
                result.append((host, int(port)))
            else:
                result.append((text, 53))
        return result
