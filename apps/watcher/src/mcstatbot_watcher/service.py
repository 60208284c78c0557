"""The watcher's loop: every watched server checked once per WATCH_INTERVAL_SECONDS, its record moved on
(checks.advance), and the alerts it gives delivered to every chat watching it.

- The schedule: each server's check falls at the same offset in every interval (a hash of its key), so
  checks spread over the interval and every replica computes the same due times from the state store's
  index of watched servers (no table scan; reread every few seconds).
- One tick (every 0.25 s at most) takes every server due in it as one group: the group's slots are
  claimed together, the watches of the claimed servers read, and their status asked of the query
  service in one `POST /api/v1/status/batch` (`QueryClient.statuses`); the player lists of `players`
  watches and the rest of each check (history sample, record, alerts, live cards) go per server,
  WATCH_CONCURRENCY at once.
- Several replicas (REDIS_URL): before a check, a replica claims that server's slot (`SET NX PX`, one key
  per server and interval, `slots.RedisSlots`, one pipeline per tick); only the claimant checks, and the
  claims are made as soon as the servers are due, before any of the group's work, so a replica busy with
  its own checks never holds up (nor later repeats) the servers the other replica took. A dead
  replica's servers are claimed by another at their next slot; a flushed Redis costs at most one
  doubled check (the record's compare-and-set write keeps the alert single). Without REDIS_URL the one
  replica checks everything.
- Alerts go into the record's outbox in the same write that records the transition (what happened, not
  a text), then are sent, each rendered in its chat's language at the moment it is sent (`/language`,
  else English; `i18n.speaking` around the rendering, so one task writing to chats in several languages
  in turn never mixes them, and live cards likewise); a
  send refused for a while (429, network, 5xx) stays there for the next check (after `retry_after`), a
  chat that cannot be written to any more (bot blocked or removed, chat gone) loses its watch, any other
  permanent refusal drops that alert with a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
import zlib
from typing import TYPE_CHECKING, Any

from mcstatbot_bot import history, i18n, watch_texts
from mcstatbot_bot.handlers import chat_language
from mcstatbot_bot.query_client import QueryClient, QueryError, QueryRejected, QueryUnavailable
from mcstatbot_bot.state.resilient import UNREAD, StoreFailedError, Unread
from mcstatbot_bot.state.watches import (
    LiveCard,
    check_key,
    drop_chat_watch,
    prune_server,
    remove_live,
    server_key,
    server_watch,
    watch_of,
    watched_servers,
)
from mcstatbot_bot.telegram_api import is_not_modified, is_permanent
from telegram import LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

from mcstatbot_watcher import metrics
from mcstatbot_watcher.checks import DOWN, UP, Event, Observation, advance, observe
from mcstatbot_watcher.slots import Slots, slot_number

if TYPE_CHECKING:
    from datetime import datetime

    from mcstatbot_bot.state import ResilientStore
    from mcstatbot_bot.state.base import Doc, ServerRef, Versioned
    from mcstatbot_common.models import PlayerList, ServerStatus
    from telegram import Bot

    from mcstatbot_watcher.settings import WatcherSettings

log = logging.getLogger(__name__)
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
INDEX_REFRESH_SECONDS = 5.0
RETRY_SECONDS = 5.0
_GONE = ("chat not found", "bot was kicked", "bot was blocked", "user is deactivated", "group chat was")


def offset(server: ServerRef, interval: float) -> float:
    """Where in each interval this server's check falls: the same on every replica."""
    return (zlib.crc32(server.key.encode()) % 10_000) / 10_000 * interval


def chat_is_gone(error: TelegramError) -> bool:
    text = str(error).lower()
    return isinstance(error, Forbidden) or (isinstance(error, BadRequest) and any(g in text for g in _GONE))


def _when(epoch: float) -> datetime:
    from datetime import UTC, datetime  # noqa: PLC0415 - only for the alert texts

    return datetime.fromtimestamp(epoch, UTC)


