"""/watch, /unwatch, /watches and /live: what the watcher (mcstatbot_watcher) checks and alerts about.

`/watch <host[:port]> [players]` watches a server for this chat (with `players`, joins and leaves too);
`/unwatch <host[:port]>` stops; `/watches` lists the chat's watches with each server's state and since
when; `/live <host[:port]>` posts a status card the watcher keeps current (pinned in groups when the bot
may pin), `/live stop` stops the chat's cards. The address rules of /status apply: the address is parsed
the same way and asked about once at the query service, whose refusal (a forbidden or invalid address) is
answered with the /status message; a server offline at /watch time is accepted. In groups only
administrators may change watches and cards (`permissions.may_change_chat`). The records are state-store
documents (`state.watches`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from mcstatbot_common.addresses import InvalidAddressError, parse_address
from telegram import LinkPreviewOptions
from telegram.constants import ChatType, ParseMode
from telegram.error import TelegramError
from telegram.ext import CommandHandler

from mcstatbot_bot import formatting, handlers, i18n, metrics, watch_texts
from mcstatbot_bot.formatting import Problem
from mcstatbot_bot.permissions import may_change_chat
from mcstatbot_bot.query_client import QueryClient, QueryRejected, QueryUnavailable
from mcstatbot_bot.state import ResilientStore, ServerRef
from mcstatbot_bot.state.base import parse_iso
from mcstatbot_bot.state.watches import (
    AddResult,
    LiveCard,
    add_live,
    add_watch,
    chat_entries,
    chat_lives,
    chat_watches,
    check_key,
    remove_live,
    remove_watch,
)

if TYPE_CHECKING:
    from mcstatbot_common.models import ServerStatus
    from telegram import Update
    from telegram.ext import Application, ContextTypes

    Context = ContextTypes.DEFAULT_TYPE

log = logging.getLogger(__name__)
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)


class _Refused(Exception):  # noqa: N818 - the reply is in the message
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def _server(raw: str) -> ServerRef:
    try:
        return ServerRef(str(parse_address(raw)))
    except InvalidAddressError as exc:
        raise _Refused(formatting.refused_address(raw, exc)) from None


def _rejected(exc: QueryRejected, server: ServerRef) -> str:
    """The /status answer to an address the query service refused as invalid (its reason when it is
    in the reader's language)."""
    return handlers.BotHandlers.rejected_text(exc, server)


class WatchHandlers:
    def __init__(
        self, query: QueryClient, store: ResilientStore, *, max_per_chat: int, live_interval: float = 60.0
    ) -> None:
        self.query = query
        self.store = store
        self.max_per_chat = max_per_chat
        self.live_interval = live_interval

    def register(self, application: Application[Any, Any, Any, Any, Any, Any]) -> None:
        application.add_handler(CommandHandler("watch", self.watch))
        application.add_handler(CommandHandler("unwatch", self.unwatch))
        application.add_handler(CommandHandler("watches", self.watches))
        application.add_handler(CommandHandler("live", self.live))

    async def _send(self, context: Context, chat_id: int, text: str) -> None:
        await context.bot.send_message(
            chat_id, text, parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW
        )

    async def watch(self, update: Update, context: Context) -> None:
        metrics.COMMANDS.labels("watch").inc()
        chat = update.effective_chat
        if chat is None:
            return
        await handlers.speak(self.store, update)
        try:
            text = await self._watch(update, context, chat.id, list(context.args or []))
        except _Refused as refused:
            text = refused.text
        await self._send(context, chat.id, text)

    async def _watch(  # noqa: PLR0911 - one answer per outcome
        self, update: Update, context: Context, chat_id: int, args: list[str]
    ) -> str:
        players = len(args) == 2 and args[1].lower() == "players"  # noqa: PLR2004
        if not args or (len(args) > 1 and not players):
            return watch_texts.watch_usage()
        server = _server(args[0])
        if not await may_change_chat(update, context.bot):
            return watch_texts.admins_only()
        online: bool | None = None
        try:
            status = await self.query.status(server.address, server.edition)
            online = status.online
        except QueryRejected as exc:
            if exc.code == "forbidden_address":
                return formatting.problem(Problem.FORBIDDEN_ADDRESS, address=server.address)
            return _rejected(exc, server)
        except QueryUnavailable:
            pass  # accepted: the watcher checks it when the query service is back
        result = await add_watch(self.store, chat_id, server, players=players, limit=self.max_per_chat)
        if result is AddResult.LIMIT:
            return watch_texts.watch_limit(self.max_per_chat)
        if result is AddResult.UNCHANGED:
            return watch_texts.watch_unchanged(server.address)
        if result is AddResult.CHANGED:
            return watch_texts.watch_changed(server.address, players=players)
        log.info("chat %s watches %s", chat_id, server.address)
        return watch_texts.watch_added(server.address, players=players, online=online)

    async def _status_or_refusal(self, server: ServerRef) -> ServerStatus:
        """The server's status now, or _Refused with the /status message for a refused address."""
        try:
            return await self.query.status(server.address, server.edition)
        except QueryRejected as exc:
            if exc.code == "forbidden_address":
                text = formatting.problem(Problem.FORBIDDEN_ADDRESS, address=server.address)
                raise _Refused(text) from None
            raise _Refused(_rejected(exc, server)) from None
        except QueryUnavailable:
            raise _Refused(formatting.unavailable(server)) from None

    async def live(self, update: Update, context: Context) -> None:
        metrics.COMMANDS.labels("live").inc()
        chat = update.effective_chat
        if chat is None:
            return
        await handlers.speak(self.store, update)
        try:
            server, status = await self._live_start(update, context, chat.id, list(context.args or []))
        except _Refused as refused:
            await self._send(context, chat.id, refused.text)
            return
        # in the chat's language, as the watcher's edits are (they have no user to ask): else the first
        # edit would change only the language
        with i18n.speaking(await handlers.chat_language(self.store, chat.id)):
            card = watch_texts.live_card(status, self.live_interval)
        message = await context.bot.send_message(
            chat.id, card, parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW
        )
        await add_live(self.store, LiveCard(chat.id, message.message_id, server), card)
        if chat.type != ChatType.PRIVATE:
            try:
                await context.bot.pin_chat_message(chat.id, message.message_id, disable_notification=True)
            except TelegramError as exc:  # not allowed to pin here: the card works unpinned
                log.info("pinning the live card in chat %s refused: %s", chat.id, exc)

    async def _live_start(
        self, update: Update, context: Context, chat_id: int, args: list[str]
    ) -> tuple[ServerRef, ServerStatus]:
        """What the new card shows; _Refused with the answer when there is to be none (or on stop)."""
        if len(args) != 1:
            raise _Refused(watch_texts.live_usage())
        server = None if args[0].lower() == "stop" else _server(args[0])
        if not await may_change_chat(update, context.bot):
            raise _Refused(watch_texts.admins_only())
        if server is None:
            cards = await chat_lives(self.store, chat_id)
            for card in cards:
                await remove_live(self.store, card)
            raise _Refused(watch_texts.live_stopped(len(cards)))
        if await chat_entries(self.store, chat_id) >= self.max_per_chat:
            raise _Refused(watch_texts.watch_limit(self.max_per_chat))
        return server, await self._status_or_refusal(server)

    async def unwatch(self, update: Update, context: Context) -> None:
        metrics.COMMANDS.labels("unwatch").inc()
        chat = update.effective_chat
        if chat is None:
            return
        await handlers.speak(self.store, update)
        try:
            text = await self._unwatch(update, context, chat.id, list(context.args or []))
        except _Refused as refused:
            text = refused.text
        await self._send(context, chat.id, text)

    async def _unwatch(self, update: Update, context: Context, chat_id: int, args: list[str]) -> str:
        if len(args) != 1:
            return watch_texts.unwatch_usage()
        server = _server(args[0])
        if not await may_change_chat(update, context.bot):
            return watch_texts.admins_only()
        if await remove_watch(self.store, chat_id, server):
            return watch_texts.unwatched(server.address)
        return watch_texts.not_watched(server.address)

    async def watches(self, update: Update, context: Context) -> None:
        metrics.COMMANDS.labels("watches").inc()
        chat = update.effective_chat
        if chat is None:
            return
        await handlers.speak(self.store, update)
        watches = await chat_watches(self.store, chat.id)
        if not watches:
            await self._send(context, chat.id, watch_texts.no_watches())
            return
        lines = []
        for watch in watches:
            found = await self.store.get_doc(check_key(watch.server))
            record = found.doc if found is not None else {}
            since = record.get("since")
            lines.append(
                watch_texts.watch_line(
                    watch.server.address,
                    players=watch.players,
                    state=record.get("state"),
                    since=parse_iso(since) if since else None,
                )
            )
        await self._send(context, chat.id, watch_texts.watches_list(lines, self.max_per_chat))
