"""`mcstatbot-bot` / `python -m mcstatbot_bot`: run the service, or a one-shot command.

    mcstatbot-bot                 the service (uvicorn; BOT_MODE polling or webhook)
    mcstatbot-bot set-webhook     register WEBHOOK_URL (with WEBHOOK_SECRET) with Telegram, then exit
    mcstatbot-bot create-table    create the DynamoDB table (DYNAMODB_TABLE) with TTL, then exit

Exit status 2 when the configuration is unusable (e.g. TELEGRAM_BOT_TOKEN missing).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import uvicorn
from mcstatbot_common.logging import UVICORN_LOG_CONFIG, configure_logging
from mcstatbot_common.observability import setup_tracing
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from mcstatbot_bot.settings import BotSettings

EXIT_CONFIG = 2


class _TableSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")
    dynamodb_table: str = Field(default="user_sessions")
    log_level: str = "INFO"
    log_format: str = "json"


def _load_settings() -> BotSettings:
    try:
        return BotSettings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]).upper() or "configuration"
            reason = "is required but not set" if error["type"] == "missing" else error["msg"]
            problems.append(f"  {name}: {reason}")
        sys.stderr.write("mcstatbot-bot: the configuration is not usable:\n" + "\n".join(problems) + "\n")
        if any(error["loc"] == ("telegram_bot_token",) for error in exc.errors()):
            sys.stderr.write("Set TELEGRAM_BOT_TOKEN to the token @BotFather gave you.\n")
        raise SystemExit(EXIT_CONFIG) from None


def serve() -> None:
    settings = _load_settings()
    configure_logging(settings.log_level, settings.log_format, service="bot")
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


async def _create_table(table: str) -> int:
    from mcstatbot_bot.state.dynamodb import create_table  # noqa: PLC0415

    created = await create_table(table)
    sys.stdout.write(f"table {table} {'created' if created else 'already exists'}, TTL on attribute ttl\n")
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mcstatbot-bot", description="mcstatbot bot service")
    parser.add_argument(
        "command", nargs="?", default="serve", choices=["serve", "set-webhook", "create-table"]
    )
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve()
        return
    if args.command == "set-webhook":
        settings = _load_settings()
        configure_logging(settings.log_level, settings.log_format, service="bot")
        raise SystemExit(asyncio.run(_set_webhook(settings)))
    table_settings = _TableSettings()
    configure_logging(table_settings.log_level, table_settings.log_format, service="bot")
    raise SystemExit(asyncio.run(_create_table(table_settings.dynamodb_table)))


if __name__ == "__main__":
    main()
