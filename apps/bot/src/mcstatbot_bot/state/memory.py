"""The in-memory backend: for tests and single-process use; forgets everything on restart."""

from __future__ import annotations

import bisect
import json
import time
from typing import TYPE_CHECKING

from mcstatbot_bot.state.base import (
    ChatSettings,
    ChatState,
    ClaimResult,
    Doc,
    Sample,
    ServerRef,
    StoredServer,
    Versioned,
    claim_key,
    utc_now,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import timedelta

    from mcstatbot_common.models import ServerStatus

_MAX_UPDATES = 100_000


class MemoryStore:
    backend = "memory"

    def __init__(self, *, bot_id: str = "") -> None:
        self.bot_id = bot_id
        self._chats: dict[int, ChatState] = {}
        self._servers: dict[str, StoredServer] = {}
        self._refs: dict[str, ServerRef] = {}
        self._settings: dict[int, ChatSettings] = {}
        self._updates: dict[str, tuple[str, float, str]] = {}
        self._docs: dict[str, tuple[str, int]] = {}  # JSON text: a caller never shares the stored dict
        self._history: dict[str, list[Sample]] = {}  # per server, oldest first

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    async def get_chat(self, chat_id: int) -> ChatState | None:
        return self._chats.get(chat_id)

    async def save_chat(self, chat_id: int, server: ServerRef, status: ServerStatus | None) -> None:
        self._chats[chat_id] = ChatState(chat_id, server, utc_now(), status)

    async def get_server(self, server: ServerRef) -> StoredServer | None:
        return self._servers.get(server.key)

    async def save_server(self, server: ServerRef, status: ServerStatus) -> None:
        self._servers[server.key] = StoredServer(server, status, utc_now())

    async def save_status(self, chat_id: int, server: ServerRef, status: ServerStatus) -> None:
        now = utc_now()
        self._servers[server.key] = StoredServer(server, status, now)
        self._chats[chat_id] = ChatState(chat_id, server, now, status)

    async def get_settings(self, chat_id: int) -> ChatSettings | None:
        return self._settings.get(chat_id)

    async def save_settings(self, chat_id: int, settings: ChatSettings) -> None:
        self._settings[chat_id] = settings

    async def get_ref(self, ref: str) -> ServerRef | None:
        return self._refs.get(ref)

    async def put_ref(self, ref: str, server: ServerRef) -> None:
        self._refs[ref] = server

    async def claim_update(self, update_id: int, lease_seconds: float, token: str) -> ClaimResult:
        now = time.time()
        key = claim_key(self.bot_id, update_id)
        existing = self._updates.get(key)
        if existing is not None:
            status, lease_until, owner = existing
            if status == "done":
                return ClaimResult.DUPLICATE
            if lease_until > now and owner != token:
                return ClaimResult.BUSY
        self._updates[key] = ("processing", now + lease_seconds, token)
        return ClaimResult.CLAIMED

    async def finish_update(self, update_id: int) -> None:
        self._updates[claim_key(self.bot_id, update_id)] = ("done", float("inf"), "")
        if len(self._updates) > _MAX_UPDATES:  # forget the oldest half; Telegram redelivers within hours
            for old in list(self._updates)[: _MAX_UPDATES // 2]:
                del self._updates[old]

    async def release_update(self, update_id: int) -> None:
        self._updates.pop(claim_key(self.bot_id, update_id), None)

    async def get_doc(self, key: str) -> Versioned | None:
        found = self._docs.get(key)
        return None if found is None else Versioned(json.loads(found[0]), found[1])

    async def get_docs(self, keys: Sequence[str]) -> dict[str, Versioned]:
        found = {key: await self.get_doc(key) for key in dict.fromkeys(keys)}
        return {key: doc for key, doc in found.items() if doc is not None}

    async def put_doc(self, key: str, doc: Doc, expected: int) -> bool:
        found = self._docs.get(key)
        if (found[1] if found else 0) != expected:
            return False
        self._docs[key] = (json.dumps(doc), expected + 1)
        return True

    async def delete_doc(self, key: str, expected: int) -> bool:
        found = self._docs.get(key)
        if found is None or found[1] != expected:
            return False
        del self._docs[key]
        return True

    async def add_sample(self, server: ServerRef, sample: Sample, keep: timedelta) -> None:
        kept = self._history.setdefault(server.key, [])
        bisect.insort(kept, sample, key=lambda s: s.at)
        oldest = int(time.time() - keep.total_seconds())
        if kept[0].at < oldest:
            del kept[: bisect.bisect_left(kept, oldest, key=lambda s: s.at)]

    async def samples(self, server: ServerRef, since: int, until: int) -> list[Sample]:
        kept = self._history.get(server.key, [])
        start = bisect.bisect_left(kept, since, key=lambda s: s.at)
        end = bisect.bisect_right(kept, until, key=lambda s: s.at)
        return kept[start:end]
