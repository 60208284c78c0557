"""Several processes on one SQLite state file (two bot instances, two watcher replicas): no operation fails
with `database is locked` while another writes; it waits for the write lock (the busy timeout).

Each store here is its own connection to a real file: SQLite's locks are between connections, the same
within one process as across two (aiosqlite gives each connection its own thread)."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import TYPE_CHECKING

import aiosqlite
from mcstatbot_bot.state.base import Sample, ServerRef
from mcstatbot_bot.state.sqlite import SqliteStore
from mcstatbot_common.models import Edition

if TYPE_CHECKING:
    from pathlib import Path

KEEP = timedelta(days=30)
SERVERS = 40
NOW = int(time.time())
"""Where the samples' times start (an older one would be pruned as past KEEP)."""


async def test_a_write_beside_a_read_waits_for_another_writer(tmp_path: Path) -> None:
    """A task's write queued on the connection while another task's read is still open on it: the write
    must wait for the other process's write lock like any other, not fail at once (a transaction that
    holds a read snapshot gets no busy timeout from SQLite)."""
    path = str(tmp_path / "state.db")
    store = SqliteStore(path)
    await store.open()
    other = await aiosqlite.connect(path, isolation_level=None)  # another process, writing
    try:
        assert await store.put_doc("server#a", {"chats": {"1": {}}}, 0)
        await other.execute("BEGIN IMMEDIATE")
        await other.execute("UPDATE docs SET doc = doc WHERE key = 'server#a'")

        async def commit_later() -> None:
            await asyncio.sleep(0.5)
            await other.commit()

        read, written, _ = await asyncio.gather(
            store.get_doc("server#a"), store.put_doc("check#a", {"state": "up"}, 0), commit_later()
        )
        assert read is not None
        assert read.doc == {"chats": {"1": {}}}
        assert written
        found = await store.get_doc("check#a")
        assert found is not None
        assert found.doc == {"state": "up"}
    finally:
        await other.close()
        await store.close()


async def _check(store: SqliteStore, n: int) -> None:
    """What one watcher check does to the store: the watch read, the history sample, the record
    read and written with compare-and-set (again from a fresh read when the other replica came first)."""
    key = n % SERVERS
    server = ServerRef(f"127.0.0.1:{20_000 + key}", Edition.JAVA)
    assert await store.get_doc(f"server#{key}") is not None
    await store.add_sample(server, Sample(NOW + n, True, 1, 20, 1.0), KEEP)
    while True:
        found = await store.get_doc(f"check#{key}")
        version = 0 if found is None else found.version
        checks = 0 if found is None else int(found.doc["checks"])
        if await store.put_doc(f"check#{key}", {"checks": checks + 1}, version):
            return


async def _replica(store: SqliteStore, first: int, seconds: float) -> int:
    """Checks started a few at a time beside the ones in flight, as the watcher's groups are, for
    `seconds`; how many were made."""
    tasks: list[asyncio.Task[None]] = []
    end = time.monotonic() + seconds
    n = first
    while time.monotonic() < end:
        for _ in range(5):
            tasks.append(asyncio.create_task(_check(store, n)))
            n += 1
        await asyncio.sleep(0.01)
    await asyncio.gather(*tasks)  # any `database is locked` is raised here
    return n - first


async def test_two_watchers_on_one_file_lose_no_operation(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    stores = [SqliteStore(path), SqliteStore(path)]
    for store in stores:
        await store.open()
    try:
        for key in range(SERVERS):
            await stores[0].put_doc(f"server#{key}", {"chats": {"1": {"players": False}}}, 0)
        made = await asyncio.gather(_replica(stores[0], 0, 1.0), _replica(stores[1], 1_000_000, 1.0))
        counted = 0
        for key in range(SERVERS):
            found = await stores[1].get_doc(f"check#{key}")
            counted += 0 if found is None else int(found.doc["checks"])
        assert counted == sum(made)  # every record write landed, none lost to the other replica
        samples = [
            await stores[0].samples(
                ServerRef(f"127.0.0.1:{20_000 + key}", Edition.JAVA), NOW, NOW + 2_000_000
            )
            for key in range(SERVERS)
        ]
        assert sum(len(each) for each in samples) == sum(made)
    finally:
        for store in stores:
            await store.close()
