"""The bot's commands, buttons and inline mode (python-telegram-bot handlers).

/start, /help, /about, /status <host[:port]> [java|bedrock], /players <host[:port]> [java|bedrock],
/settings, /language; `@bot host[:port]` in any chat (inline mode). /status and /players alone use the
chat's default server (/settings), else its last server. Every server reply carries Status / Players /
About buttons that name the server, so a press edits THAT message (also an inline one) for THAT server,
whenever it happens; a refresh that would change nothing answers the press with a short notice instead.
Every handler first picks the language (`_speak`): the chat's choice, else the user's Telegram language.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mcstatbot_common.addresses import InvalidAddressError, parse_address
from mcstatbot_common.models import Edition
from telegram import (
    CallbackQuery,
    InlineQueryResultArticle,
    InputTextMessageContent,
    LinkPreviewOptions,
    Message,
    Update,
)
from telegram.constants import ChatAction, ParseMode
from telegram.error import BadRequest, TelegramError
from telegram.ext import CallbackQueryHandler, CommandHandler, ContextTypes, InlineQueryHandler

from mcstatbot_bot import buttons, formatting, i18n, metrics
from mcstatbot_bot.flood import FloodControl, Verdict
from mcstatbot_bot.formatting import Problem
from mcstatbot_bot.permissions import may_change_chat
from mcstatbot_bot.query_client import QueryClient, QueryRejected, QueryUnavailable
from mcstatbot_bot.state import ChatSettings, ResilientStore, ServerRef
from mcstatbot_bot.state.recent import remember
from mcstatbot_bot.state.resilient import StoreFailedError
from mcstatbot_bot.state.watches import chat_watches
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
BOT_COMMANDS = tuple(name for name, _ in formatting.COMMAND_DESCRIPTIONS)
INLINE_HELP_CACHE_SECONDS = 30
"""cache_time of the inline help result (an empty or invalid query); a status result is cached for the
answer's own max-age, never longer than the query service's status TTL."""
CLEAR_WORDS = frozenset({"off", "none", "clear", "-"})


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
    retrieved_at: datetime | None = None
    """When the query service checked the server (a fresh answer only): the age in a refresh notice."""
    max_age: int | None = None
    """How long the query service keeps that answer (`Cache-Control: max-age`): "next check in"."""


class ArgumentError(ValueError):
    """What the user typed after the command is not an address; the message says why, in the reader's
    language (raised while an update is handled)."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(reason)
        self.text = text

    def reply(self) -> str:
        return formatting.invalid_address(self.text, str(self), translated=True)


