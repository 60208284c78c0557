"""The bot service's FastAPI app: PTB's Application in the lifespan, the webhook, health, ready, metrics."""

from __future__ import annotations

import contextlib
import gc
import hmac
import json
import logging
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from mcstatbot_common.asgi import BodySizeLimitMiddleware
from mcstatbot_common.observability import instrument_app
from telegram import BotCommand, Update
from telegram.error import TelegramError

from mcstatbot_bot import formatting, i18n, metrics
from mcstatbot_bot.breaker import BreakerState, CircuitBreaker
from mcstatbot_bot.clients import query_http_client
from mcstatbot_bot.dashboard import Dashboard
from mcstatbot_bot.flood import FloodControl
from mcstatbot_bot.handlers import BOT_COMMANDS, BotHandlers
from mcstatbot_bot.history_handlers import HistoryHandlers
from mcstatbot_bot.history_worker import ChartWorker
from mcstatbot_bot.probes import add_probe_routes
from mcstatbot_bot.query_client import QueryClient
from mcstatbot_bot.state import build_store
from mcstatbot_bot.telegram_api import build_application
from mcstatbot_bot.updates import Outcome, UpdateRunner
from mcstatbot_bot.watching import WatchHandlers

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from mcstatbot_bot.settings import BotSettings
    from mcstatbot_bot.updates import BotApplication

log = logging.getLogger(__name__)


# The webhook's answer per outcome (Telegram reads only the status), encoded once.
_STATUS = {
    Outcome.HANDLED: HTTPStatus.OK,
    Outcome.DUPLICATE: HTTPStatus.OK,
    Outcome.BUSY: HTTPStatus.SERVICE_UNAVAILABLE,
    Outcome.FAILED: HTTPStatus.INTERNAL_SERVER_ERROR,
    Outcome.REFUSED: HTTPStatus.OK,  # the Bot API refused the reply for good: a redelivery cannot help
}
_ANSWERS = {
    outcome: (
        int(status),
        json.dumps({"ok": status is HTTPStatus.OK, "outcome": outcome.value}, separators=(",", ":")).encode(),
    )
    for outcome, status in _STATUS.items()
}
CLAIM_SETTLE_SECONDS = 3.0
"""At shutdown, how long the claims still being written may take before the store closes (the chart
leaves 5 s between the graceful-shutdown timeout and the kill)."""
ALLOWED_UPDATES = ["message", "callback_query", "inline_query"]
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name, not a secret


def _breaker_changed(state: BreakerState) -> None:
    metrics.BREAKER_STATE.set(int(state))
    metrics.BREAKER_TRANSITIONS.labels(state.name.lower().replace("_", "-")).inc()
    log.warning("query-service circuit breaker is now %s", state.name.lower())


async def register_webhook(application: BotApplication, settings: BotSettings) -> None:
    """setWebhook with WEBHOOK_URL and WEBHOOK_SECRET (raises TelegramError on failure)."""
    if not settings.webhook_url:
        raise ValueError("WEBHOOK_URL is not set")
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    await application.bot.set_webhook(
        settings.webhook_url, secret_token=secret, allowed_updates=ALLOWED_UPDATES, max_connections=40
    )


async def register_commands(application: BotApplication) -> None:
    """setMyCommands for every language (`language_code`), and the default (English) for the rest."""
    for language in i18n.LANGUAGES:
        i18n.use(language)
        menu = [BotCommand(name, description) for name, description in formatting.commands()]
        code = None if language == i18n.DEFAULT else language.split("_", 1)[0]
        # Telegram takes a two-letter ISO 639-1 code: `pt` for pt_BR (the bot's only Portuguese)
        try:
            await application.bot.set_my_commands(menu, language_code=code)
        except TelegramError as exc:
            log.warning("setMyCommands (%s) failed: %s", code or "default", exc)
    i18n.use(i18n.DEFAULT)


