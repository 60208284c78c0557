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
    error: ProbeError | None = None


PlayerSource = Literal["query", "sample", "none"]


class PlayerList(ApiModel):
    address: str
    online: bool
    players: PlayerCount | None = None
    names: list[str] = Field(default_factory=list)
    source: PlayerSource = "none"
    retrieved_at: datetime = Field(default_factory=utc_now)
    cached: bool = False
    error: ProbeError | None = None


class ErrorDetail(ApiModel):
    """`detail` of a 4xx answer that names the problem."""

    code: str = Field(examples=["invalid_address", "forbidden_address"])
    message: str


class ErrorResponse(ApiModel):
    detail: ErrorDetail