def server_from_args(args: list[str]) -> ServerRef | None:
    """`host[:port] [java|bedrock|auto]` -> ServerRef; None when no argument was given."""
    if not args:
        return None
    edition = Edition.AUTO
    if len(args) == 2 and args[1].lower() in {e.value for e in Edition}:  # noqa: PLR2004
        edition = Edition(args[1].lower())
    elif len(args) > 1:
        raise ArgumentError(" ".join(args), i18n._(formatting.REASON_SPACES))
    try:
        address = parse_address(args[0])
    except InvalidAddressError as exc:
        raise ArgumentError(args[0], formatting.address_reason(exc)) from None
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
        application.add_handler(
            CallbackQueryHandler(self.language_button, pattern=_prefix(buttons.LANGUAGE_PREFIX))
        )
        application.add_handler(
            CallbackQueryHandler(self.settings_button, pattern=_prefix(buttons.SETTINGS_PREFIX))
        )
        application.add_handler(CallbackQueryHandler(self.button))
        application.add_handler(InlineQueryHandler(self.inline_query))
        application.add_handler(CommandHandler("players", self.players))
        application.add_handler(CommandHandler("start", self.start))
        application.add_handler(CommandHandler("help", self.help))
        application.add_handler(CommandHandler("about", self.about))
        application.add_handler(CommandHandler("settings", self.settings))
        application.add_handler(CommandHandler("language", self.language))
        application.add_error_handler(self.on_error)

    # ------------------------------------------------------------------ language
    async def _speak(self, update: Update) -> ChatSettings | None:
        return await speak(self.store, update)

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
        await self._speak(update)
        user = update.effective_user
        text = formatting.start_text(user.first_name if user else None, context.bot.username)
        await self._send(context, update.effective_chat.id, text)

    async def help(self, update: Update, context: Context) -> None:
        metrics.COMMANDS.labels("help").inc()
        if update.effective_chat is not None:
            await self._speak(update)
            await self._send(context, update.effective_chat.id, formatting.help_text(context.bot.username))

    async def about(self, update: Update, context: Context) -> None:
        metrics.COMMANDS.labels("about").inc()
        if update.effective_chat is not None:
            await self._speak(update)
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
        settings = await self._speak(update)
        command = buttons.ACTION_NAMES[action]
        try:
            server = server_from_args(list(context.args or []))
        except ArgumentError as exc:
            await self._send(context, chat.id, exc.reply())
            return
        if server is None and settings is not None:
            server = settings.default_server
        if server is None:
            state = await self.store.get_chat(chat.id)
            if state is None:
                await self._send(
                    context, chat.id, formatting.problem(Problem.MISSING_ARGUMENT, command=command)
                )
                return
            server = state.server
        await self.send_card(context, chat.id, server, action)

    async def send_card(
        self,
        context: Context,
        chat_id: int,
        server: ServerRef,
        action: buttons.Action = buttons.Action.STATUS,
    ) -> None:
        """`action`'s card for `server` as a new message (flood control first), with its buttons."""
        verdict = self.flood.check(chat_id)
        if verdict is not Verdict.ALLOWED:
            if verdict is Verdict.LIMITED_NOTIFY:
                await self._send(context, chat_id, self._slow_down_text())
            return
        async with typing_indicator(context.bot, chat_id, self.typing_delay):
            rendered = await self.render(action, server)
        markup, ref = buttons.keyboard(server, history=await self.watches(chat_id, server))
        if ref is not None:
            await self.store.put_ref(ref, server)
        # before replying: a "/status" sent right after the answer must find this server
        await self._store_answer(chat_id, server, rendered)
        await self._send(context, chat_id, rendered.text, markup)

    def _slow_down_text(self) -> str:
        return formatting.slow_down(self.flood.max_probes, self.flood.window)

    async def _store_answer(self, chat_id: int | None, server: ServerRef, rendered: Rendered) -> None:
        """A fresh status becomes the server's stored answer; the chat remembers the server (with the
        last status known for it), in as few state-store calls as the answer allows; the server joins
        the chat's recent ones (/servers)."""
        if rendered.remember and chat_id is not None:
            await remember(self.store, chat_id, server)
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
            answer = await self.query.status_answer(server.address, server.edition)
        except QueryRejected as exc:
            return Rendered(self.rejected_text(exc, server))
        except QueryUnavailable:
            return await self._from_store(
                server, lambda stored: formatting.status_card(stored.status, stored_at=stored.stored_at)
            )
        status = answer.value
        return Rendered(
            formatting.status_card(status),
            remember=True,
            fresh=status,
            retrieved_at=status.retrieved_at,
            max_age=answer.max_age,
        )

    async def _players_text(self, server: ServerRef) -> Rendered:
        try:
            answer = await self.query.players_answer(server.address, server.edition)
        except QueryRejected as exc:
            return Rendered(self.rejected_text(exc, server))
        except QueryUnavailable:
            return await self._from_store(
                server,
                lambda stored: formatting.players_card(
                    formatting.players_from_status(stored.status), stored_at=stored.stored_at
                ),
            )
        players = answer.value
        return Rendered(
            formatting.players_card(players),
            remember=True,
            look_up=True,
            retrieved_at=players.retrieved_at,
            max_age=answer.max_age,
        )

    async def _from_store(self, server: ServerRef, card: Callable[[StoredServer], str]) -> Rendered:
        """The query service is unavailable: `card` of the last stored answer (it shows its age), else a
        friendly "temporarily unavailable"."""
        stored = await self.store.get_server(server)
        if stored is None:
            metrics.FALLBACK_REPLIES.labels("unavailable").inc()
            return Rendered(formatting.unavailable(server))
        metrics.FALLBACK_REPLIES.labels("stored").inc()
        # no retrieved_at: an unchanged fallback card gets no "up to date" notice (the service is down)
        return Rendered(card(stored), remember=True, known=stored.status)

    @staticmethod
    def rejected_text(exc: QueryRejected, server: ServerRef) -> str:
        if exc.code == "forbidden_address":
            return formatting.problem(Problem.FORBIDDEN_ADDRESS, address=server.address)
        detail = exc.message.rstrip(".")
        if not detail:
            return formatting.invalid_address(
                server.address, i18n._(formatting.REASON_NOT_ACCEPTED), translated=True
            )
        return formatting.invalid_address(server.address, detail, translated=False)

    # ------------------------------------------------------------------ buttons
    async def button(self, update: Update, _context: Context) -> None:
        query = update.callback_query
        if query is None:
            return
        answered = False
        try:
            await self._speak(update)
            resolved = await self._resolve(query)
            if resolved is None:
                answered = True
                return
            press, server = resolved
            metrics.CALLBACKS.labels(buttons.ACTION_NAMES[press.action]).inc()
            chat_id = update.effective_chat.id if update.effective_chat else None
            # an inline message has no chat: its presses count against the user who presses
            flood_key = chat_id if chat_id is not None else query.from_user.id
            limited = (
                press.action is not buttons.Action.ABOUT
                and self.flood.check(flood_key) is not Verdict.ALLOWED
            )
            if limited:
                await _answer(query, formatting.plain(self._slow_down_text()))
                answered = True
                return
            answered = await self._edit(query, press.action, server, chat_id)
        finally:
            if not answered:
                with contextlib.suppress(TelegramError):
                    await query.answer()

    async def watches(self, chat_id: int | None, server: ServerRef) -> bool:
        """Whether chat `chat_id` watches `server`: its card then has a History button (False when the
        store cannot say, or for an inline message, which has no chat)."""
        if chat_id is None:
            return False
        try:
            return any(watch.server == server for watch in await chat_watches(self.store, chat_id))
        except StoreFailedError:
            return False

    async def resolve(self, query: CallbackQuery) -> tuple[buttons.Press, ServerRef] | None:
        """`_resolve`, for the other modules' buttons."""
        return await self._resolve(query)

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
    ) -> bool:
        """Render `action` and edit the pressed message with it, or, when that would change nothing,
        answer the press with "up to date, checked N s ago, next check in M s" and edit nothing.
        Returns whether the callback query was answered."""
        rendered = await self.render(action, server)
        markup, ref = buttons.keyboard(server, history=await self.watches(chat_id, server))
        if ref is not None:
            await self.store.put_ref(ref, server)
        await self._store_answer(chat_id, server, rendered)
        message = query.message
        if isinstance(message, Message) and _shows(message, rendered.text, markup):
            await _answer(query, _notice(rendered))
            return True
        if not await edit_pressed(query, rendered.text, markup):
            # the message showed it after all (an inline message, whose text the bot is not sent)
            await _answer(query, _notice(rendered))
            return True
        await _answer(query)
        return True

    # ------------------------------------------------------------------ /language and /settings
    async def language(self, update: Update, context: Context) -> None:
        metrics.COMMANDS.labels("language").inc()
        chat = update.effective_chat
        if chat is None:
            return
        await self._speak(update)
        if not await may_change_chat(update, context.bot):
            await self._send(context, chat.id, formatting.admins_only())
            return
        await self._send(context, chat.id, formatting.language_prompt(), buttons.language_keyboard())

    async def language_button(self, update: Update, context: Context) -> None:
        """A /language button: the chat's language is set, and the message says so in it (edited)."""
        query = update.callback_query
        if query is None:
            return
        answered = False
        try:
            settings = await self._speak(update) or ChatSettings()
            chosen = i18n.known((query.data or "").removeprefix(buttons.LANGUAGE_PREFIX))
            chat = update.effective_chat
            metrics.CALLBACKS.labels("language").inc()
            if chosen is None or chat is None:
                await _answer(query, formatting.problem_plain(Problem.BUTTON_EXPIRED), show_alert=True)
                answered = True
                return
            if not await may_change_chat(update, context.bot):
                await _answer(query, formatting.plain(formatting.admins_only()), show_alert=True)
                answered = True
                return
            await self.store.save_settings(chat.id, replace(settings, language=chosen))
            i18n.use(chosen)
            await _answer(query)
            answered = True
            await self._edit_in_place(query, formatting.language_set(), buttons.language_keyboard())
        finally:
            if not answered:
                with contextlib.suppress(TelegramError):
                    await query.answer()

    async def settings(self, update: Update, context: Context) -> None:
        """/settings (show), /settings server host[:port] [edition], /settings server off."""
        metrics.COMMANDS.labels("settings").inc()
        chat = update.effective_chat
        if chat is None:
            return
        settings = await self._speak(update) or ChatSettings()
        args = list(context.args or [])
        if not args:
            await self._send(context, chat.id, *self._settings_view(settings))
            return
        if args[0].lower() != "server" or len(args) == 1:
            await self._send(context, chat.id, formatting.settings_usage())
            return
        await self._send(context, chat.id, await self._set_default(update, context, settings, args[1:]))

    async def _set_default(
        self, update: Update, context: Context, settings: ChatSettings, args: list[str]
    ) -> str:
        """`/settings server ARGS`: the chat's default server set (or removed); the reply's text."""
        chat = update.effective_chat
        if chat is None or not await may_change_chat(update, context.bot):
            return formatting.admins_only()
        if len(args) == 1 and args[0].lower() in CLEAR_WORDS:
            await self.store.save_settings(chat.id, replace(settings, default_server=None))
            return formatting.default_server_cleared()
        try:
            server = server_from_args(args)
        except ArgumentError as exc:
            return exc.reply()
        if server is None:  # pragma: no cover - args is not empty here
            return formatting.settings_usage()
        await self.store.save_settings(chat.id, replace(settings, default_server=server))
        return formatting.default_server_set(server)

    @staticmethod
    def _settings_view(settings: ChatSettings) -> tuple[str, InlineKeyboardMarkup]:
        text = formatting.settings_text(
            settings.default_server, chosen_language=i18n.known(settings.language) is not None
        )
        return text, buttons.settings_keyboard(has_default=settings.default_server is not None)

    async def settings_button(self, update: Update, context: Context) -> None:
        """A /settings button: `language` opens the language choice, `clear` removes the default server."""
        query = update.callback_query
        if query is None:
            return
        answered = False
        try:
            settings = await self._speak(update) or ChatSettings()
            which = (query.data or "").removeprefix(buttons.SETTINGS_PREFIX)
            chat = update.effective_chat
            metrics.CALLBACKS.labels("settings").inc()
            if which == "language":
                await _answer(query)
                answered = True
                await self._edit_in_place(query, formatting.language_prompt(), buttons.language_keyboard())
                return
            if which != "clear" or chat is None:
                await _answer(query, formatting.problem_plain(Problem.BUTTON_EXPIRED), show_alert=True)
                answered = True
                return
            if not await may_change_chat(update, context.bot):
                await _answer(query, formatting.plain(formatting.admins_only()), show_alert=True)
                answered = True
                return
            settings = replace(settings, default_server=None)
            await self.store.save_settings(chat.id, settings)
            await _answer(query, formatting.plain(formatting.default_server_cleared()))
            answered = True
            await self._edit_in_place(query, *self._settings_view(settings))
        finally:
            if not answered:
                with contextlib.suppress(TelegramError):
                    await query.answer()

    @staticmethod
    async def _edit_in_place(query: CallbackQuery, text: str, markup: InlineKeyboardMarkup) -> None:
        if query.message is not None:
            await edit_pressed(query, text, markup)

    # ------------------------------------------------------------------ inline mode
    async def inline_query(self, update: Update, context: Context) -> None:
        """`@bot host[:port] [edition]`: one result, the status card with its buttons; anything else (an
        empty or invalid query, a user over the flood limit) one short help result, never an error."""
        query = update.inline_query
        if query is None:
            return
        await self._speak(update)
        bot_name = context.bot.username
        try:
            server = server_from_args(query.query.split())
        except ArgumentError:
            await query.answer(
                [_help_result(bot_name, invalid=True)], cache_time=INLINE_HELP_CACHE_SECONDS, is_personal=True
            )
            return
        if server is None or self.flood.check(query.from_user.id) is not Verdict.ALLOWED:
            await query.answer(
                [_help_result(bot_name, invalid=False)],
                cache_time=INLINE_HELP_CACHE_SECONDS,
                is_personal=True,
            )
            return
        rendered = await self.render(buttons.Action.STATUS, server)
        markup, ref = buttons.keyboard(server)
        if ref is not None:
            await self.store.put_ref(ref, server)
        await self._store_answer(None, server, rendered)
        status = rendered.fresh or rendered.known
        title = formatting.inline_status_title(status) if status else server.address
        description = (
            formatting.inline_status_description(status) if status else formatting.plain(rendered.text)
        )
        result = InlineQueryResultArticle(
            id=_result_id(server),
            title=title,
            description=description,
            input_message_content=InputTextMessageContent(
                rendered.text, parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW
            ),
            reply_markup=markup,
        )
        # never cached longer than the query service keeps the answer (at most its status TTL)
        await query.answer([result], cache_time=max(0, rendered.max_age or 0), is_personal=True)

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


