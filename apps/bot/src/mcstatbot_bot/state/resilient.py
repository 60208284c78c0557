"""Retries, metrics, spans and the failure policy around a state-store backend.

A failing store never stops a reply: after `retries` retries (tenacity: exponential backoff with full
jitter; 0 for DynamoDB, whose SDK retries in its own standard mode), a read answers None, a write is
logged and dropped, and an update claim counts as CLAIMED (handling an update twice in an outage beats
dropping it). A circuit breaker of its own keeps a store that is down
from costing every update its retries: after `breaker_threshold` failed calls in a row, calls fail at
once (outcome `short_circuited`) until one trial call after `breaker_reset_seconds` succeeds.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
import uuid
from contextvars import ContextVar
from enum import Enum
from typing import TYPE_CHECKING, TypeVar

from opentelemetry import trace
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt
from tenacity import wait_random_exponential as backoff

from mcstatbot_bot import metrics
from mcstatbot_bot.breaker import CircuitBreaker
from mcstatbot_bot.state.base import (
    ChatSettings,
    ChatState,
    ClaimResult,
    Doc,
    Sample,
    ServerRef,
    StateStore,
    StoredServer,
    Versioned,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence
    from datetime import timedelta

    from mcstatbot_common.models import ServerStatus
    from prometheus_client import Counter

log = logging.getLogger(__name__)
tracer = trace.get_tracer("mcstatbot.bot")
T = TypeVar("T")
CURRENT_OPERATION: ContextVar[str] = ContextVar("mcstatbot_state_operation", default="unknown")
"""The ResilientStore operation being run in this task (the DynamoDB SDK's retries are counted under it)."""


class StoreFailedError(Exception):
    """The backend kept failing after every retry."""


class DocConflictError(Exception):
    """A document kept changing under `update_doc` (another writer won every attempt)."""


DOC_UPDATE_ATTEMPTS = 20


class Unread(Enum):
    """`update_doc`'s `read` when the caller has not read the document (None is "read: not there")."""

    UNREAD = "unread"


UNREAD = Unread.UNREAD


class ResilientStore:
    def __init__(
        self,
        inner: StateStore,
        *,
        retries: int = 3,
        backoff_base: float = 0.05,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        breaker_threshold: int = 3,
        breaker_reset_seconds: float = 5.0,
    ) -> None:
        self.inner = inner
        self.breaker = CircuitBreaker(breaker_threshold, breaker_reset_seconds)
        self.backend = inner.backend
        self._retries = retries
        self._backoff_base = backoff_base
        self._sleep = sleep
        self._ok_counters: dict[str, Counter] = {}

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def healthy(self) -> bool:
        try:
            await self._call("ping", self.inner.ping)
        except StoreFailedError:
            return False
        return True

    def _ok(self, operation: str) -> Counter:
        """The `ok` counter of `operation` (looked up once: labels() costs a lock and a dict)."""
        counter = self._ok_counters.get(operation)
        if counter is None:
            counter = self._ok_counters[operation] = metrics.STATE_OPERATIONS.labels(
                self.backend, operation, "ok"
            )
        return counter

    async def _call(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        with tracer.start_as_current_span(
            f"state.{operation}", attributes={"db.system": self.backend, "db.operation": operation}
        ) as span:
            if not self.breaker.allow():
                metrics.STATE_OPERATIONS.labels(self.backend, operation, "short_circuited").inc()
                span.set_status(trace.StatusCode.ERROR, "short-circuited")
                raise StoreFailedError(operation)
            retrying = AsyncRetrying(
                stop=stop_after_attempt(self._retries + 1),
                wait=backoff(multiplier=self._backoff_base, max=20 * self._backoff_base),
                retry=retry_if_exception_type(Exception),  # not CancelledError
                sleep=self._sleep,
                before_sleep=lambda _: metrics.STATE_RETRIES.labels(self.backend, operation).inc(),
                reraise=True,
            )
            token = CURRENT_OPERATION.set(operation)
            try:
                result: T = await retrying(_awaited, call)
            except asyncio.CancelledError:
                self.breaker.release()
                raise
            except Exception as exc:
                self.breaker.record_failure()
                metrics.STATE_OPERATIONS.labels(self.backend, operation, "error").inc()
                span.record_exception(exc)
                span.set_status(trace.StatusCode.ERROR, type(exc).__name__)
                log.warning(
                    "state store %s failed after %d attempts: %s",
                    operation,
                    _attempts(retrying),
                    type(exc).__name__,
                    extra={"backend": self.backend, "operation": operation},
                )
                raise StoreFailedError(operation) from exc
            finally:
                CURRENT_OPERATION.reset(token)
            self.breaker.record_success()
            self._ok(operation).inc()
            return result

    async def _or(self, fallback: T, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        """`_call(operation, call)`, or `fallback` when the store kept failing (the reply goes on)."""
        try:
            return await self._call(operation, call)
        except StoreFailedError:
            return fallback

    async def get_chat(self, chat_id: int) -> ChatState | None:
        return await self._or(None, "get_chat", lambda: self.inner.get_chat(chat_id))

    async def save_chat(self, chat_id: int, server: ServerRef, status: ServerStatus | None) -> None:
        await self._or(None, "save_chat", lambda: self.inner.save_chat(chat_id, server, status))

    async def get_server(self, server: ServerRef) -> StoredServer | None:
        return await self._or(None, "get_server", lambda: self.inner.get_server(server))

    async def save_server(self, server: ServerRef, status: ServerStatus) -> None:
        await self._or(None, "save_server", lambda: self.inner.save_server(server, status))

    async def save_status(self, chat_id: int, server: ServerRef, status: ServerStatus) -> None:
        await self._or(None, "save_status", lambda: self.inner.save_status(chat_id, server, status))

    async def get_settings(self, chat_id: int) -> ChatSettings | None:
        return await self._or(None, "get_settings", lambda: self.inner.get_settings(chat_id))

    async def save_settings(self, chat_id: int, settings: ChatSettings) -> None:
        await self._or(None, "save_settings", lambda: self.inner.save_settings(chat_id, settings))

    async def get_ref(self, ref: str) -> ServerRef | None:
        return await self._or(None, "get_ref", lambda: self.inner.get_ref(ref))

    async def put_ref(self, ref: str, server: ServerRef) -> None:
        await self._or(None, "put_ref", lambda: self.inner.put_ref(ref, server))

    async def claim_update(self, update_id: int, lease_seconds: float) -> ClaimResult:
        token = uuid.uuid4().hex  # one per claim, the same for its retries
        return await self._or(
            ClaimResult.CLAIMED,
            "claim_update",
            lambda: self.inner.claim_update(update_id, lease_seconds, token),
        )

    async def finish_update(self, update_id: int) -> None:
        await self._or(None, "finish_update", lambda: self.inner.finish_update(update_id))

    async def release_update(self, update_id: int) -> None:
        await self._or(None, "release_update", lambda: self.inner.release_update(update_id))

    async def add_sample(self, server: ServerRef, sample: Sample, keep: timedelta) -> None:
        """A history sample; a failing store loses it (with a log line), the check goes on."""
        await self._or(None, "add_sample", lambda: self.inner.add_sample(server, sample, keep))

    async def samples(self, server: ServerRef, since: int, until: int) -> list[Sample]:
        """Raises StoreFailedError: "the store is down" is not "no history"."""
        return await self._call("samples", lambda: self.inner.samples(server, since, until))

    # Documents: unlike the calls above, a failure raises StoreFailedError: the watcher's records are
    # read-modify-write, and "nothing stored" must never be mistaken for "the store is down".
    async def get_doc(self, key: str) -> Versioned | None:
        return await self._call("get_doc", lambda: self.inner.get_doc(key))

    async def get_docs(self, keys: Sequence[str]) -> dict[str, Versioned]:
        """`get_doc` of every key at once (those that exist, by key): one operation, one breaker call."""
        return await self._call("get_docs", lambda: self.inner.get_docs(keys))

    async def update_doc(
        self,
        key: str,
        change: Callable[[Doc | None], Doc | None],
        *,
        read: Versioned | Unread | None = UNREAD,
    ) -> Doc | None:
        """Read `key`, write `change(doc)` (None: delete) with compare-and-set, and again from a fresh
        read when another writer came first. `change` gets its own copy and may run more than once.
        Returns what was written (None: deleted or nothing there). A change that returns its input
        unchanged writes nothing. `read`: what a read of `key` just answered (`get_docs`, None: no
        document), so the first attempt reads nothing; if it is out of date, the compare-and-set write
        fails and the next attempt reads afresh, as after any other writer."""
        for attempt in range(DOC_UPDATE_ATTEMPTS):
            found = await self.get_doc(key) if attempt or isinstance(read, Unread) else read
            before = None if found is None else found.doc
            version = 0 if found is None else found.version
            after = change(None if before is None else copy.deepcopy(before))
            if after == before:
                return after
            if after is None:
                done = await self._call("delete_doc", functools.partial(self.inner.delete_doc, key, version))
            else:
                done = await self._call("put_doc", functools.partial(self.inner.put_doc, key, after, version))
            if done:
                return after
        raise DocConflictError(key)


def _attempts(retrying: AsyncRetrying) -> int:
    return int(retrying.statistics.get("attempt_number", 1))


async def _awaited(call: Callable[[], Awaitable[T]]) -> T:
    """`call()` awaited: tenacity awaits only coroutine functions, and the calls are lambdas."""
    return await call()
