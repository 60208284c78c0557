"""The testkit's Redis Cluster (3 masters, 3 replicas, Debian's redis-server on loopback) with redis-py's
asyncio cluster client: keys across slots, one server's keys in one slot by a hash tag, a killed master
failed over by the cluster, and AUTH tokens as ElastiCache uses them.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import TYPE_CHECKING

import pytest
from mcstatbot_testkit.net import LOOPBACK
from mcstatbot_testkit.redis_cluster import RedisCluster as LoopbackCluster
from mcstatbot_testkit.redis_cluster import parse_cluster_nodes
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import AuthenticationError, RedisClusterException, RedisError, ResponseError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

# One server's keys: the hash tag (between the braces) puts them in one slot, so one Lua script may
# read and write them all (the lock and the values together).
TAG = "{mc:play.example.com:25565}"
TAGGED = [f"{TAG}:status", f"{TAG}:players", f"{TAG}:lock"]
SET_ALL = "for i, key in ipairs(KEYS) do redis.call('SET', key, ARGV[1]) end return #KEYS"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LoopbackCluster]:
    with LoopbackCluster(tmp_path / "cluster") as started:
        yield started


def client_for(cluster: LoopbackCluster, password: str | None = None) -> RedisCluster:
    return RedisCluster(host=LOOPBACK, port=cluster.ports[0], password=password, decode_responses=True)


def owner_port(client: RedisCluster, key: str) -> int:
    """The port of the master that holds `key`, as the client sees the cluster."""
    node = client.get_node_from_key(key)
    assert node is not None
    return int(node.port)


async def until_answered(client: RedisCluster, key: str) -> object:
    """GET `key` until the cluster client reaches a node that answers (it finds the new topology).

    Bounded by the caller's `asyncio.timeout`; this waits for the cluster, it measures nothing.
    """
    while True:
        try:
            return await client.get(key)
        except RedisError:
            await asyncio.sleep(0.2)


def test_cluster_has_three_masters_each_with_a_replica(cluster: LoopbackCluster) -> None:
    nodes = cluster.cluster_nodes()
    masters = [n for n in nodes if n.is_master]
    assert len(masters) == 3
    assert len(nodes) == 6
    for master in masters:
        assert [n for n in nodes if n.master_id == master.node_id and n.connected]
    assert all(cluster.cluster_state(port) == "ok" for port in cluster.ports)


async def test_keys_across_slots_and_one_hash_tag(cluster: LoopbackCluster) -> None:
    client = client_for(cluster)
    try:
        keys = [f"mc:status:server{i}.example.com:25565" for i in range(60)]
        for key in keys:
            await client.set(key, key.upper(), ex=60)
        assert [await client.get(key) for key in keys] == [key.upper() for key in keys]
        owners = {owner_port(client, key) for key in keys}
        assert len(owners) == 3, "60 untagged keys land on every master"

        assert len({client.keyslot(key) for key in TAGGED}) == 1
        assert await client.eval(SET_ALL, len(TAGGED), *TAGGED, "v1") == 3
        assert [await client.get(key) for key in TAGGED] == ["v1", "v1", "v1"]

        untagged = ["mc:play.example.com:status", "mc:play.example.com:players"]
        assert len({client.keyslot(key) for key in untagged}) == 2
        with pytest.raises(RedisClusterException, match="same key slot"):
            await client.eval(SET_ALL, len(untagged), *untagged, "v1")
    finally:
        await client.aclose()


async def test_a_killed_master_is_failed_over_and_the_cluster_answers_again(cluster: LoopbackCluster) -> None:
    client = client_for(cluster)
    try:
        key = TAGGED[0]
        await client.set(key, "before the failure")
        owner = client.get_node_from_key(key)
        # The write has reached the replica before the master dies (replication is asynchronous).
        assert await client.execute_command("WAIT", "1", "5000", target_nodes=owner) == 1

        killed = cluster.kill_master(owner_port(client, key))
        promoted = cluster.wait_for_failover(killed)
        assert promoted != killed
        assert promoted in cluster.master_ports()
        assert killed not in cluster.master_ports()

        async with asyncio.timeout(30):
            assert await until_answered(client, key) == "before the failure"
        await client.set(key, "after the failover")
        assert await client.get(key) == "after the failover"
        assert owner_port(client, key) == promoted

        cluster.restart_node(killed)
        rejoined = {n.port: n for n in cluster.cluster_nodes()}[killed]
        assert not rejoined.is_master, "the old master comes back as a replica"
    finally:
        await client.aclose()


async def test_auth_token_is_required(tmp_path: Path) -> None:
    token = secrets.token_urlsafe(24)
    with LoopbackCluster(tmp_path / "cluster", password=token) as cluster:
        assert cluster.url.startswith(f"redis://:{token}@127.0.0.1:")
        client = client_for(cluster, password=token)
        try:
            await client.set("{mc:a}:status", "ok")
            assert await client.get("{mc:a}:status") == "ok"
        finally:
            await client.aclose()
        anonymous = client_for(cluster)
        try:
            with pytest.raises((AuthenticationError, ResponseError, RedisClusterException)):
                await anonymous.get("{mc:a}:status")
        finally:
            await anonymous.aclose()


def test_parse_cluster_nodes_reads_masters_and_replicas() -> None:
    text = (
        "a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460\n"
        "b2 127.0.0.1:7002@17002 slave a1 0 1 1 connected\n"
        "c3 127.0.0.1:7003@17003 master,fail - 0 1 2 disconnected\n"
    )
    nodes = parse_cluster_nodes(text)
    assert [(n.port, n.is_master, n.master_id, n.slots) for n in nodes] == [
        (7001, True, None, ("0-5460",)),
        (7002, False, "a1", ()),
        (7003, True, None, ()),
    ]
    assert nodes[2].failed
    assert not nodes[2].connected