async def speak(store: ResilientStore, update: Update) -> ChatSettings | None:
    """Pick the language for handling `update` (every handler calls this first, also in other modules
    of the bot): the chat's (/language), else the user's Telegram `language_code`, else English.
    Returns the chat's settings (None: nothing set, or no chat)."""
    chat, user = update.effective_chat, update.effective_user
    settings = await store.get_settings(chat.id) if chat is not None else None
    chosen = i18n.known(settings.language) if settings is not None else None
    i18n.use(chosen or i18n.language_for(user.language_code if user else None))
    return settings


async def chat_language(store: ResilientStore, chat_id: int) -> str:
    """The language of a message the bot sends to `chat_id` on its own (no update: a notification):
    the chat's choice, else English (without an update there is no user's `language_code`)."""
    settings = await store.get_settings(chat_id)
    return i18n.known(settings.language if settings else None) or i18n.DEFAULT


async def speak_to_chat(store: ResilientStore, chat_id: int) -> None:
    """Pick the chat's language (`chat_language`) for the rest of this task. A task that renders for
    several chats in turn takes `chat_language` and renders each inside `i18n.speaking`."""
    i18n.use(await chat_language(store, chat_id))


def _prefix(prefix: str) -> str:
    """The CallbackQueryHandler pattern for callback_data starting with `prefix`."""
    return "^" + re.escape(prefix)


