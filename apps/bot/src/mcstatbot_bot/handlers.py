"""The bot's commands and buttons (python-telegram-bot handlers).

/start, /help, /about, /status <host[:port]> [java|bedrock], /players <host[:port]> [java|bedrock];
/status and /players alone use the chat's last server. Every server reply carries Status / Players /
About buttons that name the server, so a press edits THAT message for THAT server, whenever it happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mcstatbot_common.addresses import InvalidAddressError, parse_address
from mcstatbot_common.models import Edition
from telegram import CallbackQuery, LinkPreviewOptions, Update
from telegram.constants import ChatAction, ParseMode
from telegram.error import BadRequest, TelegramError
from telegram.ext import CallbackQueryHandler, CommandHandler, ContextTypes

from mcstatbot_bot import buttons, formatting, metrics
from mcstatbot_bot.flood import FloodControl, Verdict
from mcstatbot_bot.formatting import Problem
from mcstatbot_bot.query_client import QueryClient, QueryRejected, QueryUnavailable
from mcstatbot_bot.state import ResilientStore, ServerRef
from mcstatbot_bot.telegram_api import is_not_modified, is_permanent
from mcstatbot_bot.updates import mark_current_update_failed, mark_current_update_refused

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from mcstatbot_common.models import ServerStatus
    from telegram import Bot, InlineKeyboardMarkup
    from telegram.ext import Application

    from mcstatbot_bot.state import StoredServer

log = logging.getLogger(__name__)
Context = ContextTypes.DEFAULT_TYPE
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
TYPING_REFRESH_SECONDS = 4.5
TYPING_DELAY_SECONDS = 0.3
BOT_COMMANDS = [
    ("status", "Is a Minecraft server online? /status host[:port]"),
    ("players", "Who is playing? /players host[:port]"),
    ("help", "How to use this bot"),
    ("about", "What this bot is"),
    ("start", "Say hello"),
]


@dataclass(frozen=True, slots=True)
class Rendered:
    """A reply's text, and what the state store should keep of the answer behind it."""

    text: str
    remember: bool = False
    """The chat should remember this server (the answer is about it, not a refusal or an outage)."""
    fresh: ServerStatus | None = None
    """A status the query service just gave: the server's stored answer from now on (and the chat's)."""
    known: ServerStatus | None = None
    """The server's stored status, already read (a fallback answer): the chat keeps it."""
    look_up: bool = False
    """The chat keeps the server's stored status, which has not been read yet."""


