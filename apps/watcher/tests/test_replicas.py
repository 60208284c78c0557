"""Two watcher replicas sharing Redis (real redis-server): one check per server and interval, no alert
twice, a replica killed mid-interval and its servers still checked, every replica restarted and a
flushed Redis with nothing lost; and the same replicas on a real Redis Cluster with a master killed."""

from __future__ import annotations

import functools
import signal
from typing import TYPE_CHECKING, Any

import pytest
import redis
from mcstatbot_testkit.redis import RedisServer
from mcstatbot_testkit.redis_cluster import RedisCluster
from mcstatbot_testkit.watching import PLACEHOLDER, WatchStack, alerts, ask, checks, wait_checks, wait_until

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from mcstatbot_testkit.minecraft import JavaPeer
    from mcstatbot_testkit.services import ServiceProcess
    from mcstatbot_testkit.telegram import BotApiServer

NORMAL = {"name": "1.21.1", "protocol": 767}
CHATS = [701, 702, 703]


@pytest.fixture
def redis_server(logs: Path, tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(logs / f"redis-{tmp_path.name}.log") as server:
        yield server


def checked(watcher: ServiceProcess) -> int:
    return checks(watcher, "up") + checks(watcher, "failed")


def flip(api: BotApiServer, peer: JavaPeer, version: dict[str, Any], word: str, count: int) -> None:
    """Make the peer go down (placeholder) or up, and wait until every chat has `count` such alerts."""
    peer.configure(version=version)
    for chat in CHATS:
        wait_until(functools.partial(_told, api, chat, word, count), what=f"{word} #{count} in {chat}")


def _told(api: BotApiServer, chat: int, word: str, count: int) -> bool:
    return len(alerts(api, chat, word)) >= count


def _more_checks(replicas: list[ServiceProcess], more: int) -> None:
    total = sum(checked(r) for r in replicas)
    wait_until(lambda: sum(checked(r) for r in replicas) >= total + more, what=f"{more} more checks")


def assert_each_chat_told(api: BotApiServer, downs: int, ups: int) -> None:
    for chat in CHATS:
        assert len(alerts(api, chat, "is down")) == downs, chat
        assert len(alerts(api, chat, "back up")) == ups, chat


def test_two_replicas_share_the_work_and_survive_kill_restart_and_flush(
    stack: WatchStack, api: BotApiServer, peer: JavaPeer, redis_server: RedisServer
) -> None:
    stack.bot()
    env = {"WATCH_DOWN_AFTER": "1", "WATCH_FLAP_SECONDS": "0", "REDIS_URL": redis_server.url}
    first, second = stack.watcher(**env), stack.watcher(**env)
    for chat in CHATS:
        assert "Watching" in ask(api, chat, f"/watch {peer.address}")
    wait_checks(first, "other_replica", 2)  # the other replica had those slots
    wait_checks(second, "other_replica", 2)

    flip(api, peer, PLACEHOLDER, "is down", 1)
    flip(api, peer, NORMAL, "back up", 1)
    wait_checks(first, "up", 1)
    wait_checks(second, "other_replica", 2)
    assert_each_chat_told(api, 1, 1)

    # a replica killed mid-interval: the other one checks its servers from their next slot on
    first.stop(signal.SIGKILL)
    _more_checks([second], 3)  # the survivor checks every slot
    flip(api, peer, PLACEHOLDER, "is down", 2)
    assert_each_chat_told(api, 2, 1)

    # every replica restarted: the watches and the record are in the state store
    second.stop()
    third, fourth = stack.watcher(**env), stack.watcher(**env)
    flip(api, peer, NORMAL, "back up", 2)
    assert_each_chat_told(api, 2, 2)

    # Redis flushed: the schedule follows from the state store; still one alert per chat
    redis.Redis.from_url(redis_server.url).flushall()
    _more_checks([third, fourth], 2)
    flip(api, peer, PLACEHOLDER, "is down", 3)
    _more_checks([third, fourth], 2)
    assert_each_chat_told(api, 3, 2)


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    with RedisCluster(tmp_path / "cluster") as cluster:
        yield cluster


def test_two_replicas_on_a_redis_cluster_check_once_and_survive_a_killed_master(
    stack: WatchStack, api: BotApiServer, peer: JavaPeer, redis_cluster: RedisCluster
) -> None:
    """REDIS_URL names one node of a real Redis Cluster (3 masters, 3 replicas) and REDIS_CLUSTER is unset:
    the replicas find the cluster, every slot is claimed by one of them (the other counts `other_replica`),
    each chat is told once, and a master killed mid-run is failed over with the checks going on."""
    stack.bot()
    env = {"WATCH_DOWN_AFTER": "1", "WATCH_FLAP_SECONDS": "0", "REDIS_URL": redis_cluster.url}
    replicas = [stack.watcher(**env), stack.watcher(**env)]
    for chat in CHATS:
        assert "Watching" in ask(api, chat, f"/watch {peer.address}")
    for replica in replicas:
        wait_checks(replica, "other_replica", 3)
    # one check per slot: what one replica checked, the other skipped (within the slots in flight)
    done = sum(checked(r) for r in replicas)
    skipped = sum(checks(r, "other_replica") for r in replicas)
    assert done > 0
    assert abs(done - skipped) <= 2

    flip(api, peer, PLACEHOLDER, "is down", 1)
    assert_each_chat_told(api, 1, 0)

    # a master dies: the cluster promotes its replica; claims in its slots fail meanwhile (skipped), then
    # both replicas go on checking and still tell each chat once
    killed = redis_cluster.kill_master()
    redis_cluster.wait_for_failover(killed)
    _more_checks(replicas, 3)
    flip(api, peer, NORMAL, "back up", 1)
    _more_checks(replicas, 2)
    assert_each_chat_told(api, 1, 1)
    for replica in replicas:
        wait_checks(replica, "other_replica", 1)  # both are still in the game after the failover
