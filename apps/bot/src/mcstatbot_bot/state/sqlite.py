"""The SQLite backend (aiosqlite): the local default; survives restarts; several processes may share
the file (WAL, busy timeout), so two bot instances deduplicate updates through it too, and two watcher
replicas share their records.

Sharing the file needs every statement to meet the busy timeout, which SQLite only applies to a
transaction that takes the write lock before it reads: a write on a connection that still holds a read
snapshot (a SELECT of another task on the same connection, stepped but not yet reset) fails at once with
`database is locked` whenever another process holds the write lock or has written since. So the one
connection runs one operation at a time (`_lock`; aiosqlite's thread would otherwise interleave the
steps of concurrent tasks), reads are fetched in one step, the connection is in autocommit mode (no
implicit BEGIN), and an operation of several statements is one `BEGIN IMMEDIATE` transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiosqlite
from mcstatbot_common.models import Edition, ServerStatus

from mcstatbot_bot.state.base import (
    UPDATE_TTL,
    ChatSettings,
    ChatState,
    ClaimResult,
    Doc,
    Sample,
    ServerRef,
    StoredServer,
    Versioned,
    iso,
    parse_iso,
    utc_now,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chats (
    chat_id INTEGER PRIMARY KEY,
    last_url TEXT NOT NULL,
    edition TEXT NOT NULL,
    last_query_time TEXT NOT NULL,
    server_data TEXT
);
CREATE TABLE IF NOT EXISTS servers (
    key TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    edition TEXT NOT NULL,
    server_data TEXT NOT NULL,
    stored_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chat_settings (
    chat_id INTEGER PRIMARY KEY,
    language TEXT,
    default_address TEXT,
    default_edition TEXT
);
CREATE TABLE IF NOT EXISTS refs (
    ref TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    edition TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS updates (
    bot_id TEXT NOT NULL DEFAULT '',
    update_id TEXT NOT NULL,
    status TEXT NOT NULL,
    lease_until REAL NOT NULL,
    updated_at REAL NOT NULL,
    owner TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (bot_id, update_id)
);
CREATE TABLE IF NOT EXISTS docs (
    key TEXT PRIMARY KEY,
    doc TEXT NOT NULL,
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    server TEXT NOT NULL,
    at INTEGER NOT NULL,
    online INTEGER NOT NULL,
    players INTEGER,
    max_players INTEGER,
    latency_ms REAL,
    PRIMARY KEY (server, at)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS history_at ON history (at);
"""
# update_id is TEXT: an id beyond SQLite's 64-bit INTEGER must not overflow the claim.


if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from datetime import timedelta

_PRUNE_EVERY_SECONDS = 60.0
_SAVE_CHAT = (
    "INSERT OR REPLACE INTO chats (chat_id, last_url, edition, last_query_time, server_data) "
    "VALUES (?, ?, ?, ?, ?)"
)
_ADD_SAMPLE = (
    "INSERT OR REPLACE INTO history (server, at, online, players, max_players, latency_ms) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_SAVE_SERVER = (
    "INSERT OR REPLACE INTO servers (key, address, edition, server_data, stored_at) VALUES (?, ?, ?, ?, ?)"
)

DOCS_PER_SELECT = 500
"""Keys per SELECT of `get_docs` (SQLite allows 999 parameters per statement in its oldest builds)."""


