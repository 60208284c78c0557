"""Building PTB's Application: the Bot API base URL, timeouts, PTB's own HTTPXRequest under it (with a
bound on response size, `mcstatbot_bot.clients`), the Telegram send budget (`mcstatbot_bot.send_budget`:
Telegram's limits shared through Redis, 429s honoured), a count of every failed Bot API call by kind
(`mcstatbot_telegram_api_errors_total`), and which failures are permanent."""

from __future__ import annotations

from typing import TYPE_CHECKING

from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import ApplicationBuilder

from mcstatbot_bot import metrics
from mcstatbot_bot.clients import bot_api_request
from mcstatbot_bot.send_budget import SendBudget
from mcstatbot_bot.updates import BotApplication, note_bot_api_call

if TYPE_CHECKING:
    from mcstatbot_bot.settings import BotSettings


def classify(error: TelegramError) -> str | None:
    """The `kind` label for a failed Bot API call; None for "message is not modified" (not an error)."""
    if isinstance(error, RetryAfter):
        return "rate_limited"
    if isinstance(error, BadRequest):
        return None if "not modified" in str(error).lower() else "bad_request"
    if isinstance(error, NetworkError | TimedOut):
        return "network"
    return "other"


def is_not_modified(error: BaseException) -> bool:
    """Telegram's "message is not modified" (an edit that changes nothing): not an error at all."""
    return isinstance(error, BadRequest) and "not modified" in str(error).lower()


def is_permanent(error: BaseException | None) -> bool:
    """A Bot API 4xx other than 429: asking again would be refused again (400 bad request, 401/404,
    403 blocked by the user, 409, a chat that migrated). "Not modified" is not an error; network
    failures, timeouts and 5xx may pass."""
    if isinstance(error, BadRequest):
        return not is_not_modified(error)
    return isinstance(error, Forbidden | InvalidToken | EndPointNotFound | Conflict | ChatMigrated)


def count_error(error: TelegramError) -> None:
    """Count a failed Bot API call in `mcstatbot_telegram_api_errors_total` by its kind."""
    kind = classify(error)
    if kind is not None:
        metrics.TELEGRAM_API_ERRORS.labels(kind).inc()


def build_rate_limiter(settings: BotSettings) -> SendBudget:
    """The Telegram send budget (`mcstatbot_bot.send_budget`): shared through REDIS_URL when it is set,
    this process's own otherwise; retries after a 429's `retry_after`, counts every failed call, and tells
    the update being handled which calls succeeded (`updates.note_bot_api_call`: a message sent for it
    means it is answered)."""
    return SendBudget(
        settings.redis_url.get_secret_value() if settings.redis_url else None,
        redis_cluster=settings.redis_cluster,
        max_retries=3,
        on_error=count_error,
        on_success=note_bot_api_call,
    )


def build_application(settings: BotSettings, *, webhook: bool) -> BotApplication:
    root = settings.telegram_api_base_url
    builder = (
        ApplicationBuilder()
        .application_class(BotApplication)
        .token(settings.telegram_bot_token.get_secret_value())
        .base_url(f"{root}/bot")
        .base_file_url(f"{root}/file/bot")
        .request(bot_api_request(connection_pool_size=64, connect_timeout=5.0, read_timeout=10.0))
        .get_updates_request(bot_api_request(connection_pool_size=2, connect_timeout=5.0, read_timeout=40.0))
        .rate_limiter(build_rate_limiter(settings))
        .concurrent_updates(64)
    )
    if webhook:
        builder = builder.updater(None)
    application = builder.build()
    if not isinstance(application, BotApplication):  # pragma: no cover - the builder honours the class
        raise TypeError("unexpected application class")
    return application
