"""The check loop ends when the service stops, also when the cancellation of its task is lost."""

from __future__ import annotations

import asyncio

import httpx
from mcstatbot_bot.breaker import CircuitBreaker
from mcstatbot_bot.query_client import QueryClient
from mcstatbot_bot.state import build_store
from mcstatbot_bot.telegram_api import build_application
from mcstatbot_watcher.service import Watcher
from mcstatbot_watcher.settings import WatcherSettings
from mcstatbot_watcher.slots import LocalSlots


async def test_a_halted_loop_ends_without_being_cancelled() -> None:
    """On Python 3.11 `asyncio.wait_for` (inside redis-py and other clients) can swallow a cancellation, so
    the watcher's shutdown does not rely on one: `halt()` alone ends `run()` at its next tick. No server is
    watched here, so nothing is checked or sent (the store is in memory; no query service or Bot API is
    needed)."""
    token = "123:never-sent"  # noqa: S105 - no Bot API is called
    settings = WatcherSettings(telegram_bot_token=token, state_backend="memory", watch_interval_seconds=1.0)
    store = build_store(settings)
    await store.open()
    async with httpx.AsyncClient(base_url="http://127.0.0.1:9") as http:
        query = QueryClient(http, CircuitBreaker(3, 1.0), timeout=1.0, retries=0)
        bot = build_application(settings, webhook=True).bot
        watcher = Watcher(settings, store, query, bot, LocalSlots())
        running = asyncio.create_task(watcher.run())
        await asyncio.sleep(0.3)
        assert not running.done()
        watcher.halt()
        async with asyncio.timeout(5):
            await running  # no cancel(): the loop saw halt() and returned
    assert running.exception() is None
    await store.close()