class SqliteStore:
    backend = "sqlite"

    def __init__(self, path: str, *, bot_id: str = "") -> None:
        self.path = path
        self.bot_id = bot_id
        self._db: aiosqlite.Connection | None = None
        self._next_prune = 0.0
        self._next_history_prune = 0.0
        self._lock = asyncio.Lock()
        """One operation at a time on the connection (see the module's docstring)."""

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("the SQLite store is not open")
        return self._db

    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: autocommit, each transaction begun by `_transaction` (BEGIN IMMEDIATE)
        self._db = await aiosqlite.connect(self.path, timeout=10.0, isolation_level=None)
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA busy_timeout=10000")
        # WAL's usual setting: a commit is not synced to disk (a checkpoint is), so each of the many
        # one-statement transactions costs no fsync; an application crash loses nothing, a power
        # loss at most the last commits, and the file stays consistent either way
        await self._db.execute("PRAGMA synchronous=NORMAL")
        async with self._db.execute("PRAGMA table_info(updates)") as cursor:
            columns = {row[1] for row in await cursor.fetchall()}
        if columns and "bot_id" not in columns:  # a file from before claims were the bot's: a day's cache
            await self._db.execute("DROP TABLE updates")
        await self._db.executescript(_SCHEMA)

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        """A read, fetched whole in one step of aiosqlite's thread (no snapshot left open)."""
        async with self._lock:
            return list(await self.db.execute_fetchall(sql, args))

    async def _row(self, sql: str, args: Sequence[Any] = ()) -> Any:
        rows = await self._rows(sql, args)
        return rows[0] if rows else None

    async def _write(self, sql: str, args: Sequence[Any] = ()) -> int:
        """One statement, a transaction of its own (autocommit: the busy timeout applies); its row count."""
        async with self._lock:
            cursor = await self.db.execute(sql, args)
            return cursor.rowcount  # a write's cursor holds nothing open: no close (a step) needed

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """Several statements as one transaction that holds the write lock from its start (BEGIN
        IMMEDIATE waits out the busy timeout); rolled back on any failure, never left for the next."""
        async with self._lock:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
                await self.db.commit()
            except BaseException:
                await self.db.rollback()
                raise

    async def _write_then_prune(
        self, write: tuple[str, Sequence[Any]], prune: tuple[str, Sequence[Any]] | None
    ) -> None:
        """`write` alone (autocommit), or with `prune` after it as one transaction."""
        if prune is None:
            await self._write(*write)
            return
        async with self._transaction() as db:
            await db.execute(*write)
            await db.execute(*prune)

    async def ping(self) -> None:
        await self._rows("SELECT 1")

    async def get_chat(self, chat_id: int) -> ChatState | None:
        row = await self._row(
            "SELECT last_url, edition, last_query_time, server_data FROM chats WHERE chat_id = ?", (chat_id,)
        )
        if row is None:
            return None
        data = ServerStatus.model_validate_json(row[3]) if row[3] else None
        return ChatState(chat_id, ServerRef(row[0], Edition(row[1])), parse_iso(row[2]), data)

    async def save_chat(self, chat_id: int, server: ServerRef, status: ServerStatus | None) -> None:
        await self._write(
            _SAVE_CHAT, (chat_id, server.address, server.edition.value, iso(utc_now()), _json(status))
        )

    async def get_server(self, server: ServerRef) -> StoredServer | None:
        row = await self._row("SELECT server_data, stored_at FROM servers WHERE key = ?", (server.key,))
        if row is None:
            return None
        return StoredServer(server, ServerStatus.model_validate_json(row[0]), parse_iso(row[1]))

    async def save_server(self, server: ServerRef, status: ServerStatus) -> None:
        await self._write(
            _SAVE_SERVER,
            (server.key, server.address, server.edition.value, status.model_dump_json(), iso(utc_now())),
        )

    async def save_status(self, chat_id: int, server: ServerRef, status: ServerStatus) -> None:
        data, now = status.model_dump_json(), iso(utc_now())
        async with self._transaction() as db:  # one transaction, one commit, never half of it
            await db.execute(_SAVE_SERVER, (server.key, server.address, server.edition.value, data, now))
            await db.execute(_SAVE_CHAT, (chat_id, server.address, server.edition.value, now, data))

    async def get_settings(self, chat_id: int) -> ChatSettings | None:
        row = await self._row(
            "SELECT language, default_address, default_edition FROM chat_settings WHERE chat_id = ?",
            (chat_id,),
        )
        if row is None:
            return None
        server = ServerRef(row[1], Edition(row[2] or Edition.AUTO.value)) if row[1] else None
        return ChatSettings(row[0], server)

    async def save_settings(self, chat_id: int, settings: ChatSettings) -> None:
        server = settings.default_server
        await self._write(
            "INSERT OR REPLACE INTO chat_settings (chat_id, language, default_address, default_edition) "
            "VALUES (?, ?, ?, ?)",
            (
                chat_id,
                settings.language,
                server.address if server else None,
                server.edition.value if server else None,
            ),
        )

    async def get_ref(self, ref: str) -> ServerRef | None:
        row = await self._row("SELECT address, edition FROM refs WHERE ref = ?", (ref,))
        return None if row is None else ServerRef(row[0], Edition(row[1]))

    async def put_ref(self, ref: str, server: ServerRef) -> None:
        await self._write(
            "INSERT OR REPLACE INTO refs (ref, address, edition) VALUES (?, ?, ?)",
            (ref, server.address, server.edition.value),
        )

    async def claim_update(self, update_id: int, lease_seconds: float, token: str) -> ClaimResult:
        now = time.time()
        # One statement: insert, or take over an expired claim (its replica died), or find our own
        # claim again (a retried call); atomic in SQLite, also across processes sharing the file.
        rows = await self._write(
            "INSERT INTO updates (bot_id, update_id, status, lease_until, updated_at, owner) "
            "VALUES (?, ?, 'processing', ?, ?, ?) "
            "ON CONFLICT (bot_id, update_id) DO UPDATE SET status = 'processing', "
            "lease_until = excluded.lease_until, updated_at = excluded.updated_at, owner = excluded.owner "
            "WHERE updates.status = 'processing' AND (updates.lease_until < ? OR updates.owner = ?)",
            (self.bot_id, str(update_id), now + lease_seconds, now, token, now, token),
        )
        if rows == 1:
            return ClaimResult.CLAIMED
        row = await self._row(
            "SELECT status FROM updates WHERE bot_id = ? AND update_id = ?", (self.bot_id, str(update_id))
        )
        if row is None:  # released in between: try once more
            return await self.claim_update(update_id, lease_seconds, token)
        return ClaimResult.DUPLICATE if row[0] == "done" else ClaimResult.BUSY

    async def finish_update(self, update_id: int) -> None:
        now = time.time()
        done = (
            "UPDATE updates SET status = 'done', updated_at = ? WHERE bot_id = ? AND update_id = ?",
            (now, self.bot_id, str(update_id)),
        )
        prune = now >= self._next_prune
        if prune:  # a scan of the whole table: once a minute, not per update
            self._next_prune = now + _PRUNE_EVERY_SECONDS
        old = ("DELETE FROM updates WHERE updated_at < ?", (now - UPDATE_TTL.total_seconds(),))
        await self._write_then_prune(done, old if prune else None)

    async def release_update(self, update_id: int) -> None:
        await self._write(
            "DELETE FROM updates WHERE bot_id = ? AND update_id = ? AND status = 'processing'",
            (self.bot_id, str(update_id)),
        )

    async def get_doc(self, key: str) -> Versioned | None:
        row = await self._row("SELECT doc, version FROM docs WHERE key = ?", (key,))
        return None if row is None else Versioned(json.loads(row[0]), int(row[1]))

    async def get_docs(self, keys: Sequence[str]) -> dict[str, Versioned]:
        """One SELECT per DOCS_PER_SELECT keys (each a read of its own: no snapshot held across them)."""
        unique = list(dict.fromkeys(keys))
        found: dict[str, Versioned] = {}
        for start in range(0, len(unique), DOCS_PER_SELECT):
            chunk = unique[start : start + DOCS_PER_SELECT]
            marks = ",".join("?" * len(chunk))
            for key, doc, version in await self._rows(
                f"SELECT key, doc, version FROM docs WHERE key IN ({marks})",  # noqa: S608 - only ?s
                chunk,
            ):
                found[key] = Versioned(json.loads(doc), int(version))
        return found

    async def put_doc(self, key: str, doc: Doc, expected: int) -> bool:
        text = json.dumps(doc, separators=(",", ":"))
        if expected == 0:
            sql, args = "INSERT OR IGNORE INTO docs (key, doc, version) VALUES (?, ?, 1)", (key, text)
        else:
            sql = "UPDATE docs SET doc = ?, version = version + 1 WHERE key = ? AND version = ?"
            args = (text, key, expected)  # type: ignore[assignment]
        return await self._write(sql, args) == 1

    async def delete_doc(self, key: str, expected: int) -> bool:
        return await self._write("DELETE FROM docs WHERE key = ? AND version = ?", (key, expected)) == 1

    async def add_sample(self, server: ServerRef, sample: Sample, keep: timedelta) -> None:
        now = time.time()
        insert = (
            _ADD_SAMPLE,
            (
                server.key,
                sample.at,
                int(sample.online),
                sample.players,
                sample.max_players,
                sample.latency_ms,
            ),
        )
        prune = now >= self._next_history_prune
        if prune:  # by the index on `at`, at most once a minute
            self._next_history_prune = now + _PRUNE_EVERY_SECONDS
        old = ("DELETE FROM history WHERE at < ?", (int(now - keep.total_seconds()),))
        await self._write_then_prune(insert, old if prune else None)

    async def samples(self, server: ServerRef, since: int, until: int) -> list[Sample]:
        rows = await self._rows(
            "SELECT at, online, players, max_players, latency_ms FROM history "
            "WHERE server = ? AND at BETWEEN ? AND ? ORDER BY at",
            (server.key, since, until),
        )
        return [Sample(int(r[0]), bool(r[1]), r[2], r[3], r[4]) for r in rows]


def _json(status: ServerStatus | None) -> str | None:
    return status.model_dump_json() if status is not None else None
