"""Running one Telegram update: a span, log context, the cross-replica claim, and the outcome.

Both paths go through `UpdateRunner.run`: the webhook endpoint (which answers Telegram according to the
outcome) and long polling (`BotApplication.process_update`). An update is claimed in the state store
first (processing, with a lease), handled, then marked done; a duplicate is acknowledged without being
handled again; an update another replica is handling right now is BUSY (Telegram retries it later);
a failed handling releases the claim so the redelivery is handled afresh, unless a message was already
sent for it (see below). An update whose reply the Bot
API refused for good (a 4xx other than 429: "message is too long", "message to edit not found", "query
is too old", "bot was blocked by the user") is REFUSED: logged, counted and acknowledged like a handled
one, since a redelivery would be refused again, forever.

No reply twice: a handling that already sent a message (a successful `send*` Bot API call other than
sendChatAction, noted by the send budget through `note_bot_api_call`) is finished, never released, also
when it fails or is cancelled (SIGTERM, the graceful-shutdown timeout) afterwards: its redelivery is then
a DUPLICATE instead of a second reply. Edits and callback answers do not count: a redelivery redoes them
without doubling anything ("message is not modified", "query is too old"). A handling that sent nothing
is released as before, so its redelivery is answered (nothing lost). The claim is finished or released
in a task of its own that a second cancellation does not stop, and the lifespan waits for those
(`settle`) before it closes the store. Each handling is bounded by `HANDLING_SHARE` of the lease, so the
claim is finished or released before another replica may take it over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from mcstatbot_common.logging import log_context
from opentelemetry import trace
from telegram import Update
from telegram.ext import Application

from mcstatbot_bot import metrics
from mcstatbot_bot.state import ClaimResult

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from mcstatbot_bot.state import ResilientStore

log = logging.getLogger(__name__)
tracer = trace.get_tracer("mcstatbot.bot")


class Outcome(StrEnum):
    HANDLED = "handled"
    DUPLICATE = "duplicate"
    BUSY = "busy"
    FAILED = "failed"
    REFUSED = "refused"


HANDLING_SHARE = 0.75
"""A handling may take this share of the update's lease (45 s of the default 60 s), then it is stopped,
so that its claim is finished or released before the lease runs out and another replica may claim it."""


@dataclass(slots=True)
class _Run:
    failed: bool = False
    refused: str | None = None
    """The Bot API's description of the first permanent refusal, when there was one."""
    sent: bool = False
    """A message went out for this update: a redelivery must not be handled again."""


_CURRENT_RUN: ContextVar[_Run | None] = ContextVar("mcstatbot_current_update_run", default=None)


def mark_current_update_failed() -> None:
    """Called by the error handler: the update being run in this task failed."""
    run = _CURRENT_RUN.get()
    if run is not None:
        run.failed = True


def mark_current_update_refused(description: str) -> None:
    """A Bot API call of the update being run in this task was refused for good (a 4xx)."""
    run = _CURRENT_RUN.get()
    if run is not None and run.refused is None:
        run.refused = description


def note_bot_api_call(endpoint: str) -> None:
    """A Bot API call (`endpoint`: its method, as PTB names it) made while handling the update of this
    task succeeded (the send budget calls this). A new message (`sendMessage`, `sendPhoto`, ...; not
    `sendChatAction`) means the update has been answered: it is finished, whatever happens after."""
    run = _CURRENT_RUN.get()
    if run is not None and endpoint.startswith("send") and endpoint != "sendChatAction":
        run.sent = True


_CALLBACK_ACTIONS = frozenset({"s", "p", "a", "l", "set"})


def describe(update: Update, commands: frozenset[str] | None = None) -> str:
    """A label for the span, the log line and metrics: the command (`/status`), `callback:<action>` or
    the kind. With `commands` (the bot's), anything else a user typed after a slash is `/other`, so
    the label never carries the user's own text."""
    message = update.effective_message if update.callback_query is None else None
    if message is not None and message.text and message.text.startswith("/"):
        command = message.text.split(maxsplit=1)[0].split("@", 1)[0][:32]
        return command if commands is None or command[1:] in commands else "/other"
    if update.callback_query is not None:
        parts = (update.callback_query.data or "").split("|")
        if len(parts) < 2:  # noqa: PLR2004
            return "callback"
        return f"callback:{parts[1] if parts[1] in _CALLBACK_ACTIONS else 'other'}"
    if update.inline_query is not None:
        return "inline"  # never the query itself: that is what the user typed
    return "message" if update.message is not None else "other"


