"""The webhook load generator for the bot benchmark.

Telegram's side is the test kit's Bot API test server (`BotApiServer`, uvicorn in a thread of this process),
extended here so that each reply the bot sends wakes the virtual user waiting for it: no polling, and the
arrival time is taken the moment the test server records the call. Virtual users post updates to the bot's
`POST /telegram/webhook` as Telegram would (aiohttp, kept-alive connections), one update at a time (a
closed loop; with `interval_s`, at most one update per interval per user); every update comes from a chat
of its own, as from many different users (the bot limits how often one chat may ask): throughput is what
the bot sustains, latency is from the POST to the reply arriving.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from mcstatbot_testkit.telegram import BotApiServer

REPLY_METHODS = frozenset({"sendmessage", "editmessagetext"})
CHAT_BASE = 700_000_000


class TimedBotApiServer(BotApiServer):
    """BotApiServer that reports every reply (sendMessage/editMessageText) to a callback as it is recorded."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.waiters: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[tuple[float, str]]]] = {}
        self.update_ids = itertools.count(1)
        """Update ids (and chats) for the load generator: never reused while this server lives."""

    def _record(self, method: str, params: dict[str, Any], ok: bool, result: Any, code: int | None) -> None:  # noqa: FBT001 - the base class's signature
        arrived = time.perf_counter()
        super()._record(method, params, ok, result, code)
        if method.lower() not in REPLY_METHODS:
            return
        chat_id = params.get("chat_id")
        waiter = self.waiters.get(chat_id) if isinstance(chat_id, int) else None
        if waiter is not None:
            loop, future = waiter
            loop.call_soon_threadsafe(_resolve, future, (arrived, str(params.get("text", ""))))


def _resolve(future: asyncio.Future[tuple[float, str]], value: tuple[float, str]) -> None:
    if not future.done():
        future.set_result(value)


def status_update(update_id: int, chat_id: int, address: str) -> dict[str, Any]:
    text = f"/status {address}"
    user = {"id": chat_id, "is_bot": False, "first_name": "Bench"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private", "first_name": "Bench"},
            "from": user,
            "text": text,
            "entities": [{"type": "bot_command", "offset": 0, "length": len("/status")}],
        },
    }


@dataclass
class LoadResult:
    latencies_ms: list[float] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0
    errors: int = 0
    timeouts: int = 0
    sample_reply: str = ""
    all_replies: int = 0
    """Replies including the warm-up's (for CPU per update over the whole drive)."""

    @property
    def updates_per_s(self) -> float:
        elapsed = self.finished - self.started
        return len(self.latencies_ms) / elapsed if elapsed > 0 else 0.0


@dataclass
class _Driver:
    session: aiohttp.ClientSession
    api: TimedBotApiServer
    webhook_url: str
    headers: dict[str, str]
    address: str
    reply_timeout: float
    interval_s: float = 0.0
    replies: int = 0

    async def user(self, user: int, deadline: float, result: LoadResult | None) -> None:
        """One virtual user: post /status, wait for the reply, (wait out the interval,) repeat until
        `deadline`."""
        del user
        loop = asyncio.get_running_loop()
        next_at = time.perf_counter()
        while (now := time.perf_counter()) < deadline:
            if self.interval_s > 0:
                if now < next_at:
                    await asyncio.sleep(min(next_at, deadline) - now)
                    continue
                next_at = max(next_at + self.interval_s, now)
            update_id = next(self.api.update_ids)
            chat_id = CHAT_BASE + update_id  # a new chat each time: the bot's per-chat flood limit stays out
            future: asyncio.Future[tuple[float, str]] = loop.create_future()
            self.api.waiters[chat_id] = (loop, future)
            body = status_update(update_id, chat_id, self.address)
            sent = time.perf_counter()
            try:
                async with self.session.post(self.webhook_url, json=body, headers=self.headers) as response:
                    await response.read()
                    response.raise_for_status()
                arrived, text = await asyncio.wait_for(future, self.reply_timeout)
            except TimeoutError:
                if result is not None:
                    result.timeouts += 1
                continue
            except aiohttp.ClientError:
                if result is not None:
                    result.errors += 1
                await asyncio.sleep(0.05)
                continue
            finally:
                self.api.waiters.pop(chat_id, None)
            self.replies += 1
            if result is not None and arrived <= deadline:
                result.latencies_ms.append((arrived - sent) * 1000)
                result.sample_reply = result.sample_reply or text


async def drive(
    api: TimedBotApiServer,
    webhook_url: str,
    secret: str,
    address: str,
    *,
    concurrency: int,
    duration_s: float,
    warmup_s: float,
    reply_timeout: float = 10.0,
    interval_s: float = 0.0,
) -> LoadResult:
    """`concurrency` virtual users for `warmup_s` (not measured), then for `duration_s` (measured); with
    `interval_s`, each user sends at most one update per interval (paced instead of back to back)."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)  # the test server's thread and this loop share the GIL: hand it over fast
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret}
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
            driver = _Driver(session, api, webhook_url, headers, address, reply_timeout, interval_s)
            if warmup_s > 0:
                until = time.perf_counter() + warmup_s
                await asyncio.gather(*(driver.user(u, until, None) for u in range(concurrency)))
            result = LoadResult()
            result.started = time.perf_counter()
            result.finished = result.started + duration_s
            await asyncio.gather(*(driver.user(u, result.finished, result) for u in range(concurrency)))
            result.all_replies = driver.replies
            return result
    finally:
        sys.setswitchinterval(previous)
