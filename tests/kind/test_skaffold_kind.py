"""skaffold on the offline kind cluster, as the README's kind quick start has a developer use it, word for
word, on the fresh clone of the session's cluster (tests/kind/conftest.py: the quick start's first line,
`make kind-up`, made the cluster; its last, `make kind-down`, deletes it):

- `skaffold run -p kind` builds the three images, loads them into kind (no registry) and deploys the add-ons
  and the chart with the kind profile; the pods run skaffold's tags from the nodes' own image store, the
  add-ons come up, and the images are the Dockerfile's `dev` stage ready for file sync; `skaffold delete -p
  kind` removes what it deployed;
- then the README's second line, `skaffold dev`: a Telegram update posted through the Ingress (kind's port 80
  on this machine, Traefik, the bot's NetworkPolicy) is answered in the chat, the bot's spans reach the
  OpenTelemetry collector, a changed Python file under apps/ is synced into the running pods and seen
  without an image rebuild, and Ctrl-C removes what skaffold deployed (not the namespace and its Secret).

skaffold.yaml, the manifests and the values are the clone's, unchanged: what this machine lacks is in the
environment the commands find (the session fixture says what), and the bot's Bot API server is the test
server, given by `TELEGRAM_API_BASE_URL` as a developer would give a server of their own.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import yaml
from mcstatbot_bot.formatting import Problem, problem
from mcstatbot_common.addresses import parse_address

from tests.chart.conftest import profile
from tests.kind.conftest import EXAMPLE_TOKEN, HELM, ROOT, docker, kind_quick_start, run_skaffold

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mcstatbot_testkit.telegram import BotApiServer

    from tests.kind.conftest import KindCluster

pytestmark = pytest.mark.timeout(2400)

NAMESPACE = "mcstatbot"
RELEASE = "mcstatbot"
KIND_VALUES = ROOT / "k8s" / "overlays" / "kind" / "app" / "values.yaml"
# The query service refuses private addresses, so `/status` of a loopback address gets the bot's fixed
# "forbidden address" reply: proof that the bot reached the query service without any Minecraft server.
PRIVATE_SERVER = "127.0.0.1:25565"
FORBIDDEN_REPLY = problem(Problem.FORBIDDEN_ADDRESS, address=str(parse_address(PRIVATE_SERVER)))
# The sources each service runs (the watcher runs the bot's package too).
RUNS = {
    "bot": ("apps/bot/src", "packages/common/src"),
    "query": ("apps/query/src", "packages/common/src"),
    "watcher": ("apps/watcher/src", "apps/bot/src", "packages/common/src"),
}
# The source change `skaffold dev` syncs: the webhook's answer to a request without the secret token.
SYNCED_FILE = Path("apps/bot/src/mcstatbot_bot/app.py")
REFUSAL = '"bad secret token"'
CHANGED_REFUSAL = '"bad secret token (synced by skaffold)"'
WATCHING = "Watching for changes"
BUILDING = ("Starting build", "Building [")


def test_the_kind_quick_start_is_what_these_tests_follow() -> None:
    assert kind_quick_start((ROOT / "README.md").read_text()) == [
        f"TELEGRAM_BOT_TOKEN={EXAMPLE_TOKEN} make kind-up",
        "skaffold dev",
        "make kind-down",
    ]


class Skaffold:
    """skaffold in the clone, with the developer's environment of the session's cluster."""

    def __init__(self, binary: Path, cluster: KindCluster) -> None:
        self.binary = binary
        self.project = cluster.clone
        self.env = cluster.shell

    def helm(self, *args: str) -> str:
        """helm 3 against the kind cluster; its output."""
        return subprocess.run(
            [str(HELM), *args], capture_output=True, text=True, check=True, env=self.env, timeout=60
        ).stdout

    def run(self, command: str, *extra: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        result = run_skaffold(
            self.binary, command, "-p", "kind", *extra, env=self.env, timeout=timeout, cwd=self.project
        )
        assert result.returncode == 0, (
            f"skaffold {command} failed:\n{result.stdout[-5000:]}\n{result.stderr[-5000:]}"
        )
        return result


@pytest.fixture(scope="module")
def deployed(kind_cluster: KindCluster, skaffold: Path) -> Skaffold:
    """`skaffold run -p kind` done: images built, loaded, the kind add-ons and the chart deployed."""
    tool = Skaffold(skaffold, kind_cluster)
    tool.run("run", "--status-check=true")
    return tool


def pod_images(cluster: KindCluster) -> dict[str, set[str]]:
    """The image of each app container of the release's pods, by component."""
    pods = cluster.kubectl_json("-n", NAMESPACE, "get", "pods", "-l", f"app.kubernetes.io/instance={RELEASE}")
    found: dict[str, set[str]] = {}
    for pod in pods["items"]:
        component = pod["metadata"]["labels"].get("app.kubernetes.io/component", "")
        for container in pod["spec"]["containers"]:
            found.setdefault(component, set()).add(container["image"])
    return found


