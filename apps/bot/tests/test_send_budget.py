"""The Telegram send budget (`mcstatbot_bot.send_budget`) against the Bot API test server with Telegram's
flood limits on (`BotApiServer(flood_limits=True)`: 429 with `retry_after` beyond them) and a real Redis.

Two processes that build their Bot through `telegram_api.build_application` (the bot's and the
watcher's way; `send_burst.py`) burst messages to many chats, to one chat and to one group. The same on a
real Redis Cluster (`mcstatbot_testkit.redis_cluster`, 3 masters and 3 replicas on loopback), found by
REDIS_CLUSTER's default `auto`, with a master killed mid-burst."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis
from mcstatbot_bot import metrics
from mcstatbot_bot.send_budget import KEY_PREFIX, OVERALL, PER_GROUP, SendBudget
from mcstatbot_bot.settings import BotSettings
from mcstatbot_bot.telegram_api import build_application
from mcstatbot_testkit.redis import RedisServer
from mcstatbot_testkit.redis_cluster import RedisCluster
from mcstatbot_testkit.telegram import BotApiServer
from mcstatbot_testkit.tls import TestCertificates

if TYPE_CHECKING:
    from collections.abc import Iterator

SENDER = Path(__file__).with_name("send_burst.py")
GROUP = -100777
# per process: one message to each of 30 private chats, two more to chat 1 (three in all), 11 to a group.
# Two processes: 86 messages, 60 of them in the first moment, 22 to the group (Telegram allows 20 a minute).
PLAN = [f"{chat}:{3 if chat == 1 else 1}" for chat in range(1, 31)] + [f"{GROUP}:11"]
PER_PROCESS = 30 + 2 + 11


@pytest.fixture
def limited_api() -> Iterator[BotApiServer]:
    with BotApiServer(flood_limits=True) as server:
        yield server


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis.log") as server:
        yield server


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    with RedisCluster(tmp_path / "cluster") as cluster:
        yield cluster


def _env(api: BotApiServer, redis_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "OTEL_"))}
    env |= {"TELEGRAM_BOT_TOKEN": api.token, "TELEGRAM_API_BASE_URL": api.base_url, "LOG_LEVEL": "INFO"}
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    return env


async def _start(env: dict[str, str], start_at: float, plan: list[str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(SENDER),
        str(start_at),
        *plan,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _finish(process: asyncio.subprocess.Process, seconds: float) -> tuple[int, str, str]:
    out, err = await asyncio.wait_for(process.communicate(), seconds)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def _sent(api: BotApiServer) -> list[int | str | None]:
    return [c.chat_id for c in api.calls_to("sendMessage") if c.ok]


def _refused(api: BotApiServer) -> int:
    return sum(1 for c in api.calls_to("sendMessage") if c.error_code == 429)


async def test_two_processes_sharing_redis_stay_within_telegrams_limits(
    limited_api: BotApiServer, redis_server: RedisServer
) -> None:
    env = _env(limited_api, redis_server.url)
    start_at = time.time() + 6
    senders = [await _start(env, start_at, PLAN) for _ in range(2)]
    # the group's last two messages wait for the oldest of the minute's twenty to leave the window
    results = [await _finish(p, seconds=150) for p in senders]
    for code, out, err in results:
        assert code == 0, err[-3000:]
        assert out.strip() == f"sent {PER_PROCESS}"
    sent = _sent(limited_api)
    assert len(sent) == 2 * PER_PROCESS
    assert sent.count(GROUP) == 22
    assert sent.count(1) == 6
    assert _refused(limited_api) == 0
    assert limited_api.flood is not None
    assert limited_api.flood.refused == 0


async def test_two_processes_on_a_redis_cluster_share_one_budget(
    limited_api: BotApiServer, redis_cluster: RedisCluster
) -> None:
    """REDIS_URL names one node of a Redis Cluster and REDIS_CLUSTER is unset: each process asks
    `INFO cluster` and keeps the windows with limits' RedisClusterStorage (the windows' keys are in the
    cluster); the budget never falls back to a process's own, every message is sent with no 429, and the
    group's 21st message comes a minute after its first."""
    env = _env(limited_api, redis_cluster.url)
    start_at = time.time() + 6
    senders = [await _start(env, start_at, PLAN) for _ in range(2)]
    results = [await _finish(p, seconds=150) for p in senders]
    for code, out, err in results:
        assert code == 0, err[-3000:]
        assert out.strip() == f"sent {PER_PROCESS}"
        assert "Redis failed" not in err  # the shared budget held throughout
    sent = _sent(limited_api)
    assert len(sent) == 2 * PER_PROCESS
    assert sent.count(GROUP) == 22
    assert _refused(limited_api) == 0
    group_times = sorted(c.at for c in limited_api.calls_to("sendMessage", GROUP) if c.ok)
    assert group_times[20] - group_times[0] >= 55  # the test server's group minute
    # the windows were kept in the cluster (the group's minute is still there; the second-long ones expired)
    keys = {key.decode() for port in redis_cluster.master_ports() for key in _keys(port)}
    assert f"{KEY_PREFIX}:{PER_GROUP.key_for(str(GROUP))}" in keys


