"""A server's check record and how one check moves it on: down after N failures, up after one good check,
flap control per direction, joins and leaves. Pure functions over the `check#<server>` document.

The record (JSON, in the state store, docs/bot-service.md):

- `state`: `unknown` (not decided yet), `up` or `down`; `since` (ISO) and `since_ts` (epoch): since when;
- `failures`: consecutive failed checks; `failing_since_ts`: when the first of them ran; `reason`: the
  query service's error code of the last failure (`timeout`, `refused`, `dns`, `placeholder`, ...);
- `down_since_ts`: when the current (or last) down period began (its first failed check);
- `reported`: the state the chats were last told (`up`/`down`; the first decided state is taken silently:
  a server down when watched is reported when it comes up); `reported_ts`: {direction: epoch} of the last
  report each way; `changes`: state changes since the last report (more than one: it flapped);
- `players`: the names seen at the last good check (None: not looked at);
- `outbox`: alerts not delivered yet (`mcstatbot_watcher.service` sends and retries them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mcstatbot_bot.state.base import iso
from mcstatbot_common.models import ErrorCode

if TYPE_CHECKING:
    from mcstatbot_bot.state.base import Doc
    from mcstatbot_common.models import PlayerList, ServerStatus

UP, DOWN, UNKNOWN = "up", "down", "unknown"


@dataclass(frozen=True, slots=True)
class Observation:
    """What one check saw."""

    ok: bool
    reason: str | None = None
    players: list[str] | None = None
    partial: bool = False


def observe(status: ServerStatus, players: PlayerList | None = None) -> Observation:
    """A status answer (and, for watches with players, the player list) as an Observation. A placeholder
    answer (`error.code == "placeholder"`) is offline like any other."""
    placeholder = status.error is not None and status.error.code is ErrorCode.PLACEHOLDER
    if not status.online or placeholder:
        reason = status.error.code.value if status.error is not None else None
        return Observation(ok=False, reason=reason)
    if players is None or not players.online:
        return Observation(ok=True)
    return Observation(ok=True, players=list(players.names), partial=players.source != "query")


@dataclass(frozen=True, slots=True)
class Event:
    kind: str  # "down", "up" or "players"
    fields: dict[str, Any] = field(default_factory=dict)


def new_record() -> Doc:
    return {
        "state": UNKNOWN,
        "failures": 0,
        "reported": None,
        "reported_ts": {},
        "changes": 0,
        "players": None,
        "outbox": [],
    }


def _set_state(record: Doc, state: str, at: float) -> None:
    if record["state"] != UNKNOWN:
        record["changes"] = int(record.get("changes", 0)) + 1
    record["state"] = state
    record["since_ts"] = at
    record["since"] = iso(datetime.fromtimestamp(at, UTC))


def advance(  # noqa: C901 - the rules in one place, in the order docs/watcher.md states them
    record: Doc | None, seen: Observation, now: float, *, down_after: int, flap_seconds: float
) -> tuple[Doc, list[Event]]:
    """The record after one check at `now` (epoch seconds), and what to report to the watching chats."""
    record = record if record is not None else new_record()
    # no "when last checked" field: the record of a check that changed nothing stays as it was, and is
    # not written (update_doc); the history sample says when each check ran
    record.pop("checked_ts", None)  # written by older versions
    events: list[Event] = []
    if seen.ok:
        record["failures"] = 0
        record["failing_since_ts"] = None
        if record["state"] != UP:
            _set_state(record, UP, now)
    else:
        if not record.get("failures"):
            record["failing_since_ts"] = now
        record["failures"] = int(record.get("failures", 0)) + 1
        record["reason"] = seen.reason
        if record["state"] != DOWN and record["failures"] >= down_after:
            _set_state(record, DOWN, float(record["failing_since_ts"]))
            record["down_since_ts"] = record["failing_since_ts"]

    state = record["state"]
    if record.get("reported") is None and state != UNKNOWN:
        record["reported"] = state  # the first state is taken as it is, silently
        record["changes"] = 0
    elif state != UNKNOWN and state != record["reported"]:
        last = record["reported_ts"].get(state)
        if last is None or now - float(last) >= flap_seconds:
            events.append(_transition(record, state, now))
            record["reported"] = state
            record["reported_ts"][state] = now
            record["changes"] = 0

    if state == UP and seen.players is not None:
        before = record.get("players")
        if before is not None:
            joined = [name for name in seen.players if name not in set(before)]
            left = [name for name in before if name not in set(seen.players)]
            if joined or left:
                events.append(Event("players", {"joined": joined, "left": left, "partial": seen.partial}))
        record["players"] = seen.players
    elif state != UP:
        record["players"] = None  # back up: the names then are not "joins"
    return record, events


def _transition(record: Doc, state: str, now: float) -> Event:
    changes = int(record.get("changes", 0))
    if state == DOWN:
        return Event(
            DOWN,
            {
                "reason": record.get("reason"),
                "failures": int(record["failures"]),
                "since_ts": float(record.get("down_since_ts") or now),
                "changes": changes,
            },
        )
    down_since = record.get("down_since_ts")
    return Event(UP, {"down_seconds": now - float(down_since) if down_since else None, "changes": changes})