def test_skaffold_run_builds_loads_and_deploys_the_kind_profile(
    deployed: Skaffold, kind_cluster: KindCluster
) -> None:
    releases = json.loads(deployed.helm("list", "-n", NAMESPACE, "-o", "json"))
    assert [(r["name"], r["status"]) for r in releases] == [(RELEASE, "deployed")]
    images = pod_images(kind_cluster)
    for app in ("bot", "query", "watcher"):
        (image,) = images[app]
        # skaffold's own tag (sha256 policy of the kind profile), loaded into the nodes: never pulled.
        repository, tag = image.rsplit(":", 1)
        assert repository == f"mcstatbot-{app}", image
        assert tag not in {"dev", "latest"}, image
    for node in ("mcstatbot-control-plane", "mcstatbot-worker", "mcstatbot-worker2"):
        listed = kind_cluster.node_exec(node, "crictl", "images", "-o", "json").stdout
        names = {t for i in json.loads(listed)["images"] for t in i.get("repoTags") or []}
        assert any(n.startswith("docker.io/library/mcstatbot-bot:") for n in names), (node, names)
    # The kind add-ons of the profile's manifests come up, and the table job completes.
    for namespace, deployment in (
        ("traefik", "traefik"),
        ("kube-system", "metrics-server"),
        (NAMESPACE, "dynamodb-local"),
        (NAMESPACE, f"{RELEASE}-redis"),
    ):
        kind_cluster.kubectl(
            "-n", namespace, "rollout", "status", f"deployment/{deployment}", "--timeout=300s", timeout=330
        )
    kind_cluster.kubectl(
        "-n", NAMESPACE, "wait", "--for=condition=complete", "job/dynamodb-create-table", "--timeout=300s",
        timeout=330,
    )  # fmt: skip


def sync_dirs(artifact: dict[str, Any]) -> list[str]:
    """The folders in the image that the artifact's sync rules write into (`src` glob under `dest`)."""
    dirs = []
    for rule in artifact["sync"]["manual"]:
        assert rule["src"].endswith("/**/*.py"), rule
        dirs.append(f"{rule['dest']}/{rule['src'].removesuffix('/**/*.py')}")
    return dirs


def test_the_images_are_the_dev_stage_ready_for_file_sync(
    deployed: Skaffold, kind_cluster: KindCluster
) -> None:
    """What skaffold built and the pods run is the Dockerfile's `dev` stage: watchfiles runs the service and
    restarts it on a change in the sources it runs, which the sync rules write and the app user owns."""
    images = pod_images(kind_cluster)
    config = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    artifacts = {a["image"]: a for a in profile(config, "kind")["build"]["artifacts"]}
    assert set(artifacts) == {f"mcstatbot-{app}" for app in RUNS}
    for app, runs in RUNS.items():
        (image,) = images[app]
        inspected = json.loads(docker(kind_cluster.docker_env, "image", "inspect", image).stdout)[0]
        entrypoint: list[str] = inspected["Config"]["Entrypoint"]
        assert entrypoint[:1] == ["watchfiles"], entrypoint
        assert f"mcstatbot-{app}" in entrypoint, entrypoint
        assert inspected["Config"]["User"] == "10001:10001"
        watched = {arg for arg in entrypoint if arg.startswith("/app/")}
        synced = set(sync_dirs(artifacts[f"mcstatbot-{app}"]))
        assert watched == {f"/app/{folder}" for folder in runs}, entrypoint
        assert watched <= synced, (watched, synced)  # every source it runs is synced, not rebuilt
        for folder in sorted(synced):
            owner = docker(
                kind_cluster.docker_env,
                "run", "--rm", "--network", "none", "--entrypoint", "stat", image, "-c", "%u", folder,
            )  # fmt: skip
            assert owner.stdout.strip() == "10001", (folder, owner.stdout)


