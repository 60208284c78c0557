"""`mcstatbot-bot` / `python -m mcstatbot_bot`: run the service, or a one-shot command.

    mcstatbot-bot                 the service (uvicorn; BOT_MODE polling or webhook)
    mcstatbot-bot check-telegram  ask the Bot API who the token belongs to (getMe): prints @username
    mcstatbot-bot set-webhook     register WEBHOOK_URL (with WEBHOOK_SECRET) with Telegram, then exit
    mcstatbot-bot create-table    create the DynamoDB table (DYNAMODB_TABLE) with TTL, then exit

Exit status 2 when the configuration is unusable (TELEGRAM_BOT_TOKEN missing, or refused by Telegram),
1 when the Bot API cannot be reached; each with one line on stderr saying what is wrong and what to do.
The service checks the token the same way before it starts.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TypeVar

import uvicorn
from mcstatbot_common.logging import UVICORN_LOG_CONFIG, configure_logging
from mcstatbot_common.observability import setup_tracing
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from mcstatbot_bot.settings import BotSettings

EXIT_CONFIG = 2
EXIT_UNREACHABLE = 1
SettingsT = TypeVar("SettingsT", bound=BaseSettings)


class _TableSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")
    dynamodb_table: str = Field(default="user_sessions")
    log_level: str = "INFO"
    log_format: str = "json"


def load_settings(settings_class: type[SettingsT], program: str) -> SettingsT:
    """The settings from the environment; an unusable configuration is one line per problem on stderr and
    exit status 2 (no traceback). Shared by `mcstatbot-bot` and `mcstatbot-watcher`."""
    try:
        return settings_class()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]).upper() or "configuration"
            reason = "is required but not set" if error["type"] == "missing" else error["msg"]
            problems.append(f"  {name}: {reason}")
        sys.stderr.write(f"{program}: the configuration is not usable:\n" + "\n".join(problems) + "\n")
        if any(error["loc"] == ("telegram_bot_token",) for error in exc.errors()):
            sys.stderr.write("Set TELEGRAM_BOT_TOKEN to the token @BotFather gave you.\n")
        raise SystemExit(EXIT_CONFIG) from None


async def check_telegram(settings: BotSettings) -> tuple[int, str]:
    """(0, "@username") when the Bot API knows the token; else (exit status, the one line to print)."""
    from telegram import Bot  # noqa: PLC0415 - only the commands that talk to Telegram load PTB
    from telegram.error import InvalidToken, NetworkError, TelegramError, TimedOut  # noqa: PLC0415

    from mcstatbot_bot.clients import bot_api_request  # noqa: PLC0415

    root = settings.telegram_api_base_url
    bot = Bot(
        settings.telegram_bot_token.get_secret_value(),
        base_url=f"{root}/bot",
        request=bot_api_request(connection_pool_size=1, connect_timeout=5.0, read_timeout=10.0),
    )
    try:
        async with bot:
            return 0, f"@{bot.username}"
    except InvalidToken:
        return EXIT_CONFIG, (
            f"Telegram ({root}) refused TELEGRAM_BOT_TOKEN (401 Unauthorized): it is not a valid bot token. "
            "Copy the token from @BotFather (or get a new one there with /token) into TELEGRAM_BOT_TOKEN."
        )
    except (TimedOut, NetworkError) as exc:  # refused, DNS, TLS, timeout
        return EXIT_UNREACHABLE, (
            f"cannot reach the Telegram Bot API at {root} ({type(exc).__name__}: {exc}). "
            "Check the network (and HTTPS_PROXY if you need one), or TELEGRAM_API_BASE_URL if you set it."
        )
    except TelegramError as exc:
        return EXIT_UNREACHABLE, (
            f"the Telegram Bot API at {root} answered getMe with an error ({exc}); try again in a minute."
        )


def _check_or_exit(settings: BotSettings) -> str:
    status, line = asyncio.run(check_telegram(settings))
    if status:
        sys.stderr.write(f"mcstatbot-bot: {line}\n")
        raise SystemExit(status)
    return line


def serve() -> None:
    settings = load_settings(BotSettings, "mcstatbot-bot")
    configure_logging(settings.log_level, settings.log_format, service="bot")
    _check_or_exit(settings)  # a refused token or an unreachable Bot API: one line, not a traceback
    setup_tracing("bot")
    from mcstatbot_bot.app import create_app  # noqa: PLC0415 - after logging and tracing are set up

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=UVICORN_LOG_CONFIG,
        timeout_graceful_shutdown=int(settings.graceful_shutdown_seconds),
        proxy_headers=True,
        server_header=False,
        ws="none",  # no WebSocket endpoint: uvicorn need not load a WebSocket implementation
    )


async def _set_webhook(settings: BotSettings) -> int:
    from telegram.error import TelegramError  # noqa: PLC0415

    from mcstatbot_bot.app import register_webhook  # noqa: PLC0415
    from mcstatbot_bot.telegram_api import build_application  # noqa: PLC0415

    if not settings.webhook_url:
        sys.stderr.write("mcstatbot-bot set-webhook: WEBHOOK_URL is not set\n")
        return EXIT_CONFIG
    application = build_application(settings, webhook=True)
    try:
        async with application:
            await register_webhook(application, settings)
            info = await application.bot.get_webhook_info()
    except TelegramError as exc:
        sys.stderr.write(f"mcstatbot-bot set-webhook: Telegram refused: {exc}\n")
        return 1
    sys.stdout.write(f"webhook set: {info.url} (pending updates: {info.pending_update_count})\n")
    return 0


def _dynamodb_failure(exc: Exception) -> str:
    """One line for what stopped `create-table`: DynamoDB's own error type and message when it answered."""
    detail = exc.args[0] if exc.args else None
    if isinstance(detail, dict):
        kind = str(detail.get("__type", type(exc).__name__)).rsplit("#", 1)[-1]
        message = detail.get("message") or detail.get("Message") or ""
        return f"DynamoDB refused: {kind}: {message}".rstrip(": ")
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def _create_table(table: str) -> int:
    import httpx  # noqa: PLC0415
    from aiodynamo.errors import AIODynamoError  # noqa: PLC0415

    from mcstatbot_bot.state.aws import NoRegionError  # noqa: PLC0415
    from mcstatbot_bot.state.dynamodb import create_table  # noqa: PLC0415

    try:
        created = await create_table(table)
    except (AIODynamoError, NoRegionError, httpx.HTTPError, TimeoutError) as exc:
        sys.stderr.write(f"mcstatbot-bot create-table {table}: {_dynamodb_failure(exc)}\n")
        return 1
    sys.stdout.write(f"table {table} {'created' if created else 'already exists'}, TTL on attribute ttl\n")
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mcstatbot-bot", description="mcstatbot bot service")
    parser.add_argument(
        "command",
        nargs="?",
        default="serve",
        choices=["serve", "check-telegram", "set-webhook", "create-table"],
    )
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve()
        return
    if args.command == "check-telegram":
        settings = load_settings(BotSettings, "mcstatbot-bot")
        configure_logging(settings.log_level, settings.log_format, service="bot")
        sys.stdout.write(_check_or_exit(settings) + "\n")
        return
    if args.command == "set-webhook":
        settings = load_settings(BotSettings, "mcstatbot-bot")
        configure_logging(settings.log_level, settings.log_format, service="bot")
        raise SystemExit(asyncio.run(_set_webhook(settings)))
    table_settings = _TableSettings()
    configure_logging(table_settings.log_level, table_settings.log_format, service="bot")
    raise SystemExit(asyncio.run(_create_table(table_settings.dynamodb_table)))


if __name__ == "__main__":
    main()
