"""The kind tests' tools: skaffold v2.19.0 and kind v0.33.0 built from their Go modules by
scripts/kind/toolchain.sh (seconds when they are in the cache; `make test` builds them in the background
before these tests run), one way to run skaffold, and a kind cluster: a private dockerd
(scripts/kind/dockerd.sh), the node image built offline (scripts/kind/node-image.sh),
`kind create cluster --config k8s/kind/cluster.yaml`, deleted at the end with nothing of it left on the
host."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from mcstatbot_testkit.telegram import BotApiServer

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts" / "kind"
KIND_CONFIG = ROOT / "k8s" / "kind" / "cluster.yaml"


def script(*args: str, env: dict[str, str] | None = None, timeout: float = 1700) -> list[str]:
    """Run a script of scripts/; its stdout's lines (the test fails with its stderr when it fails)."""
    result = subprocess.run(
        ["bash", *args], capture_output=True, text=True, check=False, timeout=timeout, env=env
    )
    assert result.returncode == 0, f"{args[0]} failed:\n{result.stderr[-6000:]}"
    return result.stdout.strip().splitlines()


@pytest.fixture(scope="session")
def kind_bin() -> Path:
    """The kind toolchain's bin folder (built when missing; seconds when it is in the cache)."""
    return Path(script(str(SCRIPTS / "toolchain.sh"))[-1])


@pytest.fixture(scope="session")
def skaffold(kind_bin: Path) -> Path:
    """The skaffold binary of the kind toolchain."""
    binary = kind_bin / "skaffold"
    assert os.access(binary, os.X_OK), binary
    return binary


@dataclass
class KindCluster:
    """A kind cluster on a private dockerd; `kubectl` against it, `docker exec` into its nodes."""

    name: str
    kubeconfig: Path
    kubectl_bin: Path
    docker_env: dict[str, str] = field(repr=False)
    # The real-cluster toolchain's cache: its bin/ and images/ (Traefik, metrics-server, Redis built here).
    toolchain: Path = field(repr=False)
    # The private dockerd's folder (a place for the tests' own files, removed with the engine).
    engine_dir: Path = field(repr=False)

    @property
    def context(self) -> str:
        return f"kind-{self.name}"

    def kubectl(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.kubectl_bin), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check:
            assert result.returncode == 0, f"kubectl {' '.join(args)}:\n{result.stderr[-4000:]}"
        return result

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def node_exec(self, node: str, *command: str) -> subprocess.CompletedProcess[str]:
        return docker(self.docker_env, "exec", node, *command)


def docker(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=False, env=env, timeout=timeout
    )
    assert result.returncode == 0, f"docker {' '.join(args)}:\n{result.stderr[-4000:]}"
    return result


def host_network_state() -> dict[str, set[str]]:
    """The host's network links and firewall rules (counters left out), to compare before and after."""
    state: dict[str, set[str]] = {"links": {p.name for p in Path("/sys/class/net").iterdir()}}
    for name, tool in (("iptables", ["iptables-save"]), ("nftables", ["nft", "list", "ruleset"])):
        with contextlib.suppress(OSError):
            out = subprocess.run(tool, capture_output=True, text=True, timeout=30, check=False).stdout
            state[name] = {line for line in out.splitlines() if line and not line.startswith(("#", ":"))}
    return state