def ingress_host() -> str:
    values = yaml.safe_load(KIND_VALUES.read_text())
    host: str = values["ingress"]["hosts"][0]["host"]
    return host


def post_through_ingress(
    update: dict[str, Any], *, secret: str | None, until: Any = None, timeout: float = 180
) -> httpx.Response:
    """POST an update to http://127.0.0.1/telegram/webhook with the kind Ingress host, again while the route
    is not there yet (404, 502-504) or `until(response)` is false."""
    headers = {"Host": ingress_host()}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    answer: httpx.Response | None = None
    # Straight to kind's port mapping on this machine, never through a proxy from the environment.
    with httpx.Client(base_url="http://127.0.0.1", trust_env=False, timeout=30) as http:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                answer = http.post("/telegram/webhook", json=update, headers=headers)
            except httpx.TransportError:
                answer = None
            if (
                answer is not None
                and answer.status_code not in {404, 502, 503, 504}
                and (until is None or until(answer))
            ):
                return answer
            time.sleep(2)
    assert answer is not None, "nothing answers on 127.0.0.1:80 (kind's port mapping to Traefik)"
    return answer


def left_deployed(cluster: KindCluster) -> dict[str, list[str]]:
    """What skaffold's kind profile deploys that is still there, by where (nothing once it has gone)."""
    deadline = time.monotonic() + 180
    while True:
        left = {
            "mcstatbot": cluster.kubectl(
                "-n", NAMESPACE, "get", "deployments,statefulsets,jobs,services,ingresses", "-o", "name"
            ).stdout.split(),
            "traefik": cluster.kubectl(
                "get", "namespace", "traefik", "--ignore-not-found", "-o", "name"
            ).stdout.split(),
            "metrics-server": cluster.kubectl(
                "-n", "kube-system", "get", "deployment", "metrics-server", "--ignore-not-found", "-o", "name"
            ).stdout.split(),
        }
        if not any(left.values()) or time.monotonic() > deadline:
            return left
        time.sleep(3)


def test_skaffold_delete_removes_what_it_deployed(deployed: Skaffold, kind_cluster: KindCluster) -> None:
    deployed.run("delete", timeout=600)
    assert deployed.helm("list", "-n", NAMESPACE, "-q").strip() == ""
    left = left_deployed(kind_cluster)
    assert not any(left.values()), left


