"""What one flight did, for the `debug` block (`?debug=true`): the steps of its probe and its cache path.

Every flight (service.QueryService) keeps a ProbeTrace, made visible to the probe through the context
variable TRACE (asyncio tasks copy it, so the Java and Bedrock halves of an `auto` probe write to the same
trace, and one flight never sees another's). Recording is a few list appends per probe, so it is always on:
a debug request that joins a flight another request started still gets that flight's steps. The trace
never reaches the cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mcstatbot_common.models import DebugStep

from mcstatbot_query.errors import ForbiddenAddressError, ProbeFailedError, classify

if TYPE_CHECKING:
    from collections.abc import Iterator


@dataclass(slots=True)
class StepNote:
    """What the body of a traced step found out (its outcome when not `ok`, a detail)."""

    outcome: str = "ok"
    detail: str | None = None


@dataclass(slots=True)
class ProbeTrace:
    steps: list[DebugStep] = field(default_factory=list)
    lock: str | None = None
    """The probe lock's state (cache.LockState's value) when the flight tried it."""


TRACE: ContextVar[ProbeTrace | None] = ContextVar("mcstatbot_probe_trace", default=None)


def outcome_of(exc: BaseException) -> str:
    if isinstance(exc, ForbiddenAddressError):
        return "forbidden"
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    if isinstance(exc, ProbeFailedError):
        return exc.code.value
    return classify(exc).code.value


@contextlib.contextmanager
def traced(step: str, target: str) -> Iterator[StepNote]:
    """Record `step` on the current trace (if any) with its outcome and time, also when it raises."""
    trace = TRACE.get()
    note = StepNote()
    started = time.perf_counter()
    try:
        yield note
    except BaseException as exc:
        if trace is not None:
            trace.steps.append(_step(step, target, outcome_of(exc), started, note.detail))
        raise
    if trace is not None:
        trace.steps.append(_step(step, target, note.outcome, started, note.detail))


def _step(step: str, target: str, outcome: str, started: float, detail: str | None) -> DebugStep:
    ms = round((time.perf_counter() - started) * 1000, 3)
    return DebugStep(step=step, target=target, outcome=outcome, ms=ms, detail=detail)