async def test_two_processes_on_a_redis_cluster_keep_telegrams_limits_in_a_large_burst(
    limited_api: BotApiServer, redis_cluster: RedisCluster
) -> None:
    """240 alerts to 240 chats from two processes at once on the Redis Cluster: eight seconds of the
    overall limit, every call waiting its turn. No 429 and every message sent. Before each call's slots
    were taken in turn, the overall one last and right before the call (`SendBudget._take`), every
    waiting call polled the cluster at once and took its overall slot a round trip (or a second of a
    crowded event loop) before its call: 27 and 42 of the 240 were refused on this machine."""
    env = _env(limited_api, redis_cluster.url)
    plan = [f"{chat}:1" for chat in range(1, 121)]
    start_at = time.time() + 6
    senders = [await _start(env, start_at, plan) for _ in range(2)]
    results = [await _finish(p, seconds=150) for p in senders]
    for code, out, err in results:
        assert code == 0, err[-3000:]
        assert out.strip() == "sent 120"
        assert "Redis failed" not in err  # the shared budget held throughout
    assert len(_sent(limited_api)) == 240
    assert _refused(limited_api) == 0
    assert limited_api.flood is not None
    assert limited_api.flood.refused == 0


def _keys(port: int) -> list[bytes]:
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        return list(client.scan_iter(f"{KEY_PREFIX}:*"))
    finally:
        client.close()


def _master_of(cluster: RedisCluster, key: str) -> int:
    client = redis.RedisCluster(host="127.0.0.1", port=cluster.master_ports()[0])
    try:
        node = client.get_node_from_key(key)  # type: ignore[no-untyped-call]
        assert node is not None
        return int(node.port)
    finally:
        client.close()


async def test_redis_cluster_master_killed_mid_burst_sends_continue(
    limited_api: BotApiServer, redis_cluster: RedisCluster
) -> None:
    """The master holding the overall window dies mid-burst: the cluster fails over to its replica, the
    budget rides it out (redis-py's cluster client retries, or this process's own windows meanwhile) and
    every message is sent."""
    plan = [f"{chat}:1" for chat in range(1, 241)]  # 240 chats: eight seconds of the overall limit
    process = await _start(_env(limited_api, redis_cluster.url), time.time() + 5, plan)
    try:
        deadline = time.monotonic() + 60
        while len(_sent(limited_api)) < 20 and time.monotonic() < deadline:  # noqa: ASYNC110 - the server's records
            await asyncio.sleep(0.02)
        assert len(_sent(limited_api)) < 240, "the burst ended before the master could be killed"
        killed = redis_cluster.kill_master(
            _master_of(redis_cluster, f"{KEY_PREFIX}:{OVERALL.key_for('all')}")
        )
        await asyncio.to_thread(redis_cluster.wait_for_failover, killed)
        code, out, err = await _finish(process, seconds=120)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert code == 0, err[-3000:]
    assert out.strip() == "sent 240"
    assert sorted(c for c in _sent(limited_api) if isinstance(c, int)) == list(range(1, 241))


async def test_two_processes_on_their_own_budgets_get_429s(limited_api: BotApiServer) -> None:
    """The same burst without Redis: each process keeps Telegram's limits alone, together they do not,
    and the test server says so (this is what makes the test above able to fail)."""
    env = _env(limited_api, None)
    start_at = time.time() + 6
    senders = [await _start(env, start_at, PLAN) for _ in range(2)]
    try:
        deadline = time.monotonic() + 60
        while _refused(limited_api) == 0 and time.monotonic() < deadline:  # noqa: ASYNC110 - the server's records
            await asyncio.sleep(0.2)
        assert _refused(limited_api) > 0
    finally:
        for process in senders:
            if process.returncode is None:
                process.kill()
            await process.wait()


