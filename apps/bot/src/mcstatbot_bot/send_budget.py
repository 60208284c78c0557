"""Telegram's send limits as one budget for every bot and watcher replica.

`SendBudget` is a python-telegram-bot `BaseRateLimiter`: every Bot API call passes through
`process_request`. A call that names a chat (`chat_id` in its parameters, as PTB's own
`AIORateLimiter` decides) takes one slot in each of Telegram's limits before it is made:

- overall: 30 calls per second (`OVERALL`);
- per chat: 3 per 3 seconds, one a second on average with a burst of three (`PER_CHAT`);
- per group (a negative chat id, or an `@channel` name): 20 per minute (`PER_GROUP`), on top of the
  per-chat limit.

Calls without a chat (getMe, getUpdates, setWebhook, answerCallbackQuery, ...) are not limited, as in
PTB's `AIORateLimiter`. The windows are moving windows kept by the `limits` library: in Redis when
`REDIS_URL` is set (every replica pointed at the same Redis shares one budget), in process memory when
it is not. A call that finds no room waits (asyncio, never blocking the loop) until the oldest entry of
the full window leaves it; nothing is dropped. A 429 from Telegram is still honoured: this replica's calls
pause for `retry_after` and the call is retried (at most `max_retries` times).

REDIS_URL may be a Redis Cluster (ElastiCache with cluster mode enabled): `REDIS_CLUSTER` (`auto`, the
default, asks `INFO cluster` once, `mcstatbot_common.redis`) picks `limits`' `RedisClusterStorage` with
redis-py's cluster client. Every window is one key (`mcstatbot:tgbudget:...`) and every operation a script
on that one key, so no hash tags are needed: each window lives in its key's slot, and a failover moves it
with its slot.

When Redis fails (down, unreachable, timing out), the budget falls back to the in-process windows with a
warning, `mcstatbot_telegram_budget_fallbacks_total` counts it and `mcstatbot_telegram_budget_shared`
shows 0; Redis is tried again after `REDIS_RETRY_SECONDS`. Sends never stop for Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import urllib.parse
import warnings
from typing import TYPE_CHECKING, Any

from limits import RateLimitItem, RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisClusterStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from telegram.error import RetryAfter, TelegramError
from telegram.ext import BaseRateLimiter
from telegram.warnings import PTBDeprecationWarning

from mcstatbot_bot import metrics

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

JSONDict = dict[str, Any]

logger = logging.getLogger(__name__)

OVERALL = RateLimitItemPerSecond(30, 1, namespace="tg-all")
PER_CHAT = RateLimitItemPerSecond(3, 3, namespace="tg-chat")
PER_GROUP = RateLimitItemPerMinute(20, 1, namespace="tg-group")
REDIS_RETRY_SECONDS = 10.0
KEY_PREFIX = "mcstatbot:tgbudget"
_REDIS_TIMEOUT = 1.0  # seconds per Redis call: a budget that waits on a hung Redis would stop sends


def limits_for(data: dict[str, Any]) -> list[tuple[RateLimitItem, str]]:
    """The windows a call takes a slot in, with each window's key: none without a chat id; the overall
    window first (`SendBudget._take` takes it last, right before the call)."""
    chat_id = data.get("chat_id")
    if chat_id is None:
        return []
    with contextlib.suppress(ValueError, TypeError):
        chat_id = int(chat_id)
    key = str(chat_id)
    windows: list[tuple[RateLimitItem, str]] = [(OVERALL, "all"), (PER_CHAT, key)]
    if (isinstance(chat_id, int) and chat_id < 0) or isinstance(chat_id, str):
        windows.append((PER_GROUP, key))
    return windows


def _retry_seconds(error: RetryAfter) -> float:
    """A 429's `retry_after` in seconds (PTB 22 gives an int with a warning that it will become a
    timedelta; either is read)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        pause = error.retry_after
    return float(pause) if isinstance(pause, int | float) else pause.total_seconds()