class ArgumentError(ValueError):
    """What the user typed after the command is not an address (the message says why)."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(reason)
        self.text = text


def server_from_args(args: list[str]) -> ServerRef | None:
    """`host[:port] [java|bedrock|auto]` -> ServerRef; None when no argument was given."""
    if not args:
        return None
    edition = Edition.AUTO
    if len(args) == 2 and args[1].lower() in {e.value for e in Edition}:  # noqa: PLR2004
        edition = Edition(args[1].lower())
    elif len(args) > 1:
        raise ArgumentError(" ".join(args), "the address contains spaces")
    try:
        address = parse_address(args[0])
    except InvalidAddressError as exc:
        raise ArgumentError(args[0], str(exc)) from None
    return ServerRef(str(address), edition)


@contextlib.asynccontextmanager
async def typing_indicator(
    bot: Bot, chat_id: int, delay: float = TYPING_DELAY_SECONDS
) -> AsyncIterator[None]:
    """Show "typing…" while the block runs, from `delay` seconds on (an answer that is back sooner needs
    none, and the Bot API call it would cost is saved); a failing sendChatAction never breaks the reply."""

    async def keep_typing() -> None:
        while True:
            try:
                await bot.send_chat_action(chat_id, ChatAction.TYPING)
            except TelegramError as exc:
                log.debug("sendChatAction failed: %s", type(exc).__name__)
            await asyncio.sleep(TYPING_REFRESH_SECONDS)

    task: asyncio.Task[None] | None = None

    def start() -> None:
        nonlocal task
        task = asyncio.create_task(keep_typing())

    timer = None if delay <= 0 else asyncio.get_running_loop().call_later(delay, start)
    if timer is None:
        start()
    try:
        yield
    finally:
        if timer is not None:
            timer.cancel()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class BotHandlers:
    def __init__(
        self,
        query: QueryClient,
        store: ResilientStore,
        flood: FloodControl,
        *,
        typing_delay: float = TYPING_DELAY_SECONDS,
    ) -> None:
        self.query = query
        self.store = store
        self.flood = flood
        self.typing_delay = typing_delay

    def register(self, application: Application[Any, Any, Any, Any, Any, Any]) -> None:
        # PTB tries the handlers in this order: the frequent ones first
        application.add_handler(CommandHandler("status", self.status))
        application.add_handler(CallbackQueryHandler(self.button))
        application.add_handler(CommandHandler("players", self.players))
        application.add_handler(CommandHandler("start", self.start))
        application.add_handler(CommandHandler("help", self.help))
        application.add_handler(CommandHandler("about", self.about))
        application.add_error_handler(self.on_error)

    # ------------------------------------------------------------------ plain commands
    async def _send(
        self, context: Context, chat_id: int, text: str, markup: InlineKeyboardMarkup | None = None
    ) -> None:
        await context.bot.send_message(
            chat_id, text, parse_mode=ParseMode.HTML, reply_markup=markup, link_preview_options=NO_PREVIEW
        )

    async def start(self, update: Update, context: Context) -> None:
        metrics.COMMANDS.labels("start").inc()
        if update.effective_chat is None:
            return
        user = update.effective_user
        await self._send(
            context, update.effective_chat.id, formatting.start_text(user.first_name if user else None)
        )

    async def help(self, update: Update, context: Context) -> None:
        metrics.COMMANDS.labels("help").inc()
        if update.effective_chat is not None:
            await self._send(context, update.effective_chat.id, formatting.help_text())

    async def about(self, update: Update, context: Context) -> None:
        metrics.COMMANDS.labels("about").inc()
        if update.effective_chat is not None:
            await self._send(context, update.effective_chat.id, formatting.about_text())

    # ------------------------------------------------------------------ server commands
    async def status(self, update: Update, context: Context) -> None:
        metrics.COMMANDS.labels("status").inc()
        await self._server_command(update, context, buttons.Action.STATUS)

    async def players(self, update: Update, context: Context) -> None:
        metrics.COMMANDS.labels("players").inc()
        await self._server_command(update, context, buttons.Action.PLAYERS)

    async def _server_command(self, update: Update, context: Context, action: buttons.Action) -> None:
        chat = update.effective_chat
        if chat is None:
            return
        command = buttons.ACTION_NAMES[action]
        try:
            server = server_from_args(list(context.args or []))
        except ArgumentError as exc:
            await self._send(
                context,
                chat.id,
                formatting.problem(Problem.INVALID_ADDRESS, address=exc.text, detail=str(exc)),
            )
            return
        if server is None:
            state = await self.store.get_chat(chat.id)
            if state is None:
                await self._send(
                    context, chat.id, formatting.problem(Problem.MISSING_ARGUMENT, command=command)
                )
                return
            server = state.server
        verdict = self.flood.check(chat.id)
        if verdict is not Verdict.ALLOWED:
            if verdict is Verdict.LIMITED_NOTIFY:
                await self._send(context, chat.id, self._slow_down_text())
            return
        async with typing_indicator(context.bot, chat.id, self.typing_delay):
            rendered = await self.render(action, server)
        markup, ref = buttons.keyboard(server)
        if ref is not None:
            await self.store.put_ref(ref, server)
        # before replying: a "/status" sent right after the answer must find this server
        await self._store_answer(chat.id, server, rendered)
        await self._send(context, chat.id, rendered.text, markup)

    def _slow_down_text(self) -> str:
        window = f"{self.flood.window:g}"
        return formatting.problem(Problem.SLOW_DOWN, limit=self.flood.max_probes, window=window)

    async def _store_answer(self, chat_id: int | None, server: ServerRef, rendered: Rendered) -> None:
        """A fresh status becomes the server's stored answer; the chat remembers the server (with the
        last status known for it), in as few state-store calls as the answer allows."""
        if rendered.fresh is not None:
            if rendered.remember and chat_id is not None:
                await self.store.save_status(chat_id, server, rendered.fresh)
            else:
                await self.store.save_server(server, rendered.fresh)
            return
        if not rendered.remember or chat_id is None:
            return
        status = rendered.known
        if status is None and rendered.look_up:
            stored = await self.store.get_server(server)
            status = stored.status if stored else None
        await self.store.save_chat(chat_id, server, status)

    async def render(self, action: buttons.Action, server: ServerRef) -> Rendered:
        """The text for `action` on `server`, and what of it the state store should keep."""
        if action is buttons.Action.ABOUT:
            # what the server runs, from its last answer stored (no probe for an About press)
            stored = await self.store.get_server(server)
            return Rendered(formatting.about_text(server, stored.status if stored is not None else None))
        if action is buttons.Action.STATUS:
            return await self._status_text(server)
        return await self._players_text(server)

    async def _status_text(self, server: ServerRef) -> Rendered:
        try:
            status = await self.query.status(server.address, server.edition)
        except QueryRejected as exc:
            return Rendered(self._rejected_text(exc, server))
        except QueryUnavailable:
            return await self._from_store(
                server, lambda stored: formatting.status_card(stored.status, stored_at=stored.stored_at)
            )
        return Rendered(formatting.status_card(status), remember=True, fresh=status)

    async def _players_text(self, server: ServerRef) -> Rendered:
        try:
            players = await self.query.players(server.address, server.edition)
        except QueryRejected as exc:
            return Rendered(self._rejected_text(exc, server))
        except QueryUnavailable:
            return await self._from_store(
                server,
                lambda stored: formatting.players_card(
                    formatting.players_from_status(stored.status), stored_at=stored.stored_at
                ),
            )
        return Rendered(formatting.players_card(players), remember=True, look_up=True)

    async def _from_store(self, server: ServerRef, card: Callable[[StoredServer], str]) -> Rendered:
        """The query service is unavailable: `card` of the last stored answer (it shows its age), else a
        friendly "temporarily unavailable"."""
        stored = await self.store.get_server(server)
        if stored is None:
            metrics.FALLBACK_REPLIES.labels("unavailable").inc()
            return Rendered(formatting.unavailable(server))
        metrics.FALLBACK_REPLIES.labels("stored").inc()
        return Rendered(card(stored), remember=True, known=stored.status)

    @staticmethod
    def _rejected_text(exc: QueryRejected, server: ServerRef) -> str:
        if exc.code == "forbidden_address":
            return formatting.problem(Problem.FORBIDDEN_ADDRESS, address=server.address)
        detail = exc.message.rstrip(".") or "the status service did not accept it"
        return formatting.problem(Problem.INVALID_ADDRESS, address=server.address, detail=detail)

    # ------------------------------------------------------------------ buttons
    async def button(self, update: Update, _context: Context) -> None:
        query = update.callback_query
        if query is None:
            return
        answered = False
        try:
            resolved = await self._resolve(query)
            if resolved is None:
                answered = True
                return
            press, server = resolved
            metrics.CALLBACKS.labels(buttons.ACTION_NAMES[press.action]).inc()
            chat_id = update.effective_chat.id if update.effective_chat else None
            limited = (
                press.action is not buttons.Action.ABOUT
                and chat_id is not None
                and self.flood.check(chat_id) is not Verdict.ALLOWED
            )
            if limited:
                await _answer(query, formatting.plain(self._slow_down_text()))
                answered = True
                return
            await _answer(query)
            answered = True
            await self._edit(query, press.action, server, chat_id)
        finally:
            if not answered:
                with contextlib.suppress(TelegramError):
                    await query.answer()

    async def _resolve(self, query: CallbackQuery) -> tuple[buttons.Press, ServerRef] | None:
        """The press and its server; None (after telling the user) when the button is unknown or expired."""
        try:
            press = buttons.decode(query.data or "")
        except buttons.InvalidCallbackError:
            press = None
        server = press.server if press is not None else None
        if press is not None and server is None and press.ref is not None:
            server = await self.store.get_ref(press.ref)
        if press is None or server is None:
            metrics.CALLBACKS.labels("expired").inc()
            await _answer(query, formatting.problem_plain(Problem.BUTTON_EXPIRED), show_alert=True)
            return None
        return press, server

    async def _edit(
        self, query: CallbackQuery, action: buttons.Action, server: ServerRef, chat_id: int | None
    ) -> None:
        rendered = await self.render(action, server)
        markup, ref = buttons.keyboard(server)
        if ref is not None:
            await self.store.put_ref(ref, server)
        await self._store_answer(chat_id, server, rendered)
        message = query.message
        if message is None:  # an inline-mode message; the bot serves no inline mode
            return
        try:
            # by chat and message id, not `query.edit_message_text`: that refuses (TypeError) to edit a
            # message Telegram sends as inaccessible (date 0); Telegram itself says whether it can be edited
            await query.get_bot().edit_message_text(
                rendered.text,
                chat_id=message.chat.id,
                message_id=message.message_id,
                parse_mode=ParseMode.HTML,
                reply_markup=markup,
                link_preview_options=NO_PREVIEW,
            )
        except BadRequest as exc:
            if not is_not_modified(exc):
                raise

    # ------------------------------------------------------------------ errors
    async def on_error(self, update: object, context: Context) -> None:
        error = context.error
        metrics.ERRORS.labels("bot", type(error).__name__ if error else "unknown").inc()
        if is_permanent(error):  # a redelivery would be refused again: acknowledge it
            log.warning("the Bot API refused a call: %s", error)
            if isinstance(update, Update):
                mark_current_update_refused(str(error))
            return
        log.error("handling an update failed", exc_info=error)
        if isinstance(update, Update):
            mark_current_update_failed()


async def _answer(query: CallbackQuery, text: str | None = None, *, show_alert: bool = False) -> None:
    """answerCallbackQuery; a permanent refusal ("query is too old", the message is inaccessible) is
    noted on the update (it is acknowledged, not retried) and does not stop the edit that follows."""
    try:
        await query.answer(text, show_alert=show_alert)
    except TelegramError as exc:
        if not is_permanent(exc):
            raise
        log.warning("answerCallbackQuery was refused: %s", exc)
        mark_current_update_refused(str(exc))
