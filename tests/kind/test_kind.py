"""The product on a real kind cluster: build and load both images, install the kind components and the chart
with the kind values, wait for the rollout, run `helm test`, and drive one `/status` through the bot.

Needs docker (a running engine), kind, kubectl and helm 3; it is skipped, with the reason, where any of them
is missing (the CI machines of `make test` have no kind; `.github/workflows/kind-e2e.yml` runs it).
Telegram is the Bot API test server of the test kit, on this machine; the pods reach it through a small TCP
relay on the kind network's gateway address.

Environment: KIND_CLUSTER (default `mcstatbot-e2e`), KIND_KEEP_CLUSTER=1 keeps the cluster afterwards,
MCSTATBOT_BASE_IMAGE overrides the images' BASE_IMAGE build argument.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from mcstatbot_testkit.net import free_port
from mcstatbot_testkit.telegram import BotApiServer

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "mcstatbot"
CLUSTER = os.environ.get("KIND_CLUSTER", "mcstatbot-e2e")
WEBHOOK_SECRET = "kind-e2e-webhook-secret"  # noqa: S105 - a made-up secret
TOOLS = ROOT / ".tools" / "bin"


def which(name: str) -> str | None:
    return shutil.which(name, path=f"{TOOLS}{os.pathsep}{os.environ.get('PATH', '')}")


def missing_prerequisite() -> str | None:
    for tool in ("docker", "kind", "kubectl", "helm"):
        if which(tool) is None:
            return f"{tool} is not installed"
    docker = which("docker")
    assert docker is not None
    info = subprocess.run([docker, "info"], capture_output=True, text=True, check=False, timeout=30)
    if info.returncode != 0:
        return f"no Docker engine answers (`docker info`: {info.stderr.strip()[:200]})"
    return None


def sh(*args: str, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess[str]:
    tool = which(args[0]) or args[0]
    result = subprocess.run(
        [tool, *args[1:]], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"`{' '.join(args)}` failed ({result.returncode}):\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def kubectl(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sh("kubectl", "--context", f"kind-{CLUSTER}", *args, timeout=timeout, check=check)


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


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    reason = missing_prerequisite()
    if reason is not None:
        pytest.skip(f"the kind end-to-end test needs docker, kind, kubectl and helm 3: {reason}")
    existing = sh("kind", "get", "clusters").stdout.split()
    if CLUSTER not in existing:
        sh(
            "kind",
            "create",
            "cluster",
            "--name",
            CLUSTER,
            "--config",
            "k8s/kind/cluster.yaml",
            "--wait",
            "180s",
        )
    try:
        yield CLUSTER
    finally:
        if os.environ.get("KIND_KEEP_CLUSTER") != "1":
            sh("kind", "delete", "cluster", "--name", CLUSTER, check=False)


@pytest.fixture(scope="module")
def images(cluster: str) -> None:
    base = os.environ.get("MCSTATBOT_BASE_IMAGE")
    for service in ("bot", "query"):
        args = ["docker", "build", "-f", f"apps/{service}/Dockerfile", "-t", f"mcstatbot-{service}:dev"]
        if base:
            args += ["--build-arg", f"BASE_IMAGE={base}"]
        sh(*args, ".", timeout=1800)
    sh("kind", "load", "docker-image", "mcstatbot-bot:dev", "mcstatbot-query:dev", "--name", cluster)


@pytest.fixture(scope="module")
def telegram(cluster: str) -> Iterator[tuple[BotApiServer, str]]:
    """The Bot API test server and the URL the pods use for it (through the relay)."""
    network = json.loads(sh("docker", "network", "inspect", "kind").stdout)[0]
    gateway = next(c["Gateway"] for c in network["IPAM"]["Config"] if "." in c.get("Gateway", ""))
    with BotApiServer() as api:
        relay = Relay(gateway, api.port)
        try:
            yield api, f"http://{gateway}:{relay.port}"
        finally:
            relay.close()


@pytest.fixture(scope="module")
def installed(cluster: str, images: None, telegram: tuple[BotApiServer, str]) -> str:
    api, api_url = telegram
    relay_port = int(api_url.rsplit(":", 1)[1])
    sh("kubectl", "config", "use-context", f"kind-{cluster}")
    kubectl("apply", "-f", "k8s/overlays/kind/namespace.yaml")
    secret = kubectl(
        "-n",
        NAMESPACE,
        "create",
        "secret",
        "generic",
        "mcstatbot-telegram",
        f"--from-literal=telegram-bot-token={api.token}",
        f"--from-literal=webhook-secret={WEBHOOK_SECRET}",
        "--dry-run=client",
        "-o",
        "yaml",
    ).stdout
    subprocess.run(
        [which("kubectl") or "kubectl", "--context", f"kind-{cluster}", "apply", "-f", "-"],
        input=secret,
        text=True,
        check=True,
        capture_output=True,
    )
    kubectl("apply", "-k", "k8s/kind/metrics-server")
    kubectl("apply", "-k", "k8s/overlays/kind/dynamodb-local")
    egress = [
        {
            "to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "dynamodb-local"}}}],
            "ports": [{"port": 8000, "protocol": "TCP"}],
        },
        {"ports": [{"port": relay_port, "protocol": "TCP"}]},  # the Bot API test server, through the relay
    ]
    sh(
        "helm",
        "upgrade",
        "--install",
        "mcstatbot",
        "charts/mcstatbot",
        "--namespace",
        NAMESPACE,
        "--kube-context",
        f"kind-{cluster}",
        "-f",
        "k8s/overlays/kind/app/values.yaml",
        "--set",
        f"telegram.apiBaseUrl={api_url}",
        "--set-json",
        f"networkPolicy.botExtraEgress={json.dumps(egress)}",
        "--wait",
        "--timeout",
        "10m",
    )
    kubectl(
        "-n", NAMESPACE, "wait", "--for=condition=complete", "job/dynamodb-create-table", "--timeout=300s"
    )
    for deployment in (
        "mcstatbot-bot",
        "mcstatbot-query",
        "mcstatbot-redis",
        "mcstatbot-otel-collector",
        "dynamodb-local",
    ):
        kubectl("-n", NAMESPACE, "rollout", "status", f"deployment/{deployment}", "--timeout=300s")
    return "mcstatbot"


def test_helm_test_passes(cluster: str, installed: str) -> None:
    result = sh(
        "helm", "test", installed, "--namespace", NAMESPACE, "--kube-context", f"kind-{cluster}", "--logs"
    )
    assert "Phase:          Succeeded" in result.stdout, result.stdout


def test_status_through_the_bot(cluster: str, installed: str, telegram: tuple[BotApiServer, str]) -> None:
    """Telegram (the test server) posts `/status` to the bot's Service; the bot asks the query service in the
    cluster and answers the chat through the Bot API."""
    api, _ = telegram
    local_port = free_port()
    forward = subprocess.Popen(
        [
            which("kubectl") or "kubectl",
            "--context",
            f"kind-{cluster}",
            "-n",
            NAMESPACE,
            "port-forward",
            "svc/mcstatbot-bot",
            f"{local_port}:8080",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(3)
        api.set_webhook(f"http://127.0.0.1:{local_port}/telegram/webhook", secret_token=WEBHOOK_SECRET)
        since = api.last_seq
        api.send_text(777, "/status 127.0.0.1:25565")
        reply = api.wait_for_call_sync(
            "sendMessage", lambda call: str(call.chat_id) == "777", since=since, timeout=60
        )
        assert reply.text  # the query service refuses the private address; the bot says so in the chat
        assert any(d.status == 200 for d in api.deliveries)
    finally:
        forward.terminate()
        forward.wait(timeout=10)