async def edit_pressed(query: CallbackQuery, text: str, markup: InlineKeyboardMarkup | None) -> bool:
    """Edit the message whose button was pressed to `text` with `markup`: a chat's message by chat and
    message id, a message sent in inline mode (no chat) by its own id. False when Telegram says it shows
    that already ("message is not modified"); any other refusal is raised."""
    message = query.message
    # by chat and message id, not `query.edit_message_text`: that refuses (TypeError) to edit a message
    # Telegram sends as inaccessible (date 0); Telegram says whether it can be edited
    where: dict[str, Any] = (
        {"chat_id": message.chat.id, "message_id": message.message_id}
        if message is not None
        else {"inline_message_id": query.inline_message_id}
    )
    if message is None and query.inline_message_id is None:
        return True  # nothing to edit (Telegram sends one or the other)
    try:
        await query.get_bot().edit_message_text(
            text, parse_mode=ParseMode.HTML, reply_markup=markup, link_preview_options=NO_PREVIEW, **where
        )
    except BadRequest as exc:
        if not is_not_modified(exc):
            raise
        return False
    return True


def shows(message: Message, text: str, markup: InlineKeyboardMarkup) -> bool:
    """`_shows`, for the other modules' buttons."""
    return _shows(message, text, markup)


async def answer_press(query: CallbackQuery, text: str | None = None, *, show_alert: bool = False) -> None:
    """`_answer`, for the other modules' buttons."""
    await _answer(query, text, show_alert=show_alert)


