"""/history <host[:port]> [24h|7d|30d], the History button on status cards, and the Watch button under
"no history yet".

The address rules of /status apply: parsed locally, and a server the chat does not watch is asked about
once at the query service, whose refusal (forbidden or invalid) is answered with the /status message.
A server the chat watches gets its chart as a photo (PNG, drawn by the chart worker process), with the
window's uptime, most players and average latency in the caption; one it does not watch gets "no history
yet" with a button to watch it (the /watch rules: in groups only administrators). Charts count against
the chat's flood control like a /status.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from mcstatbot_common.addresses import InvalidAddressError, parse_address
from telegram import InputFile, LinkPreviewOptions, Message
from telegram.constants import ChatAction, ParseMode
from telegram.error import TelegramError
from telegram.ext import CallbackQueryHandler, CommandHandler

from mcstatbot_bot import buttons, formatting, history_texts, i18n, metrics, watch_texts
from mcstatbot_bot.flood import Verdict
from mcstatbot_bot.formatting import Problem
from mcstatbot_bot.handlers import BotHandlers, answer_press, speak
from mcstatbot_bot.history import Window, parse_window, summarise
from mcstatbot_bot.history_chart import ChartRequest
from mcstatbot_bot.history_worker import ChartFailedError
from mcstatbot_bot.permissions import may_change_chat
from mcstatbot_bot.query_client import QueryRejected, QueryUnavailable
from mcstatbot_bot.state import ServerRef
from mcstatbot_bot.state.resilient import StoreFailedError
from mcstatbot_bot.state.watches import AddResult, add_watch, chat_watches

if TYPE_CHECKING:
    from telegram import Bot, InlineKeyboardMarkup, Update
    from telegram.ext import Application, ContextTypes

    from mcstatbot_bot.history_worker import ChartWorker

    Context = ContextTypes.DEFAULT_TYPE

log = logging.getLogger(__name__)
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)


class HistoryHandlers:
    def __init__(self, bot_handlers: BotHandlers, worker: ChartWorker, *, max_per_chat: int) -> None:
        self.cards = bot_handlers
        self.store = bot_handlers.store
        self.query = bot_handlers.query
        self.flood = bot_handlers.flood
        self.worker = worker
        self.max_per_chat = max_per_chat

    def register(self, application: Application[Any, Any, Any, Any, Any, Any]) -> None:
        """Before BotHandlers.register: the History and Watch buttons before the cards' catch-all."""
        application.add_handler(CommandHandler("history", self.history))
        application.add_handler(CallbackQueryHandler(self.button, pattern=buttons.HISTORY_PATTERN))

    async def _send(
        self, bot: Bot, chat_id: int, text: str, markup: InlineKeyboardMarkup | None = None
    ) -> None:
        await bot.send_message(
            chat_id, text, parse_mode=ParseMode.HTML, reply_markup=markup, link_preview_options=NO_PREVIEW
        )

    # ------------------------------------------------------------------ /history
    async def history(self, update: Update, context: Context) -> None:
        metrics.COMMANDS.labels("history").inc()
        chat = update.effective_chat
        if chat is None:
            return
        await speak(self.store, update)
        args = list(context.args or [])
        window = parse_window(args[1] if len(args) == 2 else None)  # noqa: PLR2004
        if not args or len(args) > 2 or window is None:  # noqa: PLR2004
            await self._send(context.bot, chat.id, history_texts.usage())
            return
        try:
            server = ServerRef(str(parse_address(args[0])))
        except InvalidAddressError as exc:
            await self._send(context.bot, chat.id, formatting.refused_address(args[0], exc))
            return
        try:
            watched = any(watch.server == server for watch in await chat_watches(self.store, chat.id))
        except StoreFailedError:
            await self._send(context.bot, chat.id, history_texts.unavailable())
            return
        if not watched:
            await self._offer_watch(context.bot, chat.id, server)
            return
        if not await self._allowed(context.bot, chat.id):
            return
        await self.send_chart(context.bot, chat.id, server, window)

    async def _allowed(self, bot: Bot, chat_id: int) -> bool:
        verdict = self.flood.check(chat_id)
        if verdict is Verdict.LIMITED_NOTIFY:
            await self._send(bot, chat_id, formatting.slow_down(self.flood.max_probes, self.flood.window))
        return verdict is Verdict.ALLOWED

    async def _offer_watch(self, bot: Bot, chat_id: int, server: ServerRef) -> None:
        """Answer "no history yet" with a Watch button, or the /status answer for an address the query
        service refuses."""
        try:
            await self.query.status(server.address, server.edition)
        except QueryRejected as exc:
            await self._send(bot, chat_id, BotHandlers.rejected_text(exc, server))
            return
        except QueryUnavailable:
            pass  # the Watch press asks again
        markup, ref = buttons.watch_keyboard(server)
        if ref is not None:
            await self.store.put_ref(ref, server)
        await self._send(bot, chat_id, history_texts.no_history(server.address), markup)

    async def send_chart(self, bot: Bot, chat_id: int, server: ServerRef, window: Window) -> None:
        """The chart of `server` over `window` as a photo in `chat_id` (or what went wrong, as text)."""
        until = int(time.time())
        since = until - window.seconds
        try:
            samples = await self.store.samples(server, since, until)
        except StoreFailedError:
            await self._send(bot, chat_id, history_texts.unavailable())
            return
        request = ChartRequest(
            samples=[(s.at, s.online, s.players, s.max_players, s.latency_ms) for s in samples],
            since=since,
            until=until,
            locale=i18n.current(),
            title=history_texts.title(server.address, window),
            **history_texts.chart_labels(),
        )
        with contextlib.suppress(TelegramError):  # only a hint: the photo goes out without it
            await bot.send_chat_action(chat_id, ChatAction.UPLOAD_PHOTO)
        try:
            png = await self.worker.draw(request)
        except ChartFailedError:
            metrics.HISTORY_CHARTS.labels("failed").inc()
            await self._send(bot, chat_id, history_texts.draw_failed())
            return
        await bot.send_photo(
            chat_id,
            InputFile(png, filename="history.png"),
            caption=history_texts.caption(server.address, window, summarise(samples)),
            parse_mode=ParseMode.HTML,
        )
        metrics.HISTORY_CHARTS.labels("sent").inc()

    # ------------------------------------------------------------------ buttons
    async def button(self, update: Update, context: Context) -> None:
        query = update.callback_query
        if query is None:
            return
        await speak(self.store, update)
        resolved = await self.cards.resolve(query)
        if resolved is None:
            return
        press, server = resolved
        metrics.CALLBACKS.labels(buttons.ACTION_NAMES[press.action]).inc()
        message = query.message
        if not isinstance(message, Message):  # an inline message (no chat) or one Telegram no longer shows
            await answer_press(query, formatting.problem_plain(Problem.BUTTON_EXPIRED), show_alert=True)
            return
        chat_id = message.chat.id
        if press.action is buttons.Action.WATCH:
            await self._watch_press(update, context, chat_id, server)
            return
        if not await self.cards.watches(chat_id, server):
            await answer_press(query)
            await self._offer_watch(context.bot, chat_id, server)
            return
        if self.flood.check(chat_id) is not Verdict.ALLOWED:
            await answer_press(
                query, formatting.plain(formatting.slow_down(self.flood.max_probes, self.flood.window))
            )
            return
        await answer_press(query)
        await self.send_chart(context.bot, chat_id, server, Window.DAY)

    async def _watch_press(self, update: Update, context: Context, chat_id: int, server: ServerRef) -> None:
        """The /watch rules for the Watch button: admins only in groups, the query service asked once."""
        query = update.callback_query
        if query is None:
            return
        if not await may_change_chat(update, context.bot):
            await answer_press(query, formatting.plain(watch_texts.admins_only()), show_alert=True)
            return
        online: bool | None = None
        try:
            online = (await self.query.status(server.address, server.edition)).online
        except QueryRejected as exc:
            await answer_press(query)
            await self._send(context.bot, chat_id, BotHandlers.rejected_text(exc, server))
            return
        except QueryUnavailable:
            pass  # accepted, as /watch does
        result = await add_watch(self.store, chat_id, server, players=False, limit=self.max_per_chat)
        if result is AddResult.LIMIT:
            text = watch_texts.watch_limit(self.max_per_chat)
        elif result is AddResult.ADDED:
            text = watch_texts.watch_added(server.address, players=False, online=online)
        else:
            text = watch_texts.watch_unchanged(server.address)
        await answer_press(query)
        message = query.message
        if isinstance(message, Message):
            await context.bot.edit_message_text(
                text,
                chat_id=message.chat.id,
                message_id=message.message_id,
                parse_mode=ParseMode.HTML,
                link_preview_options=NO_PREVIEW,
            )
