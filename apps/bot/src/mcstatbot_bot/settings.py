"""The bot service's settings, read from the environment (SPEC.md, "Bot service")."""

from __future__ import annotations

import hashlib
from typing import Literal

from mcstatbot_common.settings import CLUSTER_DESCRIPTION, ClusterMode, ServiceSettings
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

BotMode = Literal["polling", "webhook"]
StateBackend = Literal["memory", "sqlite", "dynamodb"]


class BotSettings(ServiceSettings):
    """Everything the bot service reads from its environment; the Helm chart's tests import this class."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    port: int = Field(default=8080, ge=1, le=65535, description="HTTP port (webhook, health, metrics)")
    telegram_bot_token: SecretStr = Field(description="the bot's token from @BotFather (required)")
    telegram_api_base_url: str = Field(
        default="https://api.telegram.org",
        description="root of the Bot API server; the bot appends /bot<token>/<method>",
    )
    bot_mode: BotMode = Field(default="polling", description="polling (local use) or webhook (the chart)")
    webhook_url: str | None = Field(
        default=None, description="public HTTPS URL Telegram calls; when set in webhook mode it is registered"
    )
    webhook_secret: SecretStr | None = Field(
        default=None, description="when set, POST /telegram/webhook needs X-Telegram-Bot-Api-Secret-Token"
    )
    query_service_url: str = Field(
        default="http://127.0.0.1:8081", description="base URL of the query service"
    )
    state_backend: StateBackend = Field(default="sqlite", description="memory, sqlite or dynamodb")
    sqlite_path: str = Field(default="./mcstatbot.db", description="SQLite file (STATE_BACKEND=sqlite)")
    dynamodb_table: str = Field(
        default="user_sessions", description="DynamoDB table (STATE_BACKEND=dynamodb)"
    )

    redis_url: SecretStr | None = Field(
        default=None,
        description="redis:// or rediss:// URL of the shared Telegram send budget; unset: this process's own",
    )
    redis_cluster: ClusterMode = Field(default=None, description=CLUSTER_DESCRIPTION)

    query_timeout: float = Field(default=3.0, gt=0, description="seconds per query-service request")
    query_retries: int = Field(default=1, ge=0, le=5, description="retries after a failed query request")
    breaker_failure_threshold: int = Field(
        default=3, ge=1, description="consecutive query failures that open the circuit breaker"
    )
    breaker_reset_seconds: float = Field(
        default=30.0, gt=0, description="seconds the breaker stays open before one trial request (half-open)"
    )
    flood_max_probes: int = Field(default=5, ge=1, description="probes a chat may ask for per flood window")
    flood_window_seconds: float = Field(default=10.0, gt=0, description="length of the flood window, seconds")
    state_retries: int = Field(default=3, ge=0, le=10, description="retries of a failed state-store call")
    state_timeout: float = Field(default=2.0, gt=0, description="seconds per DynamoDB request")
    update_lease_seconds: float = Field(
        default=60.0, gt=0, description="how long a replica's claim on an update blocks other replicas"
    )
    max_webhook_body_bytes: int = Field(default=1_048_576, ge=1024, description="larger webhook bodies: 413")
    graceful_shutdown_seconds: float = Field(
        default=20.0, ge=0, description="on SIGTERM, how long in-flight updates may take to finish"
    )
    watch_max_per_chat: int = Field(default=10, ge=1, description="watches and live cards per chat")
    live_interval_seconds: float = Field(
        default=60.0, gt=0, description="how often a live card is refreshed (edited only when it changed)"
    )
    history_days: int = Field(
        default=30, ge=1, le=366, description="how long history samples of watched servers are kept, days"
    )
    history_draw_timeout: float = Field(
        default=30.0, gt=0, description="seconds a /history chart may take to draw before the bot gives up"
    )
    set_commands: bool = Field(default=True, description="call setMyCommands at start")
    typing_delay_seconds: float = Field(
        default=0.3,
        ge=0,
        description='show "typing…" (sendChatAction) only when the answer takes longer than this; 0: at once',
    )

    @property
    def bot_id(self) -> str:
        """The bot's numeric id (the token's part before ':'; public, unlike the token): update claims
        are kept per bot, so two bots sharing a state store never take each other's updates for
        duplicates. A token without one is named by a digest of it."""
        token = self.telegram_bot_token.get_secret_value()
        prefix = token.split(":", 1)[0]
        return prefix if prefix.isdigit() else "t" + hashlib.sha256(token.encode()).hexdigest()[:16]

    @field_validator("telegram_api_base_url", "query_service_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("webhook_url", "webhook_secret", "redis_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _token_present(self) -> BotSettings:
        if not self.telegram_bot_token.get_secret_value().strip():
            raise ValueError("TELEGRAM_BOT_TOKEN is empty")
        return self
