"""Settings both services read from the environment (SPEC.md, "Both services")."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogFormat = Literal["json", "text"]


class ServiceSettings(BaseSettings):
    """HOST, PORT, LOG_LEVEL and LOG_FORMAT; each service subclasses this and sets its own PORT default."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=1, le=65535)
    log_level: LogLevel = "INFO"
    log_format: LogFormat = "json"
