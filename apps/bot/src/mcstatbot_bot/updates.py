"""Running one Telegram update: a span, log context, the cross-replica claim, and the outcome.

Both paths go through `UpdateRunner.run`: the webhook endpoint (which answers Telegram according to the
outcome) and long polling (`BotApplication.process_update`). An update is claimed in the state store
first (processing, with a lease), handled, then marked done; a duplicate is acknowledged without being
handled again; an update another replica is handling right now is BUSY (Telegram retries it later);
a failed handling releases the claim so the redelivery is handled afresh. An update whose reply the Bot
API refused for good (a 4xx other than 429: "message is too long", "message to edit not found", "query
is too old", "bot was blocked by the user") is REFUSED: logged, counted and acknowledged like a handled
one, since a redelivery would be refused again, forever.
"""

from __future__ import annotations

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


@dataclass(slots=True)
class _Run:
    failed: bool = False
    refused: str | None = None
    """The Bot API's description of the first permanent refusal, when there was one."""


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
            await process(update)
        except Exception:
            log.exception("update handling raised")
            run.failed = True
        except BaseException:  # cancelled (shutdown): let another delivery handle it
            await self._store.release_update(update_id)
            raise
        finally:
            _CURRENT_RUN.reset(token)
        if run.failed:
            await self._store.release_update(update_id)
            metrics.UPDATES.labels("failed").inc()
            return Outcome.FAILED
        await self._store.finish_update(update_id)
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