async def test_redis_killed_mid_burst_sends_continue(
    limited_api: BotApiServer, redis_server: RedisServer
) -> None:
    plan = [f"{chat}:1" for chat in range(1, 121)]  # 120 chats: four seconds of the overall limit
    process = await _start(_env(limited_api, redis_server.url), time.time() + 5, plan)
    try:
        deadline = time.monotonic() + 60
        while len(_sent(limited_api)) < 20 and time.monotonic() < deadline:  # noqa: ASYNC110 - the server's records
            await asyncio.sleep(0.02)
        assert len(_sent(limited_api)) < 120, "the burst ended before Redis could be killed"
        redis_server.kill()
        code, out, err = await _finish(process, seconds=90)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert code == 0, err[-3000:]
    assert out.strip() == "sent 120"
    assert sorted(c for c in _sent(limited_api) if isinstance(c, int)) == list(range(1, 121))
    assert "Telegram send budget: Redis failed" in err


async def test_injected_429_is_honoured_and_counted(limited_api: BotApiServer) -> None:
    settings = BotSettings(telegram_bot_token=limited_api.token, telegram_api_base_url=limited_api.base_url)
    application = build_application(settings, webhook=True)
    before = metrics.TELEGRAM_API_ERRORS.labels("rate_limited")._value.get()
    async with application:
        limited_api.fail_next("sendMessage", 429, retry_after=1)
        message = await application.bot.send_message(7, "after the pause")
    assert message.text == "after the pause"
    assert [c.error_code for c in limited_api.calls_to("sendMessage", 7)] == [429, None]
    assert metrics.TELEGRAM_API_ERRORS.labels("rate_limited")._value.get() == before + 1


async def test_budget_without_redis_keeps_one_chat_within_telegrams_limit(limited_api: BotApiServer) -> None:
    """In process (no REDIS_URL): seven messages to one chat at once are spaced as Telegram wants them
    (three, then one a second), none refused, none dropped."""
    settings = BotSettings(telegram_bot_token=limited_api.token, telegram_api_base_url=limited_api.base_url)
    application = build_application(settings, webhook=True)
    async with application:
        await asyncio.gather(*(application.bot.send_message(9, f"m{i}") for i in range(7)))
    calls = limited_api.calls_to("sendMessage", 9)
    assert sorted(c.text for c in calls) == [f"m{i}" for i in range(7)]
    assert all(c.ok for c in calls)


async def test_the_budget_on_a_tls_redis_cluster_with_an_auth_token_and_a_ca_of_its_own(
    limited_api: BotApiServer, tmp_path: Path
) -> None:
    """`rediss://:<token>@node?ssl_ca_certs=<CA>` as an operator with a CA of their own writes it: the
    budget finds the cluster and keeps its windows there, over TLS with the token, trusting that CA."""
    token = secrets.token_urlsafe(16)
    certificates = TestCertificates.make(tmp_path / "pki")
    with RedisCluster(tmp_path / "cluster", password=token, tls=certificates) as cluster:
        settings = BotSettings(
            telegram_bot_token=limited_api.token,
            telegram_api_base_url=limited_api.base_url,
            redis_url=cluster.url,
        )
        application = build_application(settings, webhook=True)
        async with application:
            await asyncio.gather(*(application.bot.send_message(chat, "hi") for chat in (11, 12, GROUP)))
            budget = application.bot.rate_limiter
            assert isinstance(budget, SendBudget)
            assert budget.shared  # no fallback to an in-process budget
        keys: set[str] = set()
        for port in cluster.master_ports():
            node = redis.Redis(
                host="127.0.0.1",
                port=port,
                password=token,
                ssl=True,
                ssl_ca_certs=str(certificates.ca),
                decode_responses=True,
            )
            keys |= {str(key) for key in node.keys(f"{KEY_PREFIX}:*")}
            node.close()
    assert len(_sent(limited_api)) == 3
    assert f"{KEY_PREFIX}:{PER_GROUP.key_for(str(GROUP))}" in keys  # the group's minute, kept in the cluster