_TLS_URL_PARAMETERS = ("ssl_ca_certs", "ssl_ca_path", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs")
"""REDIS_URL parameters kept for a Redis Cluster over TLS (redis-py reads them from a single node's URL)."""


class SendBudget(BaseRateLimiter[int]):
    """The shared budget (module docstring). `redis_url=None`: in-process only. `windows_of` says which
    windows a call takes a slot in (`limits_for`; the bot benchmark's unlimited variant passes none).
    `on_error(error)` is called for each failed call, `on_success(endpoint)` (the method, `sendMessage`)
    for each call that succeeded."""

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        redis_cluster: bool | None = None,
        max_retries: int = 3,
        on_error: Callable[[TelegramError], None] | None = None,
        on_success: Callable[[str], None] | None = None,
        windows_of: Callable[[dict[str, Any]], list[tuple[RateLimitItem, str]]] = limits_for,
    ) -> None:
        self._on_error = on_error
        self._on_success = on_success
        self._windows_of = windows_of
        self._redis_url = redis_url
        self._redis_cluster = redis_cluster
        self._max_retries = max_retries
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._shared: MovingWindowRateLimiter | None = None
        self._shared_storage: RedisStorage | None = None
        self._redis_down_until = 0.0
        self._retry_after_event = asyncio.Event()
        self._retry_after_event.set()
        self._taking = asyncio.Lock()  # one call of this process at a time takes its slots (`_take`)
        metrics.TELEGRAM_BUDGET_SHARED.set(1 if redis_url else 0)

    @property
    def shared(self) -> bool:
        """True while the budget is kept in Redis (False: in-process, by configuration or fallback)."""
        return self._shared is not None and time.monotonic() >= self._redis_down_until

    async def initialize(self) -> None:
        if self._redis_url is None or self._shared is not None:
            return
        try:
            await self._connect(self._redis_url)
        except Exception as exc:  # noqa: BLE001 - REDIS_CLUSTER=auto could not ask: later, as after a failure
            self._redis_failed(exc)

    async def _connect(self, url: str) -> None:
        """The shared windows' storage: `RedisClusterStorage` on a Redis Cluster, else `RedisStorage`."""
        options: dict[str, Any] = {"socket_timeout": _REDIS_TIMEOUT, "socket_connect_timeout": _REDIS_TIMEOUT}
        cluster = self._redis_cluster
        if cluster is None:
            from mcstatbot_common.redis import is_cluster  # noqa: PLC0415 - redis-py only with REDIS_URL

            cluster = await is_cluster(url, **options)
            self._redis_cluster = cluster
            logger.info("Telegram send budget: %s", "Redis Cluster" if cluster else "Redis (single node)")
        storage: RedisStorage
        if cluster:
            # limits reads the nodes and the AUTH token from an `async+redis+cluster://` URI; TLS is an option
            parts = urllib.parse.urlsplit(url)
            if parts.scheme == "rediss":
                options["ssl"] = True
                # the URL's TLS parameters (a CA of one's own: `?ssl_ca_certs=...`), which the
                # `async+redis+cluster://` URI below would drop
                options |= {
                    name: value
                    for name, value in urllib.parse.parse_qsl(parts.query)
                    if name in _TLS_URL_PARAMETERS
                }
            storage = RedisClusterStorage(
                f"async+redis+cluster://{parts.netloc}",
                implementation="redispy",
                key_prefix=KEY_PREFIX,
                **options,
            )
            # Learn the cluster's layout now, in one task: left to the first calls, many concurrent sends
            # initialize it at once, and redis-py's cluster client can then fail them (AttributeError)
            client = storage.bridge.storage  # type: ignore[attr-defined]
            try:
                await client.initialize()
            except BaseException:
                await client.aclose()
                raise
        else:
            storage = RedisStorage(url, implementation="redispy", key_prefix=KEY_PREFIX, **options)
        self._shared_storage = storage
        self._shared = MovingWindowRateLimiter(storage)

    async def shutdown(self) -> None:
        storage, self._shared_storage, self._shared = self._shared_storage, None, None
        self._redis_url = None  # no reconnection after shutdown
        if storage is not None:
            with contextlib.suppress(Exception):
                await storage.bridge.storage.aclose()  # type: ignore[attr-defined]

    async def process_request(  # noqa: PLR0917 - the signature is PTB's
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | JSONDict | list[JSONDict]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,  # the limits follow `chat_id` in `data`; `on_success` gets the endpoint
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | JSONDict | list[JSONDict]:
        max_retries = rate_limit_args or self._max_retries
        windows = self._windows_of(data)
        attempt = 0
        while True:
            await self._take(windows)
            try:
                result = await callback(*args, **kwargs)
            except TelegramError as exc:
                if self._on_error is not None:
                    self._on_error(exc)
                if not isinstance(exc, RetryAfter):
                    raise
                if attempt >= max_retries:
                    logger.warning("Bot API rate limit hit after %d retries; giving up on the call", attempt)
                    raise
                attempt += 1
                seconds = _retry_seconds(exc)
                logger.info("Bot API rate limit hit: retrying after %.1f s", seconds + 0.1)
                self._retry_after_event.clear()
                try:
                    await asyncio.sleep(seconds + 0.1)
                finally:
                    self._retry_after_event.set()
            else:
                if self._on_success is not None:
                    self._on_success(endpoint)
                return result

    async def _take(self, windows: list[tuple[RateLimitItem, str]]) -> None:
        """Take a slot in every window, as close as may be to the call: in this process one call at a
        time takes its slots (`_taking`, first come first served), the overall window last, right
        before the call; a chat's or group's full window is waited for outside the queue. After a 429
        nobody takes a slot before its `retry_after` is over (a slot taken during the pause would be
        spent on a call made after it, at once with the slots of the next second).

        Why: a window's entry is stamped when its slot is taken, and the call arrives at Telegram some
        time after. Taken early, before other windows' round trips to Redis (on a Redis Cluster, to
        other nodes) and while every waiting call polled Redis at once, slots were stamped up to a
        second before their calls on a loaded machine, so calls whose slots lay a second apart arrived
        together and Telegram answered 429. A slot taken in one window when a later one filled
        meanwhile (another replica was quicker) stays taken: the budget errs on the side of sending
        later, never of sending too much."""
        if not windows:
            await self._retry_after_event.wait()
            return
        while True:
            async with self._taking:
                full = await self._take_in_turn(windows)
            if full is None:
                return
            await self._wait_for_room(*full)  # a chat's or group's window: out of the queue meanwhile

    async def _take_in_turn(
        self, windows: list[tuple[RateLimitItem, str]]
    ) -> tuple[RateLimitItem, str] | None:
        """With this process's turn: None once every slot is taken, else the chat's or group's window
        that was full. The first window (`limits_for`: the overall one) is the one taken last."""
        (overall, overall_key), others = windows[0], windows[1:]
        while True:
            await self._retry_after_event.wait()
            await self._wait_for_room(overall, overall_key)
            for item, key in others:
                if not await self._call("hit", item, key):
                    return item, key
            others = []  # taken: a second try (another replica took the overall room first) needs none
            if await self._call("hit", overall, overall_key) and self._retry_after_event.is_set():
                return None

    async def _wait_for_room(self, item: RateLimitItem, key: str) -> None:
        while not await self._call("test", item, key):  # noqa: ASYNC110 - the room is in Redis: no event tells
            await asyncio.sleep(await self._wait_for(item, key))

    async def _wait_for(self, item: RateLimitItem, key: str) -> float:
        stats = await self._call("get_window_stats", item, key)
        reset_at = float(stats.reset_time)
        # a little jitter so the replicas that wait on one window do not all ask again at once
        return max(0.01, min(reset_at - time.time(), float(item.get_expiry()))) + random.uniform(0, 0.02)  # noqa: S311

    async def _call(self, operation: str, item: RateLimitItem, key: str) -> Any:
        """One window operation (`test`, `hit`, `get_window_stats`) on Redis, or in process memory when
        Redis is not configured or failed."""
        if self._redis_url is not None and time.monotonic() >= self._redis_down_until:
            try:
                if self._shared is None:  # REDIS_CLUSTER=auto and Redis could not be asked at start
                    await self._connect(self._redis_url)
                assert self._shared is not None  # noqa: S101 - _connect sets it
                result = await getattr(self._shared, operation)(item, key)
            except Exception as exc:  # noqa: BLE001 - any Redis failure (refused, timeout, reset, auth, ...)
                self._redis_failed(exc)
            else:
                metrics.TELEGRAM_BUDGET_SHARED.set(1)
                return result
        return await getattr(self._local, operation)(item, key)

    def _redis_failed(self, exc: BaseException) -> None:
        self._redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS
        metrics.TELEGRAM_BUDGET_FALLBACKS.inc()
        metrics.TELEGRAM_BUDGET_SHARED.set(0)
        logger.warning(
            "Telegram send budget: Redis failed (%s: %s); using this replica's own budget for %.0f s",
            type(exc).__name__,
            exc,
            REDIS_RETRY_SECONDS,
        )
