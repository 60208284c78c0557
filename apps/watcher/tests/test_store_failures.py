"""A real watcher process whose state store cannot read a server's watches: the check is skipped (no
verdict, no alert from half a read), logged, and counted as `outcome="store_failed"`, which is how an
operator (and the benchmark) tells a slot missed for the store from one missed for the schedule."""

from __future__ import annotations

import contextlib
import sqlite3
from typing import TYPE_CHECKING

from mcstatbot_testkit.watching import WatchStack, ask, checks, wait_checks

if TYPE_CHECKING:
    from mcstatbot_testkit.minecraft import JavaPeer
    from mcstatbot_testkit.telegram import BotApiServer


def test_a_check_whose_watches_cannot_be_read_is_skipped_and_counted(
    stack: WatchStack, api: BotApiServer, peer: JavaPeer
) -> None:
    stack.bot()
    watcher = stack.watcher()
    assert "Watching" in ask(api, 621, f"/watch {peer.address}")
    wait_checks(watcher, "up")
    assert checks(watcher, "store_failed") == 0
    # the server's chat list made unreadable in the shared file (the index still names the server)
    with contextlib.closing(sqlite3.connect(stack.tmp_path / "state.db", timeout=10)) as db, db:
        db.execute("UPDATE docs SET doc = 'not JSON' WHERE key LIKE 'watch#%'")
    wait_checks(watcher, "store_failed", 1)
    up = checks(watcher, "up")
    wait_checks(watcher, "store_failed", 2)  # a later slot: skipped again, not checked
    assert checks(watcher, "up") == up