def _shows(message: Message, text: str, markup: InlineKeyboardMarkup) -> bool:
    """Does `message` already show `text` with `markup`? Telegram sends a message's text as shown (the
    HTML parsed: tags gone, entities decoded), so both that and the HTML as sent count."""
    if message.text is None:
        return False
    shown = message.text.strip()
    if shown not in {text.strip(), formatting.strip_tags(text).strip()}:
        return False
    current = message.reply_markup.to_dict() if message.reply_markup is not None else None
    return current == markup.to_dict()


def _notice(rendered: Rendered) -> str | None:
    """The callback answer for a refresh that changes nothing: the answer's age and when the query
    service checks again (its max-age); none for a text that is no fresh answer (a refusal, a fallback)."""
    if rendered.retrieved_at is None:
        return None
    age = (datetime.now(UTC) - rendered.retrieved_at).total_seconds()
    return formatting.up_to_date(age, rendered.max_age)


def _result_id(server: ServerRef) -> str:
    """An inline result id (at most 64 bytes): the same server gets the same id, in every language."""
    return hashlib.sha256(f"{i18n.current()}|{server.key}".encode()).hexdigest()[:32]


def _help_result(bot_username: str, *, invalid: bool) -> InlineQueryResultArticle:
    title = formatting.inline_invalid_title() if invalid else formatting.inline_help_title()
    return InlineQueryResultArticle(
        id="help-invalid" if invalid else "help",
        title=title,
        description=formatting.inline_help_description(),
        input_message_content=InputTextMessageContent(
            formatting.inline_help_text(bot_username),
            parse_mode=ParseMode.HTML,
            link_preview_options=NO_PREVIEW,
        ),
    )


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
