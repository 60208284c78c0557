"""Watches as state-store documents, written by the bot (/watch, /unwatch) and read by the watcher.

Keys (docs/bot-service.md):

- `watches#<chat id>`: the chat's watches, `{"watches": {<server key>: {"address", "edition",
  "players", "added"}}, "lives": {<message id>: {"address", "edition"}}}`: what /watches lists and what
  the per-chat limit counts (watches and live cards together);
- `watch#<server key>`: who watches a server, `{"address", "edition", "chats": {<chat id>: {"players"}},
  "lives": {"<chat id>:<message id>": {"chat", "message"}}}`: the watcher's fan-out list and live cards,
  one read per check however many chats watch;
- `watching#<shard>` (16 shards by a hash of the server key): the index of watched servers,
  `{"servers": {<server key>: {"address", "edition"}}}`: the watcher lists every watched server with 16
  reads and no table scan, and no single item grows past DynamoDB's 400 KB;
- `check#<server key>`: the watcher's record of a server (mcstatbot_watcher.checks).

Writes go chat first, then server, then index, so a crash between them leaves at most an index entry or
a server entry with no chat behind it, which the watcher prunes (`prune_server`).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from mcstatbot_common.models import Edition

from mcstatbot_bot.state.base import Doc, ServerRef, Versioned, iso, utc_now

if TYPE_CHECKING:
    from mcstatbot_bot.state.resilient import ResilientStore

INDEX_SHARDS = 16


def chat_key(chat_id: int) -> str:
    return f"watches#{chat_id}"


def server_key(server: ServerRef) -> str:
    return f"watch#{server.key}"


def check_key(server: ServerRef) -> str:
    return f"check#{server.key}"


def index_key(server: ServerRef) -> str:
    return f"watching#{zlib.crc32(server.key.encode()) % INDEX_SHARDS}"


def _ref(entry: Doc) -> ServerRef:
    return ServerRef(str(entry["address"]), Edition(str(entry.get("edition", "auto"))))


@dataclass(frozen=True, slots=True)
class Watch:
    server: ServerRef
    players: bool


class AddResult(StrEnum):
    ADDED = "added"
    CHANGED = "changed"  # watched before; `players` changed
    UNCHANGED = "unchanged"
    LIMIT = "limit"


async def add_watch(
    store: ResilientStore, chat_id: int, server: ServerRef, *, players: bool, limit: int
) -> AddResult:
    result = AddResult.ADDED

    def add(doc: Doc | None) -> Doc | None:
        nonlocal result
        doc = doc or {"watches": {}}
        watches: dict[str, Doc] = doc["watches"]
        existing = watches.get(server.key)
        if existing is None and len(watches) + len(doc.get("lives", {})) >= limit:
            result = AddResult.LIMIT
            return doc
        if existing is not None:
            result = AddResult.UNCHANGED if bool(existing.get("players")) == players else AddResult.CHANGED
            existing["players"] = players
            return doc
        result = AddResult.ADDED
        watches[server.key] = {
            "address": server.address,
            "edition": server.edition.value,
            "players": players,
            "added": iso(utc_now()),
        }
        return doc

    await store.update_doc(chat_key(chat_id), add)
    if result is AddResult.LIMIT:
        return result

    def add_chat(doc: Doc | None) -> Doc:
        doc = doc or {"address": server.address, "edition": server.edition.value, "chats": {}}
        doc["chats"][str(chat_id)] = {"players": players}
        return doc

    await store.update_doc(server_key(server), add_chat)

    await store.update_doc(index_key(server), lambda doc: _indexed(doc, server))
    return result


async def remove_watch(store: ResilientStore, chat_id: int, server: ServerRef) -> bool:
    """Forget this chat's watch of `server`; False when it had none. The index entry stays until the
    watcher finds nobody left watching (`prune_server`)."""
    removed = False

    def drop(doc: Doc | None) -> Doc | None:
        nonlocal removed
        if doc is None or server.key not in doc["watches"]:
            return doc
        removed = True
        del doc["watches"][server.key]
        return doc if doc["watches"] or doc.get("lives") else None

    await store.update_doc(chat_key(chat_id), drop)

    def drop_chat(doc: Doc | None) -> Doc | None:
        if doc is None:
            return None
        doc["chats"].pop(str(chat_id), None)
        return doc

    await store.update_doc(server_key(server), drop_chat)
    return removed


async def chat_watches(store: ResilientStore, chat_id: int) -> list[Watch]:
    found = await store.get_doc(chat_key(chat_id))
    if found is None:
        return []
    return [Watch(_ref(entry), bool(entry.get("players"))) for entry in found.doc["watches"].values()]


async def watchers(store: ResilientStore, server: ServerRef) -> dict[int, bool]:
    """The chats watching `server`, each with whether it wants joins and leaves."""
    found = await store.get_doc(server_key(server))
    if found is None:
        return {}
    return {int(chat): bool(entry.get("players")) for chat, entry in found.doc["chats"].items()}


async def watched_servers(store: ResilientStore) -> list[ServerRef]:
    servers: list[ServerRef] = []
    for shard in range(INDEX_SHARDS):
        found = await store.get_doc(f"watching#{shard}")
        if found is not None:
            servers.extend(_ref(entry) for entry in found.doc["servers"].values())
    return servers


async def prune_server(store: ResilientStore, server: ServerRef) -> bool:
    """Take `server` out of the index when nobody watches it (True), and its records with it. A /watch
    racing with this puts it back: the chat list is read again after the index entry went."""
    found = await store.get_doc(server_key(server))
    if found is not None and (found.doc["chats"] or found.doc.get("lives")):
        return False

    def unindex(doc: Doc | None) -> Doc | None:
        if doc is None:
            return None
        doc["servers"].pop(server.key, None)
        return doc if doc["servers"] else None

    await store.update_doc(index_key(server), unindex)
    # delete the chat list only while it is empty: a /watch that came in between keeps it, and the
    # server goes back into the index
    left = await store.update_doc(
        server_key(server), lambda doc: doc if doc and (doc["chats"] or doc.get("lives")) else None
    )
    if left is not None:
        await store.update_doc(index_key(server), lambda doc: _indexed(doc, server))
        return False
    await store.update_doc(check_key(server), lambda _: None)
    return True


def _indexed(doc: Doc | None, server: ServerRef) -> Doc:
    doc = doc or {"servers": {}}
    doc["servers"].setdefault(server.key, {"address": server.address, "edition": server.edition.value})
    return doc


async def drop_chat_watch(store: ResilientStore, chat_id: int, server: ServerRef) -> None:
    """The chat cannot be written to any more (the bot was blocked, the chat is gone): forget its watch."""
    await remove_watch(store, chat_id, server)


@dataclass(frozen=True, slots=True)
class LiveCard:
    chat_id: int
    message_id: int
    server: ServerRef

    @property
    def key(self) -> str:
        return f"{self.chat_id}:{self.message_id}"


async def chat_entries(store: ResilientStore, chat_id: int) -> int:
    """How many watches and live cards the chat has (what the limit counts)."""
    found = await store.get_doc(chat_key(chat_id))
    return 0 if found is None else len(found.doc["watches"]) + len(found.doc.get("lives", {}))


async def add_live(store: ResilientStore, card: LiveCard, shown: str) -> None:
    """Record a live card the bot just posted, with the text it showed (the watcher edits it only when
    what it would show differs)."""
    server = card.server
    entry = {"address": server.address, "edition": server.edition.value}

    def add(doc: Doc | None) -> Doc:
        doc = doc or {"watches": {}}
        doc.setdefault("lives", {})[str(card.message_id)] = entry
        return doc

    await store.update_doc(chat_key(card.chat_id), add)

    def add_card(doc: Doc | None) -> Doc:
        doc = doc or {**entry, "chats": {}}
        doc.setdefault("lives", {})[card.key] = {
            "chat": card.chat_id,
            "message": card.message_id,
            "shown": shown,
        }
        return doc

    await store.update_doc(server_key(server), add_card)
    await store.update_doc(index_key(server), lambda doc: _indexed(doc, server))


async def server_watch(
    store: ResilientStore, server: ServerRef
) -> tuple[dict[int, bool], dict[LiveCard, str]]:
    """One read: the chats watching `server` (with whether they want joins and leaves) and its live
    cards (with the text the bot first showed on each)."""
    return watch_of(server, await store.get_doc(server_key(server)))


def watch_of(server: ServerRef, found: Versioned | None) -> tuple[dict[int, bool], dict[LiveCard, str]]:
    """What `server_watch` answers, from the `watch#` document read already (`get_docs`)."""
    if found is None:
        return {}, {}
    chats = {int(chat): bool(entry.get("players")) for chat, entry in found.doc["chats"].items()}
    cards = {
        LiveCard(int(entry["chat"]), int(entry["message"]), server): str(entry.get("shown", ""))
        for entry in found.doc.get("lives", {}).values()
    }
    return chats, cards


async def remove_live(store: ResilientStore, card: LiveCard) -> None:
    def drop(doc: Doc | None) -> Doc | None:
        if doc is None:
            return None
        doc.get("lives", {}).pop(str(card.message_id), None)
        return doc if doc["watches"] or doc.get("lives") else None

    await store.update_doc(chat_key(card.chat_id), drop)

    def drop_card(doc: Doc | None) -> Doc | None:
        if doc is None:
            return None
        doc.get("lives", {}).pop(card.key, None)
        return doc

    await store.update_doc(server_key(card.server), drop_card)


async def chat_lives(store: ResilientStore, chat_id: int) -> list[LiveCard]:
    found = await store.get_doc(chat_key(chat_id))
    if found is None:
        return []
    return [
        LiveCard(chat_id, int(message), _ref(entry)) for message, entry in found.doc.get("lives", {}).items()
    ]
