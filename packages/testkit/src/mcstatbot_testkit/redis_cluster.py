"""A real Redis Cluster on loopback: Debian's redis-server in cluster mode, masters and replicas.

The nodes are plain `redis-server --cluster-enabled yes` processes (no persistence), each with a free
client port and a free cluster-bus port; `redis-cli --cluster create ... --cluster-replicas N
--cluster-yes` assigns the slots and the replicas, and `start()` returns once every node reports
`cluster_state:ok` with every replica attached. A short `cluster-node-timeout` (1000 ms by default) makes
failover quick and keeps the cluster bus cheap. `password` sets `requirepass` and `masterauth` on every
node, as an ElastiCache AUTH token does. `tls` (a `mcstatbot_testkit.tls.TestCertificates`) makes it a
cluster as ElastiCache with in-transit encryption is: every node listens for TLS only (no plain port), and
the cluster bus and replication speak TLS too; `url` is then `rediss://` and names the test CA in its
`ssl_ca_certs` parameter, and the nodes announce their TLS ports in CLUSTER SLOTS / SHARDS.

    with RedisCluster(tmp_path / "cluster") as cluster:
        client = RedisCluster(host=LOOPBACK, port=cluster.ports[0])   # redis.asyncio.cluster
        killed = cluster.kill_master()
        promoted = cluster.wait_for_failover(killed)
        moved_to = cluster.promote_replica(cluster.master_ports()[0])   # a manual failover
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
import urllib.parse
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Self

from mcstatbot_testkit.net import LOOPBACK, free_port
from mcstatbot_testkit.process import ManagedProcess, Started
from mcstatbot_testkit.redis import redis_server_binary

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from mcstatbot_testkit.tls import TestCertificates


def redis_cli_binary() -> str:
    found = shutil.which("redis-cli")
    if found is None:
        raise RuntimeError("redis-cli is not installed (scripts/install-test-deps.sh installs redis-server)")
    return found


@dataclass(frozen=True, slots=True)
class ClusterNode:
    """One line of `CLUSTER NODES`."""

    node_id: str
    port: int
    flags: frozenset[str]
    master_id: str | None
    """The master's node id, for a replica."""
    connected: bool
    slots: tuple[str, ...]

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    @property
    def failed(self) -> bool:
        return "fail" in self.flags or "fail?" in self.flags


def parse_cluster_nodes(text: str) -> list[ClusterNode]:
    """`CLUSTER NODES` output as ClusterNode entries (`<id> <ip:port@bus> <flags> <master> ... <slots>`)."""
    nodes: list[ClusterNode] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8:  # noqa: PLR2004 - the fixed columns of a CLUSTER NODES line
            continue
        address = parts[1].split("@", 1)[0]
        port = int(address.rsplit(":", 1)[1]) if ":" in address else 0
        nodes.append(
            ClusterNode(
                node_id=parts[0],
                port=port,
                flags=frozenset(parts[2].split(",")),
                master_id=None if parts[3] == "-" else parts[3],
                connected=parts[7] == "connected",
                slots=tuple(parts[8:]),
            )
        )
    return nodes


_TAKEN: set[int] = set()
"""Every port a node of this process was given: `free_port` may hand a port out again once it was closed,
so two nodes (one's client port, another's bus port) could get the same one before either binds it."""


def _unused_port() -> int:
    port = free_port()
    while port in _TAKEN:
        port = free_port()
    _TAKEN.add(port)
    return port


class _Node(ManagedProcess):
    def __init__(
        self, directory: Path, node_timeout_ms: int, password: str | None, tls: TestCertificates | None
    ) -> None:
        self.port = _unused_port()
        self.bus_port = _unused_port()
        # A folder of its own: a replica's full sync writes dump.rdb there, and a shared folder would
        # let one node load another's data.
        home = directory / f"node-{self.port}"
        home.mkdir(parents=True, exist_ok=True)
        # With TLS the client port is the TLS port and there is no plain one (as on ElastiCache with
        # in-transit encryption): a client that forgot TLS for one node gets nothing from it.
        ports = ["--port", "0", "--tls-port", str(self.port)] if tls else ["--port", str(self.port)]
        argv = [
            redis_server_binary(),
            *ports,
            "--bind", LOOPBACK,
            "--cluster-enabled", "yes",
            "--cluster-port", str(self.bus_port),
            "--cluster-config-file", str(home / "nodes.conf"),
            "--cluster-node-timeout", str(node_timeout_ms),
            "--dir", str(home),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--hz", "10",
            "--shutdown-on-sigterm", "now",  # stop at once, without waiting for replicas to catch up
        ]  # fmt: skip
        if password is not None:
            argv += ["--requirepass", password, "--masterauth", password]
        if tls is not None:
            argv += tls.redis_server_options(cluster=True)
        super().__init__(argv, home / "redis.log")


