"""/servers: one message with every server this chat watches or asked about recently, one line each
(online or offline, players, latency), a button per server that sends its status card, and `Refresh`,
which edits the message in place (or, when nothing changed, answers like the Status button: "up to date,
checked N s ago, next check in M s").

Callback data: `v1|d|<edition>|<address>` (or `v1|d|#<ref>`) opens a server's card, `v1|d|refresh`
refreshes. The servers: the chat's watches (`state.watches`) first, then its recent ones
(`state.recent`, recorded by /status and /players), at most MAX_SERVERS, each asked about at the query
service (its cache answers most) at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import CallbackQueryHandler, CommandHandler

from mcstatbot_bot import buttons, formatting, handlers, metrics
from mcstatbot_bot.formatting import MAX_ECHO, user_text
from mcstatbot_bot.i18n import _, number
from mcstatbot_bot.query_client import Answer, QueryClient, QueryRejected, QueryUnavailable
from mcstatbot_bot.state.recent import recent_servers
from mcstatbot_bot.state.watches import chat_watches

if TYPE_CHECKING:
    from mcstatbot_common.models import ServerStatus
    from telegram import CallbackQuery, Update
    from telegram.ext import Application, ContextTypes

    from mcstatbot_bot.state import ResilientStore, ServerRef

    Context = ContextTypes.DEFAULT_TYPE

PREFIX = f"{buttons.VERSION}|d|"
REFRESH = f"{PREFIX}refresh"
MAX_SERVERS = 10
MAX_LABEL = 40


# ---------------------------------------------------------------------- texts
def empty_text() -> str:
    return _(
        "📋 This chat has no servers yet. Ask about one with <code>/status host[:port]</code> or watch one "
        "with <code>/watch host[:port]</code>."
    )


def dashboard_text(lines: list[str]) -> str:
    return _("📋 <b>This chat's servers</b>") + "\n" + "\n".join(lines)


def server_line(server: ServerRef, status: ServerStatus | None) -> str:
    address = f"<code>{user_text(server.address, MAX_ECHO)}</code>"
    if status is None:
        return _("⚪ {address} · no answer right now").format(address=address)
    placeholder = status.error is not None and status.error.code.value == "placeholder"
    if not status.online or placeholder:
        return _("🔴 {address} · offline").format(address=address)
    parts = [_("🟢 {address} · online").format(address=address)]
    if status.players is not None:
        parts.append(f"👥 {number(status.players.online)}/{number(status.players.max)}")
    parts.append(formatting.latency_badge(status.latency_ms))
    return " · ".join(parts)


def refresh_label() -> str:
    return _("Refresh")


# ---------------------------------------------------------------------- the handlers
class Dashboard:
    def __init__(self, bot_handlers: handlers.BotHandlers) -> None:
        self.handlers = bot_handlers
        self.query: QueryClient = bot_handlers.query
        self.store: ResilientStore = bot_handlers.store

    def register(self, application: Application[Any, Any, Any, Any, Any, Any]) -> None:
        application.add_handler(CommandHandler("servers", self.servers))
        # registered before BotHandlers: the card buttons' handler takes every callback it gets
        application.add_handler(CallbackQueryHandler(self.button, pattern="^" + re.escape(PREFIX)))

    async def _servers(self, chat_id: int) -> list[ServerRef]:
        seen: dict[str, ServerRef] = {}
        for watch in await chat_watches(self.store, chat_id):
            seen.setdefault(watch.server.key, watch.server)
        for server in await recent_servers(self.store, chat_id):
            seen.setdefault(server.key, server)
        return list(seen.values())[:MAX_SERVERS]

    async def _answer(self, server: ServerRef) -> Answer[ServerStatus] | None:
        try:
            return await self.query.status_answer(server.address, server.edition)
        except (QueryUnavailable, QueryRejected):
            return None

    async def render(
        self, chat_id: int
    ) -> tuple[str, InlineKeyboardMarkup | None, list[Answer[ServerStatus]]]:
        """The dashboard's text and keyboard, and the answers behind it (for the "up to date" notice)."""
        servers = await self._servers(chat_id)
        if not servers:
            return empty_text(), None, []
        answers = await asyncio.gather(*(self._answer(server) for server in servers))
        lines = [
            server_line(server, answer.value if answer is not None else None)
            for server, answer in zip(servers, answers, strict=True)
        ]
        rows = []
        for server in servers:
            data, ref = buttons.encode(buttons.Action.STATUS, server)
            if ref is not None:
                await self.store.put_ref(ref, server)
            label = formatting.neutralise(server.address)
            label = label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…"
            rows.append([InlineKeyboardButton(label, callback_data=PREFIX + data.split("|", 2)[2])])
        rows.append([InlineKeyboardButton(refresh_label(), callback_data=REFRESH)])
        return dashboard_text(lines), InlineKeyboardMarkup(rows), [a for a in answers if a is not None]

    async def servers(self, update: Update, context: Context) -> None:
        metrics.COMMANDS.labels("servers").inc()
        chat = update.effective_chat
        if chat is None:
            return
        await handlers.speak(self.store, update)
        text, markup, _answers = await self.render(chat.id)
        await context.bot.send_message(
            chat.id,
            text,
            parse_mode=ParseMode.HTML,
            reply_markup=markup,
            link_preview_options=handlers.NO_PREVIEW,
        )

    async def button(self, update: Update, context: Context) -> None:
        query = update.callback_query
        if query is None:
            return
        answered = False
        try:
            await handlers.speak(self.store, update)
            chat_id = update.effective_chat.id if update.effective_chat else None
            if chat_id is None:
                return
            if query.data == REFRESH:
                metrics.CALLBACKS.labels("servers_refresh").inc()
                answered = await self._refresh(query, chat_id)
            else:
                metrics.CALLBACKS.labels("servers_open").inc()
                answered = await self._open(query, context, chat_id)
        finally:
            if not answered:
                with contextlib.suppress(TelegramError):
                    await query.answer()

    async def _refresh(self, query: CallbackQuery, chat_id: int) -> bool:
        text, markup, answers = await self.render(chat_id)
        message = query.message
        if isinstance(message, Message) and markup is not None and handlers.shows(message, text, markup):
            await handlers.answer_press(query, _notice(answers))
            return True
        if not isinstance(message, Message):
            return False
        if not await handlers.edit_pressed(query, text, markup):
            await handlers.answer_press(query, _notice(answers))
            return True
        await handlers.answer_press(query)
        return True

    async def _open(self, query: CallbackQuery, context: Context, chat_id: int) -> bool:
        """The server's status card, as a new message (the dashboard stays)."""
        rest = (query.data or "").removeprefix(PREFIX)
        try:
            press = buttons.decode(f"{buttons.VERSION}|{buttons.Action.STATUS.value}|{rest}")
        except buttons.InvalidCallbackError:
            press = None
        server = press.server if press is not None else None
        if press is not None and server is None and press.ref is not None:
            server = await self.store.get_ref(press.ref)
        if server is None:
            await handlers.answer_press(
                query, formatting.problem_plain(formatting.Problem.BUTTON_EXPIRED), show_alert=True
            )
            return True
        await self.handlers.send_card(context, chat_id, server)
        await handlers.answer_press(query)
        return True


def _notice(answers: list[Answer[ServerStatus]]) -> str | None:
    """ "Up to date": the oldest answer's age, and the soonest next check of any."""
    if not answers:
        return None
    oldest = min(a.value.retrieved_at for a in answers)
    ages = [a.max_age for a in answers if a.max_age is not None]
    age = (datetime.now(UTC) - oldest).total_seconds()
    return formatting.up_to_date(age, min(ages) if ages else None)
