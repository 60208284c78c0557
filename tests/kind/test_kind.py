"""The product on a real kind cluster: build and load both images, install the kind components
(metrics-server, Traefik, DynamoDB Local) and the chart with the kind values, wait for
the rollout, run `helm test`, and drive `/status` through the bot: once to its Service, once through the
Ingress on the host's port 80.

Needs docker (a running engine), kind, kubectl and helm 3; it is skipped, with the reason, where any of them
is missing (the CI machines of `make test` have no kind; `.github/workflows/kind-e2e.yml` runs it).
Telegram is the Bot API test server of the test kit, on this machine; the pods reach it through a small TCP
relay on the kind network's gateway address.

Environment: KIND_CLUSTER (default `mcstatbot-e2e`), KIND_KEEP_CLUSTER=1 keeps the cluster afterwards,
MCSTATBOT_BASE_IMAGE overrides the images' BASE_IMAGE build argument.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import yaml
from mcstatbot_bot.formatting import Problem, problem
from mcstatbot_common.addresses import parse_address
from mcstatbot_testkit.net import free_port

from tests.kind.conftest import bot_api_on_kind_network

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mcstatbot_testkit.telegram import BotApiServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "mcstatbot"
CLUSTER = os.environ.get("KIND_CLUSTER", "mcstatbot-e2e")
WEBHOOK_SECRET = "kind-e2e-webhook-secret"  # noqa: S105 - a made-up secret
TOOLS = ROOT / ".tools" / "bin"
KIND_VALUES = ROOT / "k8s" / "overlays" / "kind" / "app" / "values.yaml"
# The query service refuses private addresses (ALLOW_PRIVATE_ADDRESSES=false), so `/status` of a loopback
# address gets the bot's fixed "forbidden address" reply ("... points to a private or reserved network
# address ..."): it proves the bot reached the query service (through their NetworkPolicies) without any
# Minecraft server. Had the bot not reached it, it would say the status service is unavailable.
PRIVATE_SERVER = "127.0.0.1:25565"
FORBIDDEN_REPLY = problem(Problem.FORBIDDEN_ADDRESS, address=str(parse_address(PRIVATE_SERVER)))


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
        args = ["docker", "build", "-f", "apps/Dockerfile", "--build-arg", f"APP={service}"]
        args += ["-t", f"mcstatbot-{service}:dev"]
        if base:
            args += ["--build-arg", f"BASE_IMAGE={base}"]
        sh(*args, ".", timeout=1800)
    sh("kind", "load", "docker-image", "mcstatbot-bot:dev", "mcstatbot-query:dev", "--name", cluster)


@pytest.fixture(scope="module")
def telegram(cluster: str) -> Iterator[tuple[BotApiServer, str]]:
    """The Bot API test server and the URL the pods use for it (through the relay)."""
    with bot_api_on_kind_network(sh("docker", "network", "inspect", "kind").stdout) as api:
        yield api


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
    kubectl("apply", "-k", "k8s/kind/traefik")
    kubectl("apply", "-k", "k8s/overlays/kind/dynamodb-local")
    kubectl("-n", "traefik", "rollout", "status", "deployment/traefik", "--timeout=300s")
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
        api.send_text(777, f"/status {PRIVATE_SERVER}")
        reply = api.wait_for_call_sync(
            "sendMessage", lambda call: str(call.chat_id) == "777", since=since, timeout=60
        )
        assert reply.text == FORBIDDEN_REPLY
        assert any(d.status == 200 for d in api.deliveries)
    finally:
        api.delete_webhook()
        forward.terminate()
        forward.wait(timeout=10)


def ingress_host() -> str:
    values = yaml.safe_load(KIND_VALUES.read_text())
    host: str = values["ingress"]["hosts"][0]["host"]
    return host


def test_webhook_through_the_ingress(
    cluster: str, installed: str, telegram: tuple[BotApiServer, str]
) -> None:
    """An update POSTed to http://127.0.0.1/telegram/webhook with the kind Ingress host goes through kind's
    port mapping to Traefik (hostPort 80 on the control plane), past the bot's NetworkPolicy (which admits
    the traefik namespace) to a bot pod, which answers in the chat."""
    api, _ = telegram
    host = ingress_host()
    # The controller has taken the Ingress: it writes the status address it was given.
    deadline = time.monotonic() + 180
    status = ""
    while time.monotonic() < deadline:
        status = kubectl(
            "-n",
            NAMESPACE,
            "get",
            "ingress",
            "mcstatbot-bot",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[*].hostname}",
        ).stdout
        if status == "localhost":
            break
        time.sleep(3)
    assert status == "localhost", f"the controller never took the Ingress (status {status!r})"
    # The update is posted here, through the Ingress: the test server only records what the bot sends back.
    api.delete_webhook()
    since = api.last_seq
    update = api.send_text(778, f"/status {PRIVATE_SERVER}")
    headers = {"Host": host, "X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}
    # Straight to kind's port mapping on this machine, never through a proxy from the environment.
    with httpx.Client(base_url="http://127.0.0.1", trust_env=False, timeout=30) as http:
        answer: httpx.Response | None = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            # Until Traefik has loaded the route and the bot's endpoints: 404 (no router yet), 502 or 503.
            try:
                answer = http.post("/telegram/webhook", json=update, headers=headers)
            except httpx.TransportError:
                answer = None
            if answer is not None and answer.status_code not in {404, 502, 503, 504}:
                break
            time.sleep(2)
        assert answer is not None, "nothing answers on 127.0.0.1:80 (kind's port mapping to the controller)"
        assert answer.status_code == 200, f"{answer.status_code} {answer.text[:500]}"
        assert answer.json()["ok"] is True
        reply = api.wait_for_call_sync(
            "sendMessage", lambda call: str(call.chat_id) == "778", since=since, timeout=60
        )
        assert reply.text == FORBIDDEN_REPLY
        # Without the secret token the request still passes the Ingress, and the bot turns it away.
        refused = http.post("/telegram/webhook", json=update, headers={"Host": host})
        assert refused.status_code == 403, refused.text[:500]
        assert refused.json() == {"ok": False, "detail": "bad secret token"}
