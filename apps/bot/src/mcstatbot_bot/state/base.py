"""What the bot remembers, behind one interface with three backends (memory, SQLite, DynamoDB).

- per chat: the last server asked about, when, and the answer (`ChatState`; SPEC.md's table shape);
- per server: the last ServerStatus, the fallback when the query service is down (`StoredServer`);
- per chat, its settings: the language chosen with /language and the default server (`ChatSettings`),
  kept until changed;
- button references: a short id for a server whose address does not fit into 64 bytes of callback_data;
- update claims: which update_id is being or has been handled, shared by every replica;
- documents: small JSON items under a key, each with a version for compare-and-set writes (the watcher's
  watches, per-server check state and pending alerts; docs/bot-service.md lists their keys).

Backends raise freely; `ResilientStore` (resilient.py) adds retries, metrics, spans and the policy
"answer the user anyway" around whichever backend is configured.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from mcstatbot_common.models import Edition, ServerStatus

if TYPE_CHECKING:
    from collections.abc import Sequence

CHAT_TTL = timedelta(days=7)
SERVER_TTL = timedelta(days=7)
REF_TTL = timedelta(days=400)
UPDATE_TTL = timedelta(days=1)
HISTORY_KEEP = timedelta(days=30)
"""HISTORY_DAYS' default: how long history samples are kept."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """ISO 8601 UTC with a Z, seconds precision: `2026-11-28T09:00:00Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class ServerRef:
    """A server as the user asked for it: normalised address text (`str(ServerAddress)`) and edition."""

    address: str
    edition: Edition = Edition.AUTO

    @property
    def key(self) -> str:
        return f"{self.edition.value}|{self.address}"


@dataclass(frozen=True, slots=True)
class ChatState:
    chat_id: int
    server: ServerRef
    last_query_time: datetime
    server_data: ServerStatus | None


@dataclass(frozen=True, slots=True)
class ChatSettings:
    """What a chat set up: its language (None: each user's own, from Telegram) and its default server
    (None: /status alone uses the last server asked about)."""

    language: str | None = None
    default_server: ServerRef | None = None


@dataclass(frozen=True, slots=True)
class Sample:
    """What one check of a watched server saw, as history keeps it: when (epoch seconds), online or not,
    and for an online server its players (online, max) and latency."""

    at: int
    online: bool
    players: int | None = None
    max_players: int | None = None
    latency_ms: float | None = None


@dataclass(frozen=True, slots=True)
class StoredServer:
    server: ServerRef
    status: ServerStatus
    stored_at: datetime


Doc = dict[str, Any]
"""A document: JSON-compatible values only (str, int, float, bool, None, lists and dicts of them)."""


@dataclass(frozen=True, slots=True)
class Versioned:
    """A document as stored, with its version (1 after the first write, one more per write)."""

    doc: Doc
    version: int


class ClaimResult(StrEnum):
    CLAIMED = "claimed"  # this replica handles it now
    DUPLICATE = "duplicate"  # handled before: acknowledge, do nothing
    BUSY = "busy"  # another replica is handling it right now: let Telegram retry later


class StateStore(Protocol):
    """One backend. Every method may raise; the caller (ResilientStore) decides what a failure means."""

    backend: str

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> None: ...

    async def get_chat(self, chat_id: int) -> ChatState | None: ...
    async def save_chat(self, chat_id: int, server: ServerRef, status: ServerStatus | None) -> None: ...

    async def get_server(self, server: ServerRef) -> StoredServer | None: ...
    async def save_server(self, server: ServerRef, status: ServerStatus) -> None: ...

    async def save_status(self, chat_id: int, server: ServerRef, status: ServerStatus) -> None:
        """`save_server(server, status)` and `save_chat(chat_id, server, status)` in one call (one commit,
        one round trip): what a fresh status answer writes."""
        ...

    async def get_settings(self, chat_id: int) -> ChatSettings | None: ...
    async def save_settings(self, chat_id: int, settings: ChatSettings) -> None: ...

    async def get_ref(self, ref: str) -> ServerRef | None: ...
    async def put_ref(self, ref: str, server: ServerRef) -> None: ...

    async def claim_update(self, update_id: int, lease_seconds: float, token: str) -> ClaimResult:
        """Claim `update_id` for `lease_seconds`. `token` names this attempt: a retry of the same call
        (e.g. after a timeout whose write did land) finds its own claim and gets CLAIMED again.
        Claims are the store's bot's (`bot_id`): two bots on one store never see each other's."""
        ...

    async def finish_update(self, update_id: int) -> None: ...
    async def release_update(self, update_id: int) -> None: ...

    async def add_sample(self, server: ServerRef, sample: Sample, keep: timedelta) -> None:
        """Record one history sample of `server`, kept for `keep` (older ones expire)."""
        ...

    async def samples(self, server: ServerRef, since: int, until: int) -> list[Sample]:
        """The samples of `server` taken in [since, until] (epoch seconds), oldest first."""
        ...

    async def get_doc(self, key: str) -> Versioned | None: ...
    async def get_docs(self, keys: Sequence[str]) -> dict[str, Versioned]:
        """The documents under `keys` (any number, repeats allowed), read together: those that exist,
        by key; what `get_doc` answers for each, in as few round trips as the backend allows."""
        ...

    async def put_doc(self, key: str, doc: Doc, expected: int) -> bool:
        """Write `doc` under `key` as version `expected + 1` if the stored version is `expected` (0: the
        key must not exist yet); False, writing nothing, when another writer came first."""
        ...

    async def delete_doc(self, key: str, expected: int) -> bool:
        """Delete `key` if its stored version is `expected`; False when it is not (or is gone)."""
        ...


def claim_key(bot_id: str, update_id: int) -> str:
    """The key of an update claim: the bot's id and the update_id (any size: Telegram's ids are not
    bounded to 64 bits by anything the bot can check, and a forged webhook body can say anything)."""
    return f"{bot_id}:{update_id}" if bot_id else str(update_id)