def create_app(settings: BotSettings) -> FastAPI:  # noqa: C901, PLR0915 - the app's wiring in one place
    webhook_mode = settings.bot_mode == "webhook"

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            store = build_store(settings)
            await store.open()
            stack.push_async_callback(store.close)
            http = query_http_client(settings.query_service_url, timeout=settings.query_timeout)
            stack.push_async_callback(http.aclose)
            breaker = CircuitBreaker(
                settings.breaker_failure_threshold, settings.breaker_reset_seconds, on_change=_breaker_changed
            )
            metrics.BREAKER_STATE.set(int(BreakerState.CLOSED))
            query = QueryClient(http, breaker, timeout=settings.query_timeout, retries=settings.query_retries)
            flood = FloodControl(settings.flood_max_probes, settings.flood_window_seconds)
            application = build_application(settings, webhook=webhook_mode)
            bot_handlers = BotHandlers(query, store, flood, typing_delay=settings.typing_delay_seconds)
            Dashboard(bot_handlers).register(application)  # first: its buttons before the cards' catch-all
            chart_worker = ChartWorker(timeout=settings.history_draw_timeout)
            stack.push_async_callback(chart_worker.close)
            HistoryHandlers(bot_handlers, chart_worker, max_per_chat=settings.watch_max_per_chat).register(
                application
            )  # also before the catch-all
            bot_handlers.register(application)
            WatchHandlers(
                query,
                store,
                max_per_chat=settings.watch_max_per_chat,
                live_interval=settings.live_interval_seconds,
            ).register(application)
            commands = frozenset(BOT_COMMANDS)
            runner = application.runner = UpdateRunner(store, settings.update_lease_seconds, commands)
            await application.initialize()
            stack.push_async_callback(application.shutdown)
            if settings.set_commands:
                await register_commands(application)
            if webhook_mode and settings.webhook_url:
                try:
                    await register_webhook(application, settings)
                except TelegramError as exc:
                    log.warning("setWebhook failed: %s", exc)
            # on the way out, once the application stopped: the claims of updates cancelled at the
            # graceful-shutdown timeout may still be being written; they must reach the store before it closes
            stack.push_async_callback(runner.settle, CLAIM_SETTLE_SECONDS)
            await application.start()
            stack.push_async_callback(application.stop)
            if not webhook_mode and application.updater is not None:
                await application.updater.start_polling(allowed_updates=ALLOWED_UPDATES, timeout=30)
                stack.push_async_callback(application.updater.stop)
            app.state.application = application
            app.state.store = store
            app.state.breaker = breaker
            app.state.ready = True
            # Everything made so far (modules, PTB, FastAPI, the SDKs) lives as long as the process: keep
            # it out of the garbage collector's full passes, which otherwise walk all of it and stall
            # every update in flight (docs/benchmarks.md, the bot section).
            gc.collect()
            gc.freeze()
            log.info("bot service started", extra={"mode": settings.bot_mode, "backend": store.backend})
            try:
                yield
            finally:
                app.state.ready = False
                log.info("bot service stopping")

    app = FastAPI(title="mcstatbot bot service", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings = settings
    instrument_app(app, "bot")

    add_probe_routes(
        app, lambda state: {"mode": settings.bot_mode, "query_breaker": state.breaker.state.name.lower()}
    )

    secret = settings.webhook_secret.get_secret_value().encode() if settings.webhook_secret else None

    def reject(status: int, detail: str) -> JSONResponse:
        metrics.UPDATES.labels("rejected").inc()
        return JSONResponse({"ok": False, "detail": detail}, status_code=status)

    def too_large(max_bytes: int) -> JSONResponse:
        return reject(413, f"body too large (at most {max_bytes} bytes)")

    limit = settings.max_webhook_body_bytes
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=limit, too_large=too_large)

    async def read_update(request: Request) -> dict[str, Any] | JSONResponse:
        """The JSON body as a dict with an int update_id, or the error answer (400); its size is bounded."""
        try:
            payload: Any = json.loads(await request.body())
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
            return reject(400, "malformed JSON")
        if not isinstance(payload, dict) or not isinstance(payload.get("update_id"), int):
            return reject(400, "not a Telegram update")
        return payload

    @app.post("/telegram/webhook")
    async def telegram_webhook(request: Request) -> Response:
        if secret is not None:
            given = request.headers.get(SECRET_HEADER, "").encode()
            if not hmac.compare_digest(given, secret):
                return reject(403, "bad secret token")
        payload = await read_update(request)
        if isinstance(payload, JSONResponse):
            return payload
        application: BotApplication | None = getattr(request.app.state, "application", None)
        if application is None or application.runner is None or not request.app.state.ready:
            return JSONResponse({"ok": False, "detail": "not ready"}, status_code=503)
        try:
            update = Update.de_json(payload, application.bot)
        except (AttributeError, KeyError, TypeError, ValueError, RecursionError):
            return reject(400, "not a Telegram update")
        outcome = await application.runner.run(update, application.process_update_directly)
        status, body = _ANSWERS[outcome]
        return Response(body, status_code=status, media_type="application/json")

    return app