def alert_text(server: ServerRef, event: Event) -> str:
    """The alert for `event` in the current language."""
    f = event.fields
    if event.kind == DOWN:
        return watch_texts.down_alert(
            server.address,
            reason=f["reason"],
            failures=f["failures"],
            since=_when(f["since_ts"]),
            changes=f["changes"],
        )
    if event.kind == UP:
        return watch_texts.up_alert(server.address, down_seconds=f["down_seconds"], changes=f["changes"])
    return watch_texts.players_alert(server.address, f["joined"], f["left"], partial=f["partial"])


class Watcher:
    def __init__(
        self, settings: WatcherSettings, store: ResilientStore, query: QueryClient, bot: Bot, slots: Slots
    ) -> None:
        self.settings = settings
        self.store = store
        self.query = query
        self.bot = bot
        self.slots = slots
        self.interval = settings.watch_interval_seconds
        self.servers: dict[str, ServerRef] = {}
        self._next_due: dict[str, float] = {}
        self._running: set[str] = set()
        """Servers whose check (of the current group) has not ended yet."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._slot_taken: dict[str, int] = {}
        """The last slot this replica took up for each server (checked, or tried to claim)."""
        self._limit = asyncio.Semaphore(settings.watch_concurrency)
        self._reads = asyncio.Semaphore(settings.watch_concurrency)
        self._halted = False
        self._started = False
        """Whether the watched servers were read once already (see `refresh`)."""

    # ------------------------------------------------------------------ schedule
    def _due_after(self, server: ServerRef, now: float) -> float:
        """The first due time of `server` after `now` (epoch seconds; the same on every replica)."""
        base = now - (now % self.interval) + offset(server, self.interval)
        return base if base > now else base + self.interval

    async def refresh(self) -> None:
        servers = {server.key: server for server in await watched_servers(self.store)}
        now = time.time()
        for key, server in servers.items():
            if key not in self._next_due:
                # A watch that appeared since this replica's first read is checked at once. On the
                # first read (a fresh start, a restart of every replica, a scale-out) every server
                # waits for its own offset instead: thousands of servers asked in the same tick would
                # reach the query service as one burst, beyond its Redis pool, and put it in degraded
                # mode; at their offsets they come as they always do, spread over the interval, and
                # none waits longer than it would have had the replica not restarted.
                self._next_due[key] = now if self._started else self._due_after(server, now)
        for key in list(self._next_due):
            if key not in servers:
                del self._next_due[key]
                self._slot_taken.pop(key, None)
        self.servers = servers
        self._started = True
        metrics.WATCHED_SERVERS.set(len(servers))

    def halt(self) -> None:
        """Let `run` end at its next tick (also when the cancellation of its task is lost: on Python 3.11
        `asyncio.wait_for`, used inside redis-py and other clients, can swallow one)."""
        self._halted = True

    async def run(self) -> None:
        tick = min(self.interval / 10, 0.25)
        next_refresh = 0.0
        while not self._halted:
            now = time.time()
            if now >= next_refresh:
                try:
                    await self.refresh()
                except Exception:
                    log.exception("reading the watched servers failed")
                next_refresh = now + min(self.interval, INDEX_REFRESH_SECONDS)
            group: list[tuple[ServerRef, int]] = []
            for key, due in list(self._next_due.items()):
                if due <= now and key not in self._running:
                    server = self.servers[key]
                    self._next_due[key] = self._due_after(server, now)
                    # the slot the check falls in now: a loop held up past the due time (a busy
                    # machine) claims the current slot, never the one that went by, which the
                    # other replica may have checked in the current one already
                    slot = slot_number(now, offset(server, self.interval), self.interval)
                    if self._slot_taken.get(key) == slot:  # this replica had it already: once per slot
                        metrics.CHECKS.labels("same_slot").inc()
                        continue
                    self._slot_taken[key] = slot
                    self._running.add(key)
                    group.append((server, slot))
            if group:
                task = asyncio.create_task(self._check_group(group))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            await asyncio.sleep(tick)

    async def _check_group(self, group: list[tuple[ServerRef, int]]) -> None:
        """The servers due in one tick, with their slots: claimed, then checked (one batch status call)."""
        try:
            claimed = await self.slots.claim_many(group, self.interval)
            mine: list[ServerRef] = []
            for (server, _), won in zip(group, claimed, strict=True):
                if won:
                    mine.append(server)
                else:
                    metrics.CHECKS.labels("other_replica").inc()
                    self._running.discard(server.key)
            docs = await self._read_group(mine)
            watched = await asyncio.gather(*(self._read_watchers(server, docs) for server in mine))
            looking: list[tuple[ServerRef, tuple[dict[int, bool], dict[LiveCard, str]]]] = []
            for server, watch in zip(mine, watched, strict=True):
                if watch is None:
                    self._running.discard(server.key)
                else:
                    looking.append((server, watch))
            statuses = await self._statuses([server for server, _ in looking])
            await asyncio.gather(
                *(
                    self._guarded(
                        server,
                        chats,
                        cards,
                        status,
                        UNREAD if docs is None else docs.get(check_key(server)),
                    )
                    for (server, (chats, cards)), status in zip(looking, statuses, strict=True)
                )
            )
        except Exception:
            log.exception("checking a group of %d servers failed", len(group))
        finally:
            for server, _ in group:
                self._running.discard(server.key)

    async def _guarded(
        self,
        server: ServerRef,
        chats: dict[int, bool],
        cards: dict[LiveCard, str],
        status: ServerStatus | QueryError,
        record: Versioned | Unread | None,
    ) -> None:
        """The rest of one server's check in a group, WATCH_CONCURRENCY at once; its failure is its own
        (logged); once done the server may be scheduled again, whatever the rest of the group does."""
        try:
            async with self._limit:
                await self._checked(server, chats, cards, status, record)
        except Exception:
            log.exception("checking %s failed", server.address)
        finally:
            self._running.discard(server.key)

    async def _read_group(self, servers: list[ServerRef]) -> dict[str, Versioned] | None:
        """The watches and check records of a group's servers in one `get_docs` (on DynamoDB one
        BatchGetItem per 100 keys instead of two GetItems per server); None when it failed: each server
        then reads its own, and a document that cannot be read skips only its own server's check."""
        if not servers:
            return {}
        try:
            return await self.store.get_docs([key for s in servers for key in (server_key(s), check_key(s))])
        except StoreFailedError:
            log.warning("reading the records of %d servers at once failed: each reads its own", len(servers))
            return None

    async def _read_watchers(
        self, server: ServerRef, docs: dict[str, Versioned] | None
    ) -> tuple[dict[int, bool], dict[LiveCard, str]] | None:
        """`_watchers` for a group (`docs`: its documents read already, None: read them now),
        WATCH_CONCURRENCY at once beside (not behind) the checks of earlier groups, so that a backlog of
        them does not delay the next group's status call."""
        try:
            async with self._reads:
                return await self._watchers(server, UNREAD if docs is None else docs.get(server_key(server)))
        except Exception:
            metrics.CHECKS.labels("store_failed").inc()  # no check this slot: an operator wants to see it
            log.exception("reading the watches of %s failed: its check is skipped", server.address)
            return None

    async def _statuses(self, servers: list[ServerRef]) -> list[ServerStatus | QueryError]:
        """The status of each server through one batch call (per MAX_BATCH_SERVERS); the call's own
        failure is every server's."""
        if not servers:
            return []
        try:
            return list(await self.query.statuses([(server.address, server.edition) for server in servers]))
        except QueryError as exc:
            return [exc] * len(servers)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ------------------------------------------------------------------ one check
    async def check(self, server: ServerRef) -> None:
        """One check of `server` on its own (a group's checks go through `_check_group`)."""
        watch = await self._watchers(server)
        if watch is not None:
            chats, cards = watch
            await self._checked(server, chats, cards, None)

    async def _watchers(
        self, server: ServerRef, found: Versioned | Unread | None = UNREAD
    ) -> tuple[dict[int, bool], dict[LiveCard, str]] | None:
        """The chats watching `server` and its live cards (`found`: its `watch#` document read already);
        None (and the server pruned) when nobody does."""
        if isinstance(found, Unread):
            chats, cards = await server_watch(self.store, server)
        else:
            chats, cards = watch_of(server, found)
        if not chats and not cards:
            if await prune_server(self.store, server):
                self._next_due.pop(server.key, None)
            return None
        return chats, cards

    async def _checked(
        self,
        server: ServerRef,
        chats: dict[int, bool],
        cards: dict[LiveCard, str],
        status: ServerStatus | QueryError | None,
        record_read: Versioned | Unread | None = UNREAD,
    ) -> None:
        """The rest of one check, with the status asked already (None: ask it now) and the check record
        read already (`record_read`, see `ResilientStore.update_doc`)."""
        looked = await self._look(server, want_players=any(chats.values()), status=status)
        if looked is None:
            await self.deliver(server)  # alerts waiting still go out
            return
        seen, status = looked
        metrics.CHECKS.labels("up" if seen.ok else "failed").inc()
        now = time.time()
        await history.record(self.store, server, status, now, self.settings.history_days)

        def change(record: Doc | None) -> Doc:
            new, events = advance(
                record,
                seen,
                now,
                down_after=self.settings.watch_down_after,
                flap_seconds=self.settings.watch_flap_seconds,
            )
            for event in events:
                for chat_id, wants_players in chats.items():
                    if event.kind == "players" and not wants_players:
                        continue
                    new["outbox"].append(
                        {
                            "id": uuid.uuid4().hex,
                            "chat": chat_id,
                            "kind": event.kind,
                            "fields": event.fields,
                            "after": 0,
                        }
                    )
            return new

        record = await self.store.update_doc(check_key(server), change, read=record_read)
        if record is not None and record["outbox"]:
            await self.deliver(server, record)
        if record is not None and cards:
            await self.refresh_cards(server, status, cards, record)

    async def _look(
        self, server: ServerRef, *, want_players: bool, status: ServerStatus | QueryError | None = None
    ) -> tuple[Observation, ServerStatus] | None:
        """The query service's answer for `server` (`status`: asked already in a batch, or its error);
        None when it gave no verdict on the server."""
        try:
            if isinstance(status, QueryError):
                raise status
            if status is None:
                status = await self.query.status(server.address, server.edition)
            players: PlayerList | None = None
            if status.online and want_players:
                players = await self.query.players(server.address, server.edition)
        except QueryUnavailable:
            metrics.CHECKS.labels("query_unavailable").inc()  # not the server's fault: no verdict
            return None
        except QueryRejected as exc:
            metrics.CHECKS.labels("rejected").inc()
            log.warning("the query service refused %s: %s", server.address, exc.code)
            return None
        return observe(status, players), status

    # ------------------------------------------------------------------ live cards
    async def refresh_cards(
        self, server: ServerRef, status: ServerStatus, cards: dict[LiveCard, str], record: Doc
    ) -> None:
        """Edit each live card whose text would change, at most once per LIVE_INTERVAL_SECONDS; stop a
        card whose message is gone, and every card of a server down for LIVE_OFFLINE_SECONDS (7 days)."""
        now = time.time()
        live: dict[str, Doc] = record.get("live", {})
        texts: dict[str, str] = {}  # the card's text in each language, rendered once per language
        offline_too_long = (
            record["state"] == DOWN and now - float(record["since_ts"]) >= self.settings.live_offline_seconds
        )
        updated: dict[str, Doc] = {}
        for card, first_shown in cards.items():
            entry = live.get(card.key, {"shown": first_shown, "at": 0.0})
            if offline_too_long:
                log.info(
                    "live card %s of %s stopped: down since %s", card.key, server.address, record.get("since")
                )
                await remove_live(self.store, card)
                continue
            if now - float(entry["at"]) < self.settings.live_interval_seconds:
                updated[card.key] = entry
                continue
            text = await self._card_text(card, status, texts)
            if text == entry["shown"]:  # what it shows is what it would show: no call at all
                updated[card.key] = {"shown": text, "at": now}
                continue
            outcome = await self._edit_card(card, text)
            if outcome == "gone":
                await remove_live(self.store, card)
            elif outcome == "edited":
                updated[card.key] = {"shown": text, "at": now}
            else:
                updated[card.key] = entry

        def keep(current: Doc | None) -> Doc | None:
            if current is None:
                return None
            current["live"] = updated
            return current

        if updated != live:
            await self.store.update_doc(check_key(server), keep)

    async def _card_text(self, card: LiveCard, status: ServerStatus, texts: dict[str, str]) -> str:
        """The card's text in its chat's language (`texts`: those rendered so far, by language)."""
        language = await chat_language(self.store, card.chat_id)
        if language not in texts:
            with i18n.speaking(language):
                texts[language] = watch_texts.live_card(status, self.settings.live_interval_seconds)
        return texts[language]

    async def _edit_card(self, card: LiveCard, text: str) -> str:
        try:
            await self.bot.edit_message_text(
                text,
                chat_id=card.chat_id,
                message_id=card.message_id,
                parse_mode=ParseMode.HTML,
                link_preview_options=NO_PREVIEW,
            )
        except TelegramError as exc:
            if is_not_modified(exc):
                return "edited"
            if chat_is_gone(exc) or "message to edit not found" in str(exc).lower():
                metrics.LIVE_EDITS.labels("gone").inc()
                log.info("live card %s is gone (%s): stopped", card.key, exc)
                return "gone"
            metrics.LIVE_EDITS.labels("failed").inc()
            if is_permanent(exc):
                log.warning("the Bot API refused to edit live card %s: %s", card.key, exc)
            return "failed"
        metrics.LIVE_EDITS.labels("edited").inc()
        return "edited"

    # ------------------------------------------------------------------ delivery
    async def deliver(self, server: ServerRef, record: Doc | None = None) -> None:
        if record is None:
            found = await self.store.get_doc(check_key(server))
            record = found.doc if found is not None else None
        if record is None or not record.get("outbox"):
            return
        done: set[str] = set()
        later: dict[str, float] = {}
        waiting: set[int] = set()  # a chat with an alert held back: its later alerts wait too (order)
        now = time.time()
        for alert in record["outbox"]:
            chat_id = int(alert["chat"])
            if chat_id in waiting or float(alert.get("after", 0)) > now:
                waiting.add(chat_id)
                continue
            outcome, retry_at = await self._send(server, alert)
            if outcome == "retry":
                later[alert["id"]] = retry_at
                waiting.add(chat_id)
            else:
                done.add(alert["id"])

        if not done and not later:
            return

        await self.store.update_doc(check_key(server), lambda current: _settled(current, done, later))

    async def _text(self, server: ServerRef, alert: dict[str, Any]) -> str:
        """The alert in its chat's language (an alert queued with its text already, by an older
        version, as it is)."""
        if "text" in alert:
            return str(alert["text"])
        with i18n.speaking(await chat_language(self.store, int(alert["chat"]))):
            return alert_text(server, Event(alert["kind"], alert["fields"]))

    async def _send(self, server: ServerRef, alert: dict[str, Any]) -> tuple[str, float]:
        chat_id = int(alert["chat"])
        try:
            text = await self._text(server, alert)
            await self.bot.send_message(
                chat_id, text, parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW
            )
        except RetryAfter as exc:
            metrics.ALERTS.labels(alert["kind"], "delayed").inc()
            wait = exc.retry_after
            seconds = wait.total_seconds() if not isinstance(wait, int) else float(wait)
            return "retry", time.time() + seconds
        except TelegramError as exc:
            if chat_is_gone(exc):
                metrics.ALERTS.labels(alert["kind"], "chat_gone").inc()
                log.info(
                    "chat %s cannot be written to (%s): its watch of %s ends", chat_id, exc, server.address
                )
                await drop_chat_watch(self.store, chat_id, server)
                return "done", 0.0
            if is_permanent(exc):
                metrics.ALERTS.labels(alert["kind"], "refused").inc()
                log.warning("the Bot API refused an alert for chat %s: %s", chat_id, exc)
                return "done", 0.0
            metrics.ALERTS.labels(alert["kind"], "delayed").inc()
            return "retry", time.time() + RETRY_SECONDS
        metrics.ALERTS.labels(alert["kind"], "sent").inc()
        return "done", 0.0


def _settled(record: Doc | None, done: set[str], later: dict[str, float]) -> Doc | None:
    """`record` with the alerts in `done` gone and those in `later` kept for a retry at that time."""
    if record is None:
        return None
    kept = []
    for alert in record.get("outbox", []):
        if alert["id"] in done:
            continue
        retry = alert
        if alert["id"] in later:
            retry = {**alert, "after": later[alert["id"]], "attempts": int(alert.get("attempts", 0)) + 1}
        kept.append(retry)
    record["outbox"] = kept
    return record
