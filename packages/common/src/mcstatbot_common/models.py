"""The query service's HTTP API models (v1), shared by the query service, the bot and the CLI.

These are the bodies described in SPEC.md. Fields may be added; none may be renamed or removed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_SERVER_URL_LENGTH = 300
"""Longest `server_url` accepted in a request body: a 253-character name, a port and some slack."""
# The query service keeps what a server says within these bounds (a hostile server may list 10,000 mods).
# They are the producer's promise, not validation: a reader accepts any size and bounds what it shows.
MAX_BATCH_SERVERS = 100
"""Most servers one `POST /api/v1/status/batch` asks about; more answer 422 `invalid_request`."""
MAX_REQUEST_BODY_BYTES = 16 * 1024
"""Largest request body the query service reads; a larger one answers 413 `body_too_large`."""
MAX_ITEMS = 256
"""Most mods (or plugins) an answer lists; a longer list is cut and marked `mods_truncated`."""
MAX_ITEM_NAME = 100
"""Longest mod or plugin name kept (a longer one is cut)."""
MAX_ITEM_VERSION = 64
"""Longest mod, plugin or software version kept (a longer one is cut)."""
MAX_PLACEHOLDER_TEXT = 300
"""Longest placeholder text kept."""


class Edition(StrEnum):
    AUTO = "auto"
    JAVA = "java"
    BEDROCK = "bedrock"


class ErrorCode(StrEnum):
    """Why a server could not be reached; every probe failure maps to exactly one of these."""

    TIMEOUT = "timeout"
    REFUSED = "refused"
    DNS = "dns"
    UNREACHABLE = "unreachable"
    PROTOCOL = "protocol"
    PLACEHOLDER = "placeholder"
    """A host or proxy answered for the server with a placeholder ("● Offline"): the server is not running."""


class ApiModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class StatusRequest(ApiModel):
    """Body of `POST /api/v1/status` and `POST /api/v1/players`."""

    server_url: str = Field(
        min_length=1,
        max_length=MAX_SERVER_URL_LENGTH,
        description="host, host:port, IPv4, [IPv6]:port or an internationalised name",
        examples=["play.example.com", "play.example.com:25565", "[2001:db8::1]:19132"],
    )
    edition: Edition = Edition.AUTO
    debug: bool = Field(
        default=False, description="add a `debug` block: what was looked up, tried and how long it took"
    )


class ProbeError(ApiModel):
    code: ErrorCode
    message: str


class Version(ApiModel):
    name: str
    protocol: int | None = None


class Motd(ApiModel):
    raw: str = Field(description="the MOTD as the server sent it (section-sign codes kept)")
    clean: str = Field(description="plain text: no formatting codes, JSON components flattened")
    html: str = Field(description="escaped HTML with colours and styles as <span> elements")


class PlayerEntry(ApiModel):
    name: str
    id: str | None = None


class Players(ApiModel):
    online: int
    max: int
    sample: list[PlayerEntry] = Field(default_factory=list)


class PlayerCount(ApiModel):
    online: int
    max: int


class SrvRecord(ApiModel):
    """The SRV record followed to reach the server (`_minecraft._tcp.<host>`)."""

    target: str
    port: int


class BedrockInfo(ApiModel):
    map_name: str | None = None
    gamemode: str | None = None


class PlaceholderInfo(ApiModel):
    """The placeholder a host or proxy answered with, when the server behind it is not running."""

    rule: str = Field(description="the matching rule's id, e.g. `aternos-offline`")
    host: str = Field(description="who answers like that, e.g. `Aternos`")
    text: str = Field(description="the placeholder's text, codes removed (at most MAX_PLACEHOLDER_TEXT)")


class SoftwareInfo(ApiModel):
    """What the server runs, as far as its answers say."""

    name: str = Field(description="vanilla, paper, spigot, forge, neoforge, fabric, velocity, ...")
    version: str | None = None
    minecraft_version: str | None = None


class NamedVersion(ApiModel):
    """One mod or plugin."""

    name: str
    version: str | None = None


class DebugStep(ApiModel):
    """One thing the probe did, in the order it did them."""

    step: str = Field(
        description="srv, resolve, java_status, java_legacy, query or bedrock_ping",
        examples=["java_status"],
    )
    target: str = Field(description="what was asked: a name, or the address:port tried")
    outcome: str = Field(description="ok, none (no SRV record), or an error code (timeout, refused, ...)")
    ms: float = Field(description="how long it took, in milliseconds")
    detail: str | None = Field(default=None, description="the SRV record found, or the addresses resolved")


class DebugCache(ApiModel):
    """Where the answer came from."""

    tier: Literal["memory", "redis", "probe", "stale"] = Field(
        description="memory or redis: a fresh cache entry; stale: an expired one (a refresh runs); "
        "probe: a probe made for this request (and stored for everybody)"
    )
    key: str = Field(description="the cache key that answered (or that the probe was stored under)")
    ttl_left: float = Field(description="seconds the answer stays fresh (0 when stale)")
    lock: str | None = Field(
        default=None, description="the probe lock: acquired, held elsewhere or unshared (None: no probe)"
    )
    shared: bool = Field(description="the request joined a look-up or probe already running in the process")


class DebugInfo(ApiModel):
    """The `debug` block: only with `?debug=true` (GET) or `"debug": true` (POST)."""

    cache: DebugCache
    steps: list[DebugStep] = Field(
        default_factory=list, description="empty when the cache answered: nothing was probed"
    )


def utc_now() -> datetime:
    return datetime.now(UTC)


class ServerStatus(ApiModel):
    address: str = Field(description="normalised host:port that was asked about")
    host: str
    port: int
    edition: Edition = Field(description="the edition that answered; the requested one when none did")
    online: bool
    version: Version | None = None
    motd: Motd | None = None
    players: Players | None = None
    latency_ms: float | None = None
    srv: SrvRecord | None = None
    icon: str | None = Field(default=None, description="data:image/png;base64 favicon, Java only")
    bedrock: BedrockInfo | None = None
    retrieved_at: datetime = Field(default_factory=utc_now)
    cached: bool = False
    stale: bool = Field(
        default=False,
        description="answered from an expired entry (within CACHE_STALE_SECONDS) while one refresh runs",
    )
    age_seconds: int | None = Field(
        default=None, description="seconds since `retrieved_at`, on every cached answer (fresh or stale)"
    )
    error: ProbeError | None = None
    placeholder: PlaceholderInfo | None = Field(
        default=None, description="set with error code `placeholder`: what the host answered instead"
    )
    software: SoftwareInfo | None = None
    mods: list[NamedVersion] = Field(
        default_factory=list,
        description="Forge/NeoForge mods (at most MAX_ITEMS, the game and loader left out)",
    )
    mods_truncated: bool = Field(default=False, description="the server or the query service cut the list")
    plugins: list[NamedVersion] = Field(
        default_factory=list, description="from the Query protocol (`/players` only)"
    )
    plugins_truncated: bool = False
    debug: DebugInfo | None = Field(
        default=None, description='only with `?debug=true` / `"debug": true`; never cached'
    )


PlayerSource = Literal["query", "sample", "none"]


class PlayerList(ApiModel):
    address: str
    online: bool
    players: PlayerCount | None = None
    names: list[str] = Field(default_factory=list)
    source: PlayerSource = "none"
    retrieved_at: datetime = Field(default_factory=utc_now)
    cached: bool = False
    stale: bool = Field(
        default=False,
        description="answered from an expired entry (within CACHE_STALE_SECONDS) while one refresh runs",
    )
    age_seconds: int | None = Field(
        default=None, description="seconds since `retrieved_at`, on every cached answer (fresh or stale)"
    )
    error: ProbeError | None = None
    plugins: list[NamedVersion] = Field(
        default_factory=list, description="from the Query protocol's `plugins` field"
    )
    plugins_truncated: bool = False
    debug: DebugInfo | None = Field(
        default=None, description='only with `?debug=true` / `"debug": true`; never cached'
    )


class ErrorDetail(ApiModel):
    """`detail` of a 4xx answer that names the problem."""

    code: str = Field(examples=["invalid_address", "forbidden_address"])
    message: str


class ErrorResponse(ApiModel):
    detail: ErrorDetail


class BatchServer(ApiModel):
    """One server of a `POST /api/v1/status/batch` body."""

    server_url: str = Field(
        min_length=1,
        max_length=MAX_SERVER_URL_LENGTH,
        description="host, host:port, IPv4, [IPv6]:port or an internationalised name",
    )
    edition: Edition = Edition.AUTO


class StatusBatchRequest(ApiModel):
    """Body of `POST /api/v1/status/batch`: 1 to MAX_BATCH_SERVERS servers."""

    servers: list[BatchServer] = Field(min_length=1, max_length=MAX_BATCH_SERVERS)


class StatusBatchItem(ApiModel):
    """One server's answer in a batch: what `POST /api/v1/status` would have answered for it."""

    status_code: int = Field(description="the single endpoint's HTTP status: 200, 400, 403 or 500")
    status: ServerStatus | None = Field(default=None, description="with status_code 200")
    error: ErrorDetail | None = Field(default=None, description="with any other status_code")
    max_age: int | None = Field(default=None, description="the single answer's Cache-Control max-age")
    cache_hit: bool = Field(default=False, description="the single answer's X-Cache: HIT")


class StatusBatchResponse(ApiModel):
    """Answer of `POST /api/v1/status/batch`: one item per server asked, in the same order."""

    results: list[StatusBatchItem]