class RedisCluster(Started):
    """`masters` masters with `replicas` replicas each, on 127.0.0.1; `with` starts it and stops every node.

    `ports` lists the client ports (masters first, as created); `url` is what REDIS_URL should say
    (one startup node; the client finds the others). `kill_master()` ends a master at once (SIGKILL),
    `wait_for_failover()` says which replica took its slots, `restart_node()` brings a killed node back
    (it rejoins as a replica). With `tls`, `url` is `rediss://...?ssl_ca_certs=<the test CA>`.
    """

    def __init__(
        self,
        directory: Path,
        *,
        masters: int = 3,
        replicas: int = 1,
        node_timeout_ms: int = 1000,
        password: str | None = None,
        tls: TestCertificates | None = None,
    ) -> None:
        if masters < 3:  # noqa: PLR2004 - redis-cli --cluster create refuses fewer
            raise ValueError("a Redis Cluster needs at least 3 masters")
        self.directory = directory
        self.masters = masters
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.password = password
        self.tls = tls
        self.nodes: list[_Node] = []

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password is not None else ""
        if self.tls is None:
            return f"redis://{auth}{LOOPBACK}:{self.nodes[0].port}/0"
        ca = urllib.parse.quote(str(self.tls.ca), safe="/")
        return f"rediss://{auth}{LOOPBACK}:{self.nodes[0].port}/0?ssl_ca_certs={ca}"

    # -- life cycle ---------------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> Self:
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            for _ in range(self.masters * (1 + self.replicas)):
                node = _Node(self.directory, self.node_timeout_ms, self.password, self.tls)
                self.nodes.append(node)
                node.start()
            deadline = time.monotonic() + timeout
            for node in self.nodes:
                self._wait(partial(self._answers, node.port), deadline, f"node {node.port}")
            self._create(deadline)
            self._wait(self._healthy, deadline, "cluster_state:ok with every replica attached")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    # -- looking at it ------------------------------------------------------------------------------

    def cluster_nodes(self, via: int | None = None) -> list[ClusterNode]:
        """The cluster as one live node sees it."""
        port = via if via is not None else self._live_port()
        return parse_cluster_nodes(self._cli(port, "CLUSTER", "NODES"))

    def cluster_state(self, port: int) -> str:
        """`ok` or `fail`, from `CLUSTER INFO` on that node ("" when it does not answer)."""
        for line in self._cli(port, "CLUSTER", "INFO").splitlines():
            if line.startswith("cluster_state:"):
                return line.split(":", 1)[1].strip()
        return ""

    def master_ports(self) -> list[int]:
        return sorted(n.port for n in self.cluster_nodes() if n.is_master and not n.failed)

    def node(self, port: int) -> _Node:
        for node in self.nodes:
            if node.port == port:
                return node
        raise KeyError(port)

    # -- failures -----------------------------------------------------------------------------------

    def kill_master(self, port: int | None = None) -> int:
        """SIGKILL a master (the first live one unless `port` says); returns its port."""
        masters = self.master_ports()
        target = port if port is not None else masters[0]
        if target not in masters:
            raise ValueError(f"{target} is not a live master (masters: {masters})")
        self.node(target).kill()
        return target

    def wait_for_failover(self, killed_port: int, timeout: float = 30.0) -> int:
        """Block until a replica of the killed master has taken over and the cluster is ok again.

        Returns the promoted replica's port.
        """
        deadline = time.monotonic() + timeout
        live = [n.port for n in self.nodes if n.running]
        killed_id = next(n.node_id for n in self.cluster_nodes(via=live[0]) if n.port == killed_port)
        replicas = {n.port for n in self.cluster_nodes(via=live[0]) if n.master_id == killed_id}
        promoted: list[int] = []

        def taken_over() -> bool:
            view = self.cluster_nodes(via=live[0])
            winners = [n.port for n in view if n.port in replicas and n.is_master and n.slots]
            if winners and all(self.cluster_state(port) == "ok" for port in live):
                promoted[:] = winners[:1]
                return True
            return False

        self._wait(taken_over, deadline, f"failover of master {killed_port}")
        return promoted[0]

    def promote_replica(self, master_port: int, timeout: float = 30.0) -> int:
        """A manual failover (`CLUSTER FAILOVER` on a replica of that master: it catches up first, so no
        write is lost): the replica takes the master's slots, and a client that still sends those slots'
        keys to the old master is redirected (MOVED). Returns the new master's port."""
        view = self.cluster_nodes(via=master_port)
        master_id = next(n.node_id for n in view if n.port == master_port)
        replica = next(n.port for n in view if n.master_id == master_id and n.connected)
        if self._cli(replica, "CLUSTER", "FAILOVER") != "OK":
            raise RuntimeError(f"CLUSTER FAILOVER refused by replica {replica} of master {master_port}")
        deadline = time.monotonic() + timeout

        def promoted() -> bool:
            # every live node's view, not only the replica's: gossip reaches the others later, and a caller
            # that then asks any node (master_ports) must see the new layout
            for node in self.nodes:
                if not node.running:
                    continue
                now = {n.port: n for n in self.cluster_nodes(via=node.port)}
                if replica not in now or master_port not in now:
                    return False
                if not (now[replica].is_master and now[replica].slots and not now[master_port].is_master):
                    return False
                if self.cluster_state(node.port) != "ok":
                    return False
            return True

        self._wait(promoted, deadline, f"replica {replica} promoted in place of master {master_port}")
        return replica

    def restart_node(self, port: int, timeout: float = 30.0) -> None:
        """Start a killed node again on its port; it rejoins the cluster (as a replica after a failover)."""
        node = self.node(port)
        node.start()
        deadline = time.monotonic() + timeout

        def rejoined() -> bool:
            # every live node's view, its own included, names its role alike and flags no failure: a node
            # that was failed over comes back believing it is a master until gossip tells it otherwise, and
            # the others keep it flagged `fail` until they hear from it
            roles = set()
            for each in self.nodes:
                if not each.running:
                    continue
                seen = {n.port: n for n in self.cluster_nodes(via=each.port)}
                if port not in seen or seen[port].failed or not seen[port].connected:
                    return False
                roles.add(seen[port].is_master)
            return len(roles) == 1 and self.cluster_state(port) == "ok"

        self._wait(rejoined, deadline, f"node {port} back in the cluster")

    # -- internals ----------------------------------------------------------------------------------

    def _cli(self, port: int, *args: str, timeout: float = 5.0) -> str:
        argv = [redis_cli_binary(), "-h", LOOPBACK, "-p", str(port), *self._cli_options()]
        try:
            result = subprocess.run(  # noqa: S603 - argv built here from fixed parts
                [*argv, *args], capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            return ""
        return result.stdout.strip() if result.returncode == 0 else ""

    def _create(self, deadline: float) -> None:
        argv = [redis_cli_binary(), "--cluster", "create"]
        argv += [f"{LOOPBACK}:{node.port}" for node in self.nodes]
        argv += ["--cluster-replicas", str(self.replicas), "--cluster-yes", *self._cli_options()]
        result = subprocess.run(  # noqa: S603 - argv built here from fixed parts
            argv,
            capture_output=True,
            text=True,
            timeout=max(deadline - time.monotonic(), 1.0),
            check=False,
        )
        (self.directory / "cluster-create.log").write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{result.stdout}\n{result.stderr}")

    def _cli_options(self) -> list[str]:
        options = [] if self.tls is None else self.tls.redis_cli_options()
        if self.password is not None:
            options += ["-a", self.password, "--no-auth-warning"]
        return options

    def _answers(self, port: int) -> bool:
        return self._cli(port, "PING") == "PONG"

    def _healthy(self) -> bool:
        if not all(self.cluster_state(node.port) == "ok" for node in self.nodes):
            return False
        view = self.cluster_nodes(via=self.nodes[0].port)
        masters = [n for n in view if n.is_master and n.slots]
        replicas = [n for n in view if "slave" in n.flags and n.connected]
        return len(masters) == self.masters and len(replicas) == self.masters * self.replicas

    def _live_port(self) -> int:
        for node in self.nodes:
            if node.running:
                return node.port
        raise RuntimeError("no node of the cluster is running")

    def _wait(self, check: Callable[[], bool], deadline: float, what: str) -> None:
        while True:
            with contextlib.suppress(OSError, ValueError, StopIteration):
                if check():
                    return
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {n.log_path.name}\n{n.log_text()[-1500:]}" for n in self.nodes)
                raise TimeoutError(f"Redis Cluster: no {what} in time\n{logs}")
            time.sleep(0.1)