class UpdateRunner:
    def __init__(
        self, store: ResilientStore, lease_seconds: float, commands: frozenset[str] | None = None
    ) -> None:
        self._store = store
        self._lease = lease_seconds
        self._commands = commands
        self._closing: set[asyncio.Task[None]] = set()

    async def run(self, update: Update, process: Callable[[Update], Awaitable[None]]) -> Outcome:
        """Claim, handle and finish `update`; one INFO line per update says what it was (the command or
        callback kind, never the text), the outcome and the duration, with the trace id of its span."""
        started = time.perf_counter()
        update_id = update.update_id
        command = describe(update, self._commands)
        outcome = Outcome.FAILED  # unless the run gets further (a cancelled run stays failed)
        with (
            log_context(update_id=update_id),
            tracer.start_as_current_span(
                "telegram.update", attributes={"telegram.update_id": update_id, "telegram.command": command}
            ) as span,
        ):
            try:
                outcome = await self._run(update_id, update, process)
            finally:
                span.set_attribute("telegram.outcome", outcome.value)
                if outcome is Outcome.FAILED:
                    span.set_status(trace.StatusCode.ERROR, "handling failed")
                log.info(
                    "update %s",
                    outcome.value,
                    extra={
                        "command": command.removeprefix("/"),  # a log line never shows what was typed
                        "outcome": outcome.value,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                    },
                )
        return outcome

    async def settle(self, timeout: float) -> None:  # noqa: ASYNC109 - a bound for the shutdown, not a scope
        """Wait, at most `timeout` seconds, for the claims being finished or released right now (at
        shutdown, before the store closes: a cancelled handling's claim must still be written)."""
        if self._closing:
            await asyncio.wait(set(self._closing), timeout=timeout)

    async def _close_claim(self, update_id: int, *, done: bool) -> None:
        """Finish (`done`) or release the claim, in a task that a cancellation of this one does not stop."""
        call = self._store.finish_update if done else self._store.release_update
        task = asyncio.create_task(call(update_id))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        await asyncio.shield(task)

    async def _run(
        self, update_id: int, update: Update, process: Callable[[Update], Awaitable[None]]
    ) -> Outcome:
        claim = await self._store.claim_update(update_id, self._lease)
        if claim is not ClaimResult.CLAIMED:
            metrics.UPDATES.labels("duplicate").inc()
            return Outcome.DUPLICATE if claim is ClaimResult.DUPLICATE else Outcome.BUSY
        run = _Run()
        token = _CURRENT_RUN.set(run)
        try:
            async with asyncio.timeout(self._lease * HANDLING_SHARE):
                await process(update)
        except Exception:  # also TimeoutError: the handling outran its share of the lease
            log.exception("update handling raised")
            run.failed = True
        except BaseException:  # cancelled (shutdown): another delivery handles it, unless it was answered
            await self._close_claim(update_id, done=run.sent)
            raise
        finally:
            _CURRENT_RUN.reset(token)
        if run.failed and not run.sent:
            await self._close_claim(update_id, done=False)
            metrics.UPDATES.labels("failed").inc()
            return Outcome.FAILED
        await self._close_claim(update_id, done=True)
        if run.failed:
            log.warning("handling failed after a message went out: acknowledged, not retried")
        if run.refused is not None:
            metrics.UPDATES.labels("refused").inc()
            log.warning(
                "the Bot API refused a reply for good; the update is acknowledged, not retried",
                extra={"error": run.refused},
            )
            return Outcome.REFUSED
        metrics.UPDATES.labels("handled").inc()
        return Outcome.HANDLED


class BotApplication(Application[Any, Any, Any, Any, Any, Any]):
    """PTB's Application whose updates (also those from long polling) go through an UpdateRunner."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runner: UpdateRunner | None = None

    async def process_update(self, update: object) -> None:
        if isinstance(update, Update) and self.runner is not None:
            await self.runner.run(update, self.process_update_directly)
        else:
            await super().process_update(update)

    async def process_update_directly(self, update: Update) -> None:
        """PTB's own dispatch to the handlers, without the runner (the runner calls this)."""
        await super().process_update(update)
