"""A real single-node Kubernetes cluster for the tests in tests/cluster, started once per session.

`scripts/cluster/cluster.sh` builds (or finds in the cache) the pinned binaries and images and starts the
cluster in a network namespace of its own; this fixture starts it as cluster `pytest` on the link
10.213.2.0/30 (host .1, node .2) and ALWAYS stops it again, also when a test fails, the run is interrupted
(Ctrl-C, SIGTERM) or pytest-timeout fires. The project's two images are built as tests/images builds them
(its private dockerd and debootstrapped base, imported from there), saved with `docker save` into a cache
keyed by the sources, and imported into the cluster's containerd: nothing is pulled.

Services the cluster needs from outside (the Bot API test server, DynamoDB Local, Minecraft peers) run
in this test process on the host end of the link; pods reach them through the node's masquerading bridge.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import pytest
import uvicorn
import yaml
from mcstatbot_testkit.dynamodb import DUMMY_CREDENTIALS, DynamoDBLocal
from mcstatbot_testkit.minecraft import BedrockPeer, JavaPeer
from mcstatbot_testkit.net import free_port, wait_for_tcp
from mcstatbot_testkit.telegram import BotApiServer
from mcstatbot_testkit.watching import wait_until

from tests.images.conftest import base_image, engine, run_checked  # noqa: F401 - fixtures reused by import

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.images.conftest import DockerEngine

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts" / "cluster"
TOOLS_BIN = ROOT / ".tools" / "bin"
# The test cluster's name and link subnet (10.213.<index>.0/30); MCSTATBOT_TEST_CLUSTER=<name>:<index> gives a
# second checkout's run a cluster of its own beside this one.
CLUSTER_NAME, _, CLUSTER_INDEX = os.environ.get("MCSTATBOT_TEST_CLUSTER", "pytest:2").partition(":")
CLUSTER_DIR = Path(f"/tmp/mcsb-{CLUSTER_NAME}")  # noqa: S108 - root-only state of the test cluster, removed at the end
CACHE_ROOT = Path(os.environ.get("MCSTATBOT_CACHE", str(Path.home() / ".cache" / "mcstatbot"))) / "cluster"
# A cold toolchain build (no cache) takes 45 minutes or more on 2 cores; a warm start about a minute.
TOOLCHAIN_TIMEOUT = 5400
START_TIMEOUT = 420
IMAGE_PREFIX = "mcstatbot.local/mcstatbot-"


@dataclass
class Cluster:
    """The running cluster: kubectl and helm against it, the addresses of both ends of its link."""

    dir: Path
    kubeconfig: Path
    node_ip: str
    host_ip: str
    ingress_url: str
    containerd_socket: str
    bin: Path

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            # kustomize --enable-helm calls `helm`: helm 3 first, then this cluster's kubectl.
            "PATH": f"{TOOLS_BIN}:{self.bin}:{os.environ.get('PATH', '')}",
            "HELM_CACHE_HOME": str(self.dir / "helm" / "cache"),
            "HELM_CONFIG_HOME": str(self.dir / "helm" / "config"),
            "HELM_DATA_HOME": str(self.dir / "helm" / "data"),
        }

    def run(
        self, *args: str, check: bool = True, timeout: float = 180, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run_checked(list(args), env=self.env, timeout=timeout, check=check, stdin=stdin)

    def kubectl(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.run(str(self.bin / "kubectl"), *args, **kwargs)

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def apply(self, manifest: str, namespace: str | None = None) -> None:
        ns = ["-n", namespace] if namespace else []
        self.kubectl("apply", *ns, "-f", "-", stdin=manifest)

    def import_image(self, tarball: Path) -> None:
        self.run(
            "ctr", "--address", self.containerd_socket, "-n", "k8s.io", "images", "import", str(tarball),
            timeout=600,
        )  # fmt: skip


def cluster_script(
    action: str, timeout: float, name: str = CLUSTER_NAME, index: str = CLUSTER_INDEX
) -> subprocess.CompletedProcess[str]:
    """`scripts/cluster/cluster.sh <action>` for the cluster `name` (state in /tmp/mcsb-<name>)."""
    env = {
        **os.environ,
        "CLUSTER_NAME": name,
        "CLUSTER_INDEX": index,
        "CLUSTER_DIR": f"/tmp/mcsb-{name}",  # noqa: S108 - as CLUSTER_DIR
        "CLUSTER_START_TIMEOUT": str(START_TIMEOUT),
    }
    return subprocess.run(
        ["bash", str(SCRIPTS / "cluster.sh"), action],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


KERNEL_SETTINGS = ("vm.overcommit_memory", "kernel.panic", "kernel.panic_on_oops")


def _kernel_settings() -> dict[str, str]:
    return {k: Path("/proc/sys", *k.split(".")).read_text().strip() for k in KERNEL_SETTINGS}


def leftovers(
    settings_before: dict[str, str], cluster: str = CLUSTER_NAME, index: str = CLUSTER_INDEX
) -> list[str]:
    """What of the test cluster is still on the host: should be nothing once `cluster.sh down` ran."""
    found: list[str] = []
    name = f"mcsb-{cluster}"
    subnet = f"10.213.{index}."
    state = Path(f"/tmp/{name}")  # noqa: S108 - as cluster_script
    for line in Path("/proc/self/mounts").read_text().splitlines():
        point = line.split()[1]
        if point.startswith(str(state)) or point == f"/run/netns/{name}":
            found.append(f"mount {point}")
    if Path(f"/run/netns/{name}").exists():
        found.append(f"network namespace {name}")
    if Path(f"/sys/class/net/{name}").exists():
        found.append(f"network link {name}")
    found += [f"cgroup {d}" for d in Path("/sys/fs/cgroup").glob(f"*/{name}")]
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if str(state).encode() in (proc / "cmdline").read_bytes():
                found.append(f"process {proc.name}")
    for tool in (["iptables-save"], ["nft", "list", "ruleset"]):
        with contextlib.suppress(OSError):
            rules = subprocess.run(tool, capture_output=True, text=True, timeout=30, check=False).stdout
            found += [f"{tool[0]}: {r}" for r in rules.splitlines() if subnet in r or name in r]
    if state.exists():
        found.append(f"state folder {state}")
    changed = {k: v for k, v in _kernel_settings().items() if settings_before.get(k) != v}
    found += [f"kernel setting {k}={v} (was {settings_before[k]})" for k, v in changed.items()]
    return found


def _raise_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.fail("the cluster tests cannot run: they need root (network namespace, containerd, kubelet)")
    # Leftovers of an interrupted earlier run of this same cluster (a no-op when there are none).
    stale = cluster_script("down", timeout=180)
    if stale.returncode != 0:
        pytest.fail(f"the leftovers of an earlier test cluster could not be removed:\n{stale.stderr[-4000:]}")
    toolchain = subprocess.run(
        ["bash", str(SCRIPTS / "toolchain.sh")],
        capture_output=True,
        text=True,
        timeout=TOOLCHAIN_TIMEOUT,
        check=False,
    )
    if toolchain.returncode != 0:
        pytest.fail(f"the cluster toolchain did not build:\n{toolchain.stderr[-6000:]}")
    settings_before = _kernel_settings()
    previous = signal.signal(signal.SIGTERM, _raise_on_sigterm)
    try:
        started = time.monotonic()
        up = cluster_script("up", timeout=START_TIMEOUT + 120)
        if up.returncode != 0:
            failed_logs = Path(f"{CLUSTER_DIR}.failed-logs")
            pytest.fail(f"the cluster did not start:\n{up.stderr[-6000:]}\n(logs kept in {failed_logs})")
        print(f"cluster started in {time.monotonic() - started:.0f} s")  # noqa: T201 - a measurement for the log
        values = dict(line.split("=", 1) for line in (CLUSTER_DIR / "env").read_text().splitlines() if line)
        yield Cluster(
            dir=CLUSTER_DIR,
            kubeconfig=Path(values["KUBECONFIG"]),
            node_ip=values["CLUSTER_NODE_IP"],
            host_ip=values["CLUSTER_HOST_IP"],
            ingress_url=values["CLUSTER_INGRESS_URL"],
            containerd_socket=values["CLUSTER_CONTAINERD_SOCKET"],
            bin=Path(values["CLUSTER_BIN"]),
        )
    finally:
        down = cluster_script("down", timeout=300)
        signal.signal(signal.SIGTERM, previous)
        left = leftovers(settings_before)
        if down.returncode != 0 or left:
            pytest.fail(f"the cluster did not stop cleanly: {left}\n{down.stderr[-4000:]}")


def _sources_key() -> str:
    """A digest of everything the three images are built from (tracked files, as they are on disk)."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "apps", "packages", "pyproject.toml", "uv.lock", ".dockerignore"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    digest = hashlib.sha256()
    for name in sorted(f for f in files if f):
        path = ROOT / name.decode()
        if path.is_file():
            digest.update(name + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


@dataclass
class AppImages:
    bot: str
    query: str
    watcher: str
    tag: str


@pytest.fixture(scope="session")
def app_image_tarballs(request: pytest.FixtureRequest) -> dict[str, Path]:
    """`docker save` tarballs of the three images, built once per source state (see _sources_key); only the
    missing ones are built."""
    tag = _sources_key()
    folder = CACHE_ROOT / "app-images" / tag
    tarballs = {service: folder / f"{service}.tar" for service in ("bot", "query", "watcher")}
    missing = {service: tarball for service, tarball in tarballs.items() if not tarball.is_file()}
    if missing:
        docker: DockerEngine = request.getfixturevalue("engine")
        base: str = request.getfixturevalue("base_image")
        folder.mkdir(parents=True, exist_ok=True)
        for service, tarball in missing.items():
            image = f"{IMAGE_PREFIX}{service}:{tag}"
            started = time.monotonic()
            docker.docker(
                "build", "--network", "host", "--build-arg", f"BASE_IMAGE={base}",
                "--build-arg", f"APP={service}", "-f", "apps/Dockerfile", "-t", image, ".",
                timeout=1200,
            )  # fmt: skip
            partial = tarball.with_suffix(".partial")
            docker.docker("save", "-o", str(partial), image, timeout=600)
            partial.rename(tarball)
            print(f"{image}: built and saved in {time.monotonic() - started:.0f} s")  # noqa: T201
    return tarballs


@pytest.fixture(scope="session")
def app_images(cluster: Cluster, app_image_tarballs: dict[str, Path]) -> AppImages:
    """mcstatbot.local/mcstatbot-{bot,query,watcher}:<sources key>, imported into the cluster's containerd."""
    for tarball in app_image_tarballs.values():
        cluster.import_image(tarball)
    tag = app_image_tarballs["bot"].parent.name
    return AppImages(
        bot=f"{IMAGE_PREFIX}bot:{tag}",
        query=f"{IMAGE_PREFIX}query:{tag}",
        watcher=f"{IMAGE_PREFIX}watcher:{tag}",
        tag=tag,
    )


@contextlib.contextmanager
def namespace(cluster: Cluster, name: str, *, enforce: str = "restricted") -> Iterator[str]:
    """A namespace labelled with the Pod Security level `enforce`, deleted (and waited for) afterwards."""
    cluster.apply(
        f"""
apiVersion: v1
kind: Namespace
metadata:
  name: {name}
  labels:
    pod-security.kubernetes.io/enforce: {enforce}
    pod-security.kubernetes.io/enforce-version: latest
"""
    )
    try:
        yield name
    finally:
        cluster.kubectl(
            "delete", "namespace", name, "--wait=true", "--timeout=180s", check=False, timeout=240
        )


CHART = ROOT / "charts" / "mcstatbot"
KIND_VALUES = ROOT / "k8s" / "overlays" / "kind" / "app" / "values.yaml"
# The Ingress host of the kind values (mcstatbot.localtest.me): Traefik routes by it.
KIND_INGRESS_HOST = str(yaml.safe_load(KIND_VALUES.read_text())["ingress"]["hosts"][0]["host"])
EKS_VALUES = ROOT / "k8s" / "overlays" / "eks" / "app" / "values.yaml"
HELMS = {"helm3": TOOLS_BIN / "helm", "helm4": TOOLS_BIN / "helm4"}
RELEASE = "mcstatbot"
TABLE = "user_sessions"
REDIS_IMAGE = "mcstatbot.local/redis:bookworm"


class LinkBotApiServer(BotApiServer):
    """The testkit's Bot API test server, listening on the host end of the cluster's link for the pods."""

    def __init__(self, host: str) -> None:
        super().__init__()
        self.host = host

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="bot-api-link-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while (self._loop is None or not self._server.started) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not self._server.started:
            pytest.fail(f"the Bot API test server did not start on {self.host}:{self.port}")
        return self

    def webhook_host(self, host: str | None) -> None:
        """Send webhook deliveries with `Host: host` (an Ingress host that no DNS here resolves), or not."""
        assert self._http is not None
        if host is None:
            self._http.headers.pop("Host", None)
        else:
            self._http.headers["Host"] = host


@pytest.fixture(scope="session")
def bot_api(cluster: Cluster) -> Iterator[LinkBotApiServer]:
    with LinkBotApiServer(cluster.host_ip) as server:
        yield server


@pytest.fixture(scope="session")
def dynamodb(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DynamoDBLocal]:
    """DynamoDB Local on the host (it listens on every address, the link's included), with the table.

    One database for every caller (`-sharedDb`, through `persistent`): in memory, DynamoDB Local keeps a
    database per access key and region, and the pods sign with the chart's dummy key (`local`), not with the
    key the table is created with here, so they would find no table and run degraded.
    """
    with DynamoDBLocal(tmp_path_factory.mktemp("dynamodb") / "dynamodb.log", persistent=True) as ddb:
        env = {
            **DUMMY_CREDENTIALS,
            "AWS_ENDPOINT_URL_DYNAMODB": ddb.endpoint_url,
            "DYNAMODB_TABLE": TABLE,
            "PATH": str(Path(sys.executable).parent),
        }
        subprocess.run(
            [sys.executable, "-m", "mcstatbot_bot", "create-table"], env=env, check=True, timeout=120
        )
        yield ddb


def link_service(name: str, ip: str, port: int, target_port: int) -> str:
    """A Service without selector whose one endpoint is ip:target_port (a service on the host end)."""
    return f"""
apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  ports:
    - {{name: http, port: {port}, targetPort: {target_port}, protocol: TCP}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}-link
  labels:
    kubernetes.io/service-name: {name}
addressType: IPv4
ports:
  - {{name: http, port: {target_port}, protocol: TCP}}
endpoints:
  - addresses: ["{ip}"]
"""


def cluster_values(case: str, images: AppImages, bot_api: BotApiServer) -> dict[str, Any]:
    """What adapts a documented values set to this cluster (images, Ingress class, stand-ins)."""

    def image(reference: str) -> dict[str, Any]:
        repository = reference.rsplit(":", 1)[0]
        return {"image": {"repository": repository, "tag": images.tag, "pullPolicy": "Never"}}

    values: dict[str, Any] = {
        "telegram": {"apiBaseUrl": bot_api.base_url},
        "bot": image(images.bot),
        "query": image(images.query),
        "watcher": image(images.watcher),
        "otel": {"enabled": False, "collector": {"enabled": False}},
        # DynamoDB Local through the `dynamodb-local` Service of the namespace (see link_service).
        "dynamodb": {"endpoint": "http://dynamodb-local:8000", "localCredentials": True},
    }
    if case in {"kind", "polling"}:
        values["redis"] = {
            "image": {
                "repository": REDIS_IMAGE.split(":", maxsplit=1)[0],
                "tag": "bookworm",
                "pullPolicy": "Never",
            }
        }
        values["ingress"] = {"className": "traefik"}
        values["networkPolicy"] = {
            "botIngressFrom": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "traefik"}}}
            ]
        }
    if case == "polling":
        values["telegram"]["mode"] = "polling"
        values["bot"].update({"replicaCount": 1, "autoscaling": {"enabled": False}})
        values["ingress"] = {"enabled": False}
    if case == "eks":
        values["ingress"] = {"hosts": []}
        values["externalRedis"] = {"url": "redis://redis:6379/0"}
    return values


