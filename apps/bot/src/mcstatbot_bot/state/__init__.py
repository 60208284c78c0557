"""Chat state behind one interface; `build_store(settings)` picks the backend from STATE_BACKEND."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mcstatbot_bot.state.base import ChatSettings, ChatState, ClaimResult, ServerRef, StateStore, StoredServer
from mcstatbot_bot.state.resilient import ResilientStore

if TYPE_CHECKING:
    from mcstatbot_bot.settings import BotSettings

__all__ = [
    "ChatSettings",
    "ChatState",
    "ClaimResult",
    "ResilientStore",
    "ServerRef",
    "StateStore",
    "StoredServer",
    "build_store",
]


def build_store(settings: BotSettings) -> ResilientStore:
    inner: StateStore
    if settings.state_backend == "dynamodb":
        from mcstatbot_bot.state.dynamodb import DynamoDBStore  # noqa: PLC0415 - loads aiodynamo only when used

        inner = DynamoDBStore(
            settings.dynamodb_table,
            timeout=settings.state_timeout,
            bot_id=settings.bot_id,
            retries=settings.state_retries,  # aiodynamo retries, on the AWS SDKs' standard schedule
        )
        return ResilientStore(inner, retries=0)
    if settings.state_backend == "sqlite":
        from mcstatbot_bot.state.sqlite import SqliteStore  # noqa: PLC0415 - same for aiosqlite

        inner = SqliteStore(settings.sqlite_path, bot_id=settings.bot_id)
    else:
        from mcstatbot_bot.state.memory import MemoryStore  # noqa: PLC0415

        inner = MemoryStore(bot_id=settings.bot_id)
    return ResilientStore(inner, retries=settings.state_retries)