@pytest.fixture(scope="session")
def kind_cluster(kind_bin: Path) -> Iterator[KindCluster]:
    """`kind create cluster --config k8s/kind/cluster.yaml --image <the node image>` on a private dockerd;
    deleted at the end, its network and engine with it, and the host left as it was."""
    if os.geteuid() != 0:
        pytest.fail("the kind tests cannot run: dockerd needs root")
    toolchain = Path(script(str(ROOT / "scripts" / "cluster" / "toolchain.sh"))[-1])
    cluster_bin = toolchain / "bin"
    before = host_network_state()
    engine_dir = Path(tempfile.mkdtemp(prefix="mcsb-docker-kind-", dir="/tmp"))
    host = script(str(SCRIPTS / "dockerd.sh"), "start", str(engine_dir), timeout=120)[-1]
    env = {
        **os.environ,
        # Debian's docker client (20.10, as the engine) before any newer one on PATH
        "PATH": f"/usr/bin:{os.environ.get('PATH', '')}",
        "DOCKER_HOST": host,
        "DOCKER_CONFIG": str(engine_dir / "cli"),
    }
    kubeconfig = engine_dir / "kubeconfig"
    try:
        image, archive = script(str(SCRIPTS / "node-image.sh"), env=env, timeout=3000)[-2:]
        if subprocess.run(
            ["docker", "image", "inspect", image], env=env, capture_output=True, check=False
        ).returncode:
            docker(env, "load", "-i", archive)
        created = subprocess.run(
            [
                str(kind_bin / "kind"),
                "create",
                "cluster",
                "--config",
                str(KIND_CONFIG),
                "--image",
                image,
                "--kubeconfig",
                str(kubeconfig),
                "--wait",
                "240s",
            ],
            capture_output=True,
            text=True,
            check=False,
            env=env,
            timeout=600,
        )
        assert created.returncode == 0, f"kind create cluster failed:\n{created.stderr[-6000:]}"
        yield KindCluster("mcstatbot", kubeconfig, cluster_bin / "kubectl", env, toolchain, engine_dir)
    finally:
        deleted = subprocess.run(
            [
                str(kind_bin / "kind"),
                "delete",
                "cluster",
                "--name",
                "mcstatbot",
                "--kubeconfig",
                str(kubeconfig),
            ],
            capture_output=True,
            text=True,
            check=False,
            env=env,
            timeout=300,
        )
        # kind's node containers (the engine's others, a build's say, go with the engine below).
        containers = subprocess.run(
            ["docker", "ps", "-aq", "--filter", "label=io.x-k8s.kind.cluster"],
            capture_output=True,
            text=True,
            check=False,
            env=env,
        ).stdout.split()
        subprocess.run(["docker", "network", "rm", "kind"], capture_output=True, check=False, env=env)
        stopped = subprocess.run(
            ["bash", str(SCRIPTS / "dockerd.sh"), "stop", str(engine_dir)],
            capture_output=True,
            text=True,
            check=False,
        )
        after = host_network_state()
        left = [
            f"{k}: {sorted(after.get(k, set()) - v)}" for k, v in before.items() if after.get(k, set()) - v
        ]
        if containers:
            left.append(f"containers after kind delete: {containers}")
        if engine_dir.exists():
            left.append(f"engine folder {engine_dir}")
        if deleted.returncode != 0 or stopped.returncode != 0 or left:
            pytest.fail(
                f"the kind cluster did not go cleanly: {left}\n"
                f"{deleted.stderr[-3000:]}\n{stopped.stderr[-3000:]}"
            )


def skaffold_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment skaffold runs in: helm 3 first on PATH (skaffold's helm deployer runs `helm
    template`), no cluster, no telemetry, no update check; `env` on top."""
    return {
        **os.environ,
        "PATH": f"{ROOT / '.tools' / 'bin'}:{os.environ.get('PATH', '')}",
        "KUBECONFIG": str(ROOT / "nonexistent-kubeconfig"),
        "SKAFFOLD_COLLECT_METRICS": "false",
        "SKAFFOLD_UPDATE_CHECK": "false",
        **(env or {}),
    }


def run_skaffold(
    skaffold: Path,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    cwd: Path = ROOT,
) -> subprocess.CompletedProcess[str]:
    """skaffold in the checkout (or `cwd`), in `skaffold_env(env)`."""
    return subprocess.run(
        [str(skaffold), *args],
        cwd=cwd,
        env=skaffold_env(env),
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


class Relay:
    """A TCP relay from the kind network's gateway address to a port on this machine's loopback."""

    def __init__(self, listen_host: str, target_port: int) -> None:
        self.server = socket.create_server((listen_host, 0))
        self.port = self.server.getsockname()[1]
        self.target_port = target_port
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.closed = True
        self.server.close()


@contextlib.contextmanager
def bot_api_on_kind_network(network_inspect: str) -> Iterator[tuple[BotApiServer, str]]:
    """The Bot API test server on this machine, and the URL pods use for it: a relay on the gateway address
    of the kind docker network (`docker network inspect kind`'s output)."""
    network = json.loads(network_inspect)[0]
    gateway = next(c["Gateway"] for c in network["IPAM"]["Config"] if "." in c.get("Gateway", ""))
    with BotApiServer() as api:
        relay = Relay(gateway, api.port)
        try:
            yield api, f"http://{gateway}:{relay.port}"
        finally:
            relay.close()