def bot_ready(cluster: Cluster, ns: str) -> dict[str, Any]:
    """The bot's /ready answer, from inside its pod: `state_store` is "ok" only when DynamoDB answers."""
    ready = cluster.kubectl(
        "exec", "-n", ns, f"deploy/{RELEASE}-bot", "--", "python", "-c",
        "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8080/ready').read().decode())",
    ).stdout  # fmt: skip
    answer: dict[str, Any] = json.loads(ready)
    return answer


@contextlib.contextmanager
def forward_on_link(cluster: Cluster, port: int, *, udp: bool = False) -> Iterator[str]:
    """`host:port` on the host end of the link, forwarded by socat to 127.0.0.1:`port` (a loopback peer);
    `udp` for a Bedrock peer (one socat child per client address, as a RakNet ping comes and goes)."""
    socat = shutil.which("socat")
    assert socat is not None, "socat is missing (scripts/cluster/toolchain.sh installs it)"
    link_port = free_port(socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
    proto = "UDP" if udp else "TCP"
    listen = f"{proto}-LISTEN:{link_port},bind={cluster.host_ip},reuseaddr,fork"
    # its own process group: a UDP child (one per client address) never sees its peer close, so stopping
    # only the listener would leave the children running after the test
    forwarder = subprocess.Popen([socat, listen, f"{proto}:127.0.0.1:{port}"], start_new_session=True)
    try:
        if udp:
            wait_until(
                lambda: f":{link_port:04X} " in Path("/proc/net/udp").read_text(),
                timeout=10,
                what=f"socat listening on UDP {link_port}",
            )
        else:
            wait_for_tcp(link_port, host=cluster.host_ip, timeout=10)
        yield f"{cluster.host_ip}:{link_port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(forwarder.pid, signal.SIGTERM)
        forwarder.wait(timeout=10)


@pytest.fixture(scope="session")
def java_on_link(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[JavaPeer, str]]:
    """A Java peer, and `host:port` on the host end of the link that forwards to it."""
    with (
        JavaPeer(tmp_path_factory.mktemp("java") / "java.log") as peer,
        forward_on_link(cluster, peer.port) as at,
    ):
        yield peer, at


@pytest.fixture(scope="session")
def bedrock_on_link(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[BedrockPeer, str]]:
    """A Bedrock peer (UDP), and `host:port` on the host end of the link that forwards to it."""
    log = tmp_path_factory.mktemp("bedrock") / "bedrock.log"
    with BedrockPeer(log) as peer, forward_on_link(cluster, peer.port, udp=True) as at:
        yield peer, at
