"""The watcher's settings: the bot's (BotSettings) plus the WATCH_* variables of SPEC.md.

REDIS_URL and REDIS_CLUSTER are the bot's: one Redis (or Redis Cluster) holds the shared Telegram send
budget and the replicas' slots; unset, one replica checks everything."""

from __future__ import annotations

from mcstatbot_bot.settings import BotSettings
from pydantic import Field


class WatcherSettings(BotSettings):
    port: int = Field(default=8082, ge=1, le=65535, description="HTTP port (health, readiness, metrics)")
    watch_interval_seconds: float = Field(
        default=60.0, gt=0, description="each watched server is checked once per interval (fractions allowed)"
    )
    watch_down_after: int = Field(
        default=3, ge=1, description="consecutive failed checks before a server is reported down"
    )
    watch_flap_seconds: float = Field(
        default=600.0, ge=0, description="at most one report per direction per this period for a server"
    )
    watch_concurrency: int = Field(default=64, ge=1, description="checks in flight at once")
    live_offline_seconds: float = Field(
        default=7 * 86400.0,
        gt=0,
        description="a server's live cards stop once it has been down this long (7 days)",
    )
