"""Settings both services read from the environment (SPEC.md, "Both services")."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _folded(case: str) -> BeforeValidator:
    """Accept any spelling (`info`, `Info`, ` JSON `): operators write these values by hand."""
    fold = str.upper if case == "upper" else str.lower
    return BeforeValidator(lambda value: fold(value.strip()) if isinstance(value, str) else value)


LogLevel = Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], _folded("upper")]
LogFormat = Annotated[Literal["json", "text"], _folded("lower")]


def _auto_is_none(value: object) -> object:
    return None if isinstance(value, str) and value.strip().lower() in {"", "auto"} else value


ClusterMode = Annotated[bool | None, BeforeValidator(_auto_is_none)]
"""REDIS_CLUSTER (`mcstatbot_common.redis`): `true`/`false` (any pydantic spelling); `auto` or empty: None."""

CLUSTER_DESCRIPTION = (
    "true: REDIS_URL is a Redis Cluster (ElastiCache cluster mode); false: one Redis; "
    "unset or `auto`: asked once with INFO cluster"
)


class ServiceSettings(BaseSettings):
    """HOST, PORT, LOG_LEVEL and LOG_FORMAT; each service subclasses this and sets its own PORT default."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=1, le=65535)
    log_level: LogLevel = "INFO"
    log_format: LogFormat = "json"
