"""The servers a chat asked about recently (for /servers): one state-store document per chat,
`recent#<chat id>`: `{"servers": [{"address", "edition", "at"}]}`, the most recent first, at most
RECENT_MAX, each forgotten RECENT_DAYS after it was last asked about. A document like the watch records,
so every backend (memory, SQLite, DynamoDB) keeps it through `ResilientStore.update_doc`.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import TYPE_CHECKING

from mcstatbot_common.models import Edition

from mcstatbot_bot.state.base import Doc, ServerRef, iso, parse_iso, utc_now
from mcstatbot_bot.state.resilient import StoreFailedError

if TYPE_CHECKING:
    from mcstatbot_bot.state.resilient import ResilientStore

RECENT_MAX = 8
RECENT_DAYS = 7
REFRESH_SECONDS = 3600
"""A server asked about again within this time, already first in the list: nothing is written."""


def recent_key(chat_id: int) -> str:
    return f"recent#{chat_id}"


async def remember(store: ResilientStore, chat_id: int, server: ServerRef) -> None:
    """`server` becomes the chat's most recent (one write, none when it already is, recently). A store
    that keeps failing costs only this (the reply goes on)."""
    now = utc_now()

    def change(doc: Doc | None) -> Doc:
        entries: list[Doc] = list((doc or {}).get("servers", []))
        first = entries[0] if entries else None
        if (
            doc is not None
            and first is not None
            and first["address"] == server.address
            and first["edition"] == server.edition.value
            and (now - parse_iso(str(first["at"]))).total_seconds() < REFRESH_SECONDS
        ):
            return doc
        kept = [e for e in entries if (e["address"], e["edition"]) != (server.address, server.edition.value)]
        entry = {"address": server.address, "edition": server.edition.value, "at": iso(now)}
        return {"servers": [entry, *kept][:RECENT_MAX]}

    with contextlib.suppress(StoreFailedError):
        await store.update_doc(recent_key(chat_id), change)


async def recent_servers(store: ResilientStore, chat_id: int) -> list[ServerRef]:
    """The chat's recent servers, the most recent first, none older than RECENT_DAYS."""
    found = await store.get_doc(recent_key(chat_id))
    if found is None:
        return []
    oldest = utc_now() - timedelta(days=RECENT_DAYS)
    return [
        ServerRef(str(e["address"]), Edition(str(e["edition"])))
        for e in found.doc.get("servers", [])
        if parse_iso(str(e["at"])) >= oldest
    ]