class SkaffoldDev:
    """The README's `skaffold dev`, running in the developer's shell; its output, line by line."""

    def __init__(self, cluster: KindCluster, command: str) -> None:
        self.output: list[str] = []
        self.process = subprocess.Popen(
            ["bash", "-c", command],
            cwd=cluster.clone,
            env=cluster.shell,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.reader = threading.Thread(
            target=lambda: self.output.extend(self.process.stdout or []), daemon=True
        )
        self.reader.start()

    def tail(self, lines: int = 80) -> str:
        return "".join(self.output[-lines:])

    def count(self, *marks: str) -> int:
        """The lines of skaffold's output with any of `marks`."""
        return sum(any(mark in line for mark in marks) for line in list(self.output))

    def wait_watching(self, more_than: int = 0, timeout: float = 900) -> None:
        deadline = time.monotonic() + timeout
        while self.count(WATCHING) <= more_than:
            assert self.process.poll() is None, "skaffold dev ended:\n" + self.tail()
            assert time.monotonic() < deadline, "skaffold dev did not watch (again):\n" + self.tail()
            time.sleep(1)

    def ctrl_c(self) -> int:
        """Ctrl-C, as in a terminal (SIGINT to its process group); its exit status."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
        try:
            code = self.process.wait(timeout=600)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            code = self.process.wait(timeout=30)
        self.reader.join(timeout=10)
        return code


@pytest.fixture(scope="module")
def dev(kind_cluster: KindCluster) -> Iterator[SkaffoldDev]:
    """The quick start's `skaffold dev`, once it has deployed and watches for changes (after `skaffold
    delete -p kind`, so it deploys everything afresh)."""
    _, command, _ = kind_quick_start((kind_cluster.clone / "README.md").read_text())
    running = SkaffoldDev(kind_cluster, command)
    try:
        running.wait_watching()
        yield running
    finally:
        running.ctrl_c()


def webhook_secret(cluster: KindCluster) -> str:
    """The webhook secret `make kind-up` made (random), from the cluster."""
    data = cluster.kubectl_json("-n", NAMESPACE, "get", "secret", "mcstatbot-telegram")["data"]
    return base64.b64decode(data["webhook-secret"]).decode()


def test_a_telegram_update_through_the_ingress_is_answered(
    dev: SkaffoldDev, kind_cluster: KindCluster, bot_api: BotApiServer
) -> None:
    since = bot_api.last_seq
    update = bot_api.send_text(778, f"/status {PRIVATE_SERVER}")
    answer = post_through_ingress(update, secret=webhook_secret(kind_cluster))
    assert answer.status_code == 200, f"{answer.status_code} {answer.text[:500]}"
    assert answer.json()["ok"] is True
    reply = bot_api.wait_for_call_sync(
        "sendMessage", lambda call: str(call.chat_id) == "778", since=since, timeout=60
    )
    assert reply.text == FORBIDDEN_REPLY
    # Without the secret token the request passes the Ingress, and the bot turns it away.
    refused = post_through_ingress(update, secret=None)
    assert refused.status_code == 403, refused.text[:500]
    assert refused.json() == {"ok": False, "detail": "bad secret token"}


def test_the_bots_spans_reach_the_collector(dev: SkaffoldDev, kind_cluster: KindCluster) -> None:
    """The kind values export traces to the chart's collector, whose debug exporter logs each batch's
    resources and spans: the update above left the bot's webhook span and the query service's spans there
    (the batch processor sends within 5 s)."""
    wanted = ("service.name=mcstatbot-bot", "service.name=mcstatbot-query", "/telegram/webhook")
    deadline = time.monotonic() + 120
    logs = ""
    while time.monotonic() < deadline:
        logs = kind_cluster.kubectl(
            "-n", NAMESPACE, "logs", f"deployment/{RELEASE}-otel-collector", check=False
        ).stdout
        if all(w in logs for w in wanted):
            break
        time.sleep(5)
    assert all(w in logs for w in wanted), logs[-3000:]


def test_skaffold_dev_syncs_a_changed_source_file_without_a_rebuild(
    dev: SkaffoldDev, kind_cluster: KindCluster, bot_api: BotApiServer
) -> None:
    watched_before, built_before = dev.count(WATCHING), dev.count(*BUILDING)
    source = kind_cluster.clone / SYNCED_FILE
    text = source.read_text()
    assert text.count(REFUSAL) == 1, "the refusal the test changes is not in the bot's app.py"
    source.write_text(text.replace(REFUSAL, CHANGED_REFUSAL))

    update = bot_api.send_text(779, "/help")
    changed = post_through_ingress(
        update,
        secret=None,
        until=lambda r: r.status_code == 403 and "synced" in r.text,
        timeout=240,
    )
    assert changed.json() == {"ok": False, "detail": "bad secret token (synced by skaffold)"}, (
        changed.text[:500] + "\n" + dev.tail(60)
    )
    # skaffold's iteration for the change ends when it watches again: synced, nothing rebuilt.
    dev.wait_watching(more_than=watched_before, timeout=300)
    log = "".join(dev.output)
    assert "Syncing 1 files for mcstatbot-bot" in log, log[-4000:]
    assert dev.count(*BUILDING) == built_before, log[-4000:]


def test_ctrl_c_removes_what_skaffold_dev_deployed(dev: SkaffoldDev, kind_cluster: KindCluster) -> None:
    """Ctrl-C ends `skaffold dev`, which deletes what it deployed (the README's `make kind-down` follows),
    and leaves the namespace with the Telegram Secret `make kind-up` made."""
    code = dev.ctrl_c()
    assert code == 0, dev.tail()
    assert "Cleaning up..." in "".join(dev.output), dev.tail()
    left = left_deployed(kind_cluster)
    assert not any(left.values()), left
    assert webhook_secret(kind_cluster)
