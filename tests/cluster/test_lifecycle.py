"""The release's life on the cluster, on one install: the watcher's HPA scaling out on CPU, `helm upgrade`
(changed values, a new image tag) and `helm rollback` while updates keep arriving, a watch alert through
the watcher Deployment, pods deleted during a burst, the eviction API against the PDBs, and `helm
uninstall` leaving nothing of the release behind.

The chart is installed with the kind values (webhook mode) adapted as in test_helm_install, with two bot and
two query replicas (no HPA: the counts stay put) and a watcher that checks every 3 s. The Bot API test server
on the host end of the link delivers every update to the Ingress (Traefik) and redelivers it until a 2xx, as
Telegram does; every reply is counted there. The tests run in file order on the one release (the last one
uninstalls it).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
import threading
import time
from typing import TYPE_CHECKING, Any, Self

import pytest
from mcstatbot_testkit.minecraft import JavaPeer
from mcstatbot_testkit.watching import alerts, wait_until

from tests.cluster.conftest import (
    CHART,
    HELMS,
    KIND_INGRESS_HOST,
    KIND_VALUES,
    RELEASE,
    bot_ready,
    cluster_values,
    forward_on_link,
    link_service,
    namespace,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from mcstatbot_testkit.dynamodb import DynamoDBLocal

    from tests.cluster.conftest import AppImages, Cluster, LinkBotApiServer

pytestmark = pytest.mark.timeout(7200)

HELM = HELMS["helm3"]
NEXT_TAG_SUFFIX = "-next"
COMPONENTS = ("bot", "query", "watcher")
SCALE_DOWN_WINDOW = 15
# The busy loop of the HPA test, found again by this marker in its command line to be stopped.
BUSY_LOOP = "while True: pass  # hpa-load"


@pytest.fixture(scope="module")
def release(
    cluster: Cluster,
    app_images: AppImages,
    bot_api: LinkBotApiServer,
    dynamodb: DynamoDBLocal,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    values = cluster_values("kind", app_images, bot_api)
    values["query"].update(
        {
            "allowPrivateAddresses": True,
            "replicaCount": 2,
            "autoscaling": {"enabled": False},
            # The watch test's peer stops: a cached "online" must not outlive a few checks.
            "cache": {"ttlStatus": 2},
        }
    )
    values["bot"].update({"replicaCount": 2, "autoscaling": {"enabled": False}})
    values["watcher"].update({"intervalSeconds": 3, "downAfter": 2})
    # The HPA test waits for the scale-in too: a 15 s scale-down window instead of the chart's 300 s (the
    # kind values keep the watcher at most 2 replicas, so scale-in is one step of the chart's 1-pod policy).
    # And a CPU request of 100m instead of the kind values' 50m: checking every 3 s on this shared machine,
    # an idle watcher pod uses about 20m, 40 % of 50m, so two idle pods held the HPA at 2 (2 x 40 % is above
    # 70 % of one pod); the busy loop (up to the 500m limit) still takes one pod far above 70 %.
    values["watcher"]["autoscaling"] = {"scaleDownStabilizationWindowSeconds": SCALE_DOWN_WINDOW}
    values["watcher"]["resources"] = {
        "requests": {"cpu": "100m", "memory": "160Mi"},
        "limits": {"cpu": "500m", "memory": "384Mi"},
    }
    overrides: Path = tmp_path_factory.mktemp("lifecycle") / "values.yaml"
    overrides.write_text(json.dumps(values))
    secret = secrets.token_hex(16)
    with namespace(cluster, "lifecycle") as ns:
        cluster.kubectl(
            "create", "secret", "generic", "mcstatbot-telegram", "-n", ns,
            f"--from-literal=telegram-bot-token={bot_api.token}", f"--from-literal=webhook-secret={secret}",
        )  # fmt: skip
        cluster.apply(link_service("dynamodb-local", cluster.host_ip, 8000, dynamodb.port), ns)
        cluster.run(
            str(HELM), "install", RELEASE, str(CHART), "-n", ns, "-f", str(KIND_VALUES),
            "-f", str(overrides), "--wait", "--timeout", "5m",
            timeout=420,
        )  # fmt: skip
        ready = bot_ready(cluster, ns)
        assert ready["state_store"] == "ok", ready
        bot_api.webhook_host(KIND_INGRESS_HOST)
        bot_api.set_webhook(f"{cluster.ingress_url}/telegram/webhook", secret_token=secret)
        try:
            yield ns
        finally:
            bot_api.delete_webhook()
            bot_api.webhook_host(None)
            cluster.run(str(HELM), "uninstall", RELEASE, "-n", ns, "--wait", check=False, timeout=240)


class Burst:
    """Sends `/status <address>` from a new chat every `interval` seconds in a thread, until stopped.

    Each update comes from a chat of its own, so the replies to it are the sendMessage calls to that chat.
    """

    def __init__(self, bot_api: LinkBotApiServer, address: str, first_chat: int, interval: float) -> None:
        self.bot_api = bot_api
        self.address = address
        self.next_chat = first_chat
        self.interval = interval
        self.chats: list[int] = []
        self.since_seq = bot_api.last_seq
        self.since_delivery = len(bot_api.deliveries)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="burst", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.bot_api.send_text(self.next_chat, f"/status {self.address}")
            self.chats.append(self.next_chat)
            self.next_chat += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def replies(self) -> dict[int, int]:
        """sendMessage calls the Bot API test server accepted, per chat of the burst."""
        counts = dict.fromkeys(self.chats, 0)
        for call in self.bot_api.calls_to("sendMessage", since=self.since_seq):
            if call.ok and call.chat_id in counts:
                counts[int(call.chat_id)] += 1
        return counts

    def wait_answered(self, timeout: float) -> dict[int, int]:
        """Waits until every chat of the burst has a reply (and a little more, for a late double)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(self.replies().values()):
            time.sleep(0.5)
        time.sleep(3)
        return self.replies()

    def refused_deliveries(self) -> int:
        """Webhook POSTs of the burst that got no 2xx (the Bot API test server redelivered them)."""
        return sum(
            1
            for d in self.bot_api.deliveries[self.since_delivery :]
            if d.status is None or not 200 <= d.status < 300
        )


def deployment_images(cluster: Cluster, ns: str) -> dict[str, str]:
    return {
        component: cluster.kubectl_json("get", "deployment", f"{RELEASE}-{component}", "-n", ns)["spec"][
            "template"
        ]["spec"]["containers"][0]["image"]
        for component in COMPONENTS
    }


def container_env(cluster: Cluster, ns: str, component: str) -> dict[str, str]:
    deployment = cluster.kubectl_json("get", "deployment", f"{RELEASE}-{component}", "-n", ns)
    env: dict[str, str] = {}
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            config = cluster.kubectl_json("get", "configmap", source["configMapRef"]["name"], "-n", ns)
            env.update(config.get("data", {}))
    return env


def live_pods(cluster: Cluster, ns: str, component: str) -> list[dict[str, Any]]:
    """The pods of a component of the release that are not being deleted."""
    selector = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component={component}"
    pods = cluster.kubectl_json("get", "pods", "-n", ns, "-l", selector)["items"]
    return [p for p in pods if "deletionTimestamp" not in p["metadata"]]


def pod_images(cluster: Cluster, ns: str, component: str) -> set[str]:
    """The images of the running (not terminating) pods of a component."""
    pods = live_pods(cluster, ns, component)
    return {p["spec"]["containers"][0]["image"] for p in pods if p["status"].get("phase") == "Running"}


def pods_of(cluster: Cluster, ns: str, component: str) -> list[str]:
    return [p["metadata"]["name"] for p in live_pods(cluster, ns, component)]


def component_logs(cluster: Cluster, ns: str, component: str) -> str:
    """The first warnings and errors in the logs of a component's pods (for a failure's message)."""
    selector = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component={component}"
    logs = cluster.kubectl("logs", "-n", ns, "-l", selector, "--tail=-1", "--prefix", check=False)
    lines = [line for line in logs.stdout.splitlines() if " WARNING " in line or " ERROR " in line]
    return "\n".join(lines[:40]) + logs.stderr[-2000:]


def rolled_out(cluster: Cluster, ns: str) -> None:
    for component in COMPONENTS:
        cluster.kubectl(
            "rollout", "status", f"deployment/{RELEASE}-{component}", "-n", ns, "--timeout=240s", timeout=260
        )


def watcher_hpa(cluster: Cluster, ns: str) -> dict[str, Any]:
    hpas = cluster.kubectl_json("get", "hpa", "-n", ns)["items"]
    (hpa,) = [h for h in hpas if h["spec"]["scaleTargetRef"]["name"] == f"{RELEASE}-watcher"]
    return dict(hpa)


def cpu_utilisation(hpa: dict[str, Any]) -> int | None:
    for metric in hpa.get("status", {}).get("currentMetrics") or []:
        if metric.get("type") == "Resource" and metric["resource"]["name"] == "cpu":
            value = metric["resource"]["current"].get("averageUtilization")
            return None if value is None else int(value)
    return None


def stop_busy_loop(cluster: Cluster, ns: str, pod: str) -> None:
    """Kills the HPA test's busy loop in `pod` (found by its marker), leaving the watcher alone."""
    cluster.kubectl(
        "exec", "-n", ns, pod, "--", "python", "-c",
        "import os, signal\n"
        "for p in filter(str.isdigit, os.listdir('/proc')):\n"
        "    if int(p) == os.getpid():\n"
        "        continue\n"
        "    try:\n"
        f"        if {BUSY_LOOP.encode()!r} in open(f'/proc/{{p}}/cmdline', 'rb').read():\n"
        "            os.kill(int(p), signal.SIGKILL)\n"
        "    except OSError:\n"
        "        pass\n",
        check=False,
    )  # fmt: skip


def test_the_watcher_hpa_reads_pod_cpu_scales_out_under_load_and_back_in(
    cluster: Cluster, release: str
) -> None:
    """metrics-server reports the watcher pods' CPU and its HPA reads it (no `<unknown>`); a CPU load in a
    watcher pod (a busy loop, at most 90 s) raises the HPA above its minimum; once the load stops, the HPA
    scales the Deployment back to its minimum after the scale-down window (15 s here, the chart's
    `watcher.autoscaling.scaleDownStabilizationWindowSeconds`; its default is Kubernetes' 300 s). First of
    the module: the release is fresh, at its minimum (the bot and query HPAs are off here, so the watcher's
    is the one)."""
    ns = release
    wait_until(lambda: cpu_utilisation(watcher_hpa(cluster, ns)) is not None, timeout=120, what="HPA CPU")
    hpa = watcher_hpa(cluster, ns)
    minimum = int(hpa["spec"].get("minReplicas", 1))
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == SCALE_DOWN_WINDOW
    # A new pod's start-up CPU may have scaled it out already: from the minimum on.
    wait_until(
        lambda: (
            int(watcher_hpa(cluster, ns)["status"]["currentReplicas"]) == minimum
            and len(pods_of(cluster, ns, "watcher")) == minimum
        ),
        timeout=120,
        what="the watcher at its minimum",
    )
    (pod,) = pods_of(cluster, ns, "watcher")[:1]
    load = subprocess.Popen(
        [str(cluster.bin / "kubectl"), "exec", "-n", ns, pod, "--", "timeout", "90", "python", "-c",
         BUSY_LOOP],
        env=cluster.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        scaled = wait_until(
            lambda: int(watcher_hpa(cluster, ns)["status"].get("desiredReplicas", 0)) > minimum,
            timeout=150,
            what="the watcher HPA scaling out",
        )
        assert scaled
        print(f"watcher HPA scaled out: {watcher_hpa(cluster, ns)['status']}")  # noqa: T201 - for the log
    finally:
        stop_busy_loop(cluster, ns, pod)
        load.terminate()
        load.wait(timeout=30)
    started = time.monotonic()

    def back_at_minimum() -> bool:
        status = watcher_hpa(cluster, ns)["status"]
        deployment = cluster.kubectl_json("get", "deployment", f"{RELEASE}-watcher", "-n", ns)
        done = (
            int(status.get("desiredReplicas", 0)) == minimum
            and int(status.get("currentReplicas", 0)) == minimum
            and int(deployment["spec"]["replicas"]) == minimum
        )
        if not done:
            time.sleep(2)  # two kubectl calls a round are enough
        return done

    # The CPU figures fall within a metrics-server resolution (15 s) or two, then the window, then one
    # HPA sync (10 s in this cluster).
    assert wait_until(back_at_minimum, timeout=180, what="the watcher HPA scaling back in")
    print(  # noqa: T201 - a measurement for the log
        f"watcher HPA back at {minimum} replica(s) {time.monotonic() - started:.0f} s after the load stopped"
    )
    wait_until(lambda: len(pods_of(cluster, ns, "watcher")) == minimum, timeout=90, what="the extra pod gone")


def test_upgrade_and_rollback_under_load_lose_no_update(
    cluster: Cluster,
    app_images: AppImages,
    bot_api: LinkBotApiServer,
    java_on_link: tuple[JavaPeer, str],
    release: str,
) -> None:
    """`helm upgrade` to a new image tag with changed values, then `helm rollback`, while an update arrives
    every 0.5 s: every update gets exactly one reply."""
    _, address = java_on_link
    ns = release
    next_tag = app_images.tag + NEXT_TAG_SUFFIX
    for image in (app_images.bot, app_images.query, app_images.watcher):
        # The same image under a new tag: the Deployments' pod templates change, so every pod is replaced.
        cluster.run(
            "ctr", "--address", cluster.containerd_socket, "-n", "k8s.io", "images", "tag", "--force",
            image, image.rsplit(":", 1)[0] + ":" + next_tag,
        )  # fmt: skip
    before = deployment_images(cluster, ns)
    assert container_env(cluster, ns, "bot")["LOG_FORMAT"] == "text"
    with Burst(bot_api, address, first_chat=710_000, interval=0.5) as burst:
        time.sleep(3)
        cluster.run(
            str(HELM), "upgrade", RELEASE, str(CHART), "-n", ns, "--reuse-values",
            *[f"--set={c}.image.tag={next_tag}" for c in COMPONENTS],
            *[f"--set={c}.logFormat=json" for c in COMPONENTS],
            "--wait", "--timeout", "5m",
            timeout=420,
        )  # fmt: skip
        rolled_out(cluster, ns)
        upgraded = deployment_images(cluster, ns)
        assert all(image.endswith(f":{next_tag}") for image in upgraded.values()), upgraded
        assert container_env(cluster, ns, "bot")["LOG_FORMAT"] == "json"
        for component in COMPONENTS:
            assert pod_images(cluster, ns, component) == {upgraded[component]}, component
        time.sleep(3)
        cluster.run(str(HELM), "rollback", RELEASE, "1", "-n", ns, "--wait", "--timeout", "5m", timeout=420)
        rolled_out(cluster, ns)
        test = cluster.run(str(HELM), "test", RELEASE, "-n", ns, "--timeout", "3m", check=False, timeout=240)
        assert test.returncode == 0, f"helm test after the rollback failed:\n{test.stdout}\n{test.stderr}"
        time.sleep(3)
    assert deployment_images(cluster, ns) == before
    assert container_env(cluster, ns, "bot")["LOG_FORMAT"] == "text"
    for component in COMPONENTS:
        assert pod_images(cluster, ns, component) == {before[component]}, component
    history = json.loads(cluster.run(str(HELM), "history", RELEASE, "-n", ns, "-o", "json").stdout)
    assert [h["revision"] for h in history] == [1, 2, 3], history
    assert history[-1]["status"] == "deployed", history
    assert "Rollback to 1" in history[-1]["description"], history

    replies = burst.wait_answered(timeout=120)
    print(  # noqa: T201 - a measurement for the log
        f"{len(replies)} updates through upgrade and rollback,"
        f" {burst.refused_deliveries()} deliveries redelivered"
    )
    assert len(replies) > 40, replies
    lost = [chat for chat, n in replies.items() if n == 0]
    doubled = {chat: n for chat, n in replies.items() if n > 1}
    assert not lost, f"updates without a reply: {lost}"
    # An update answered before its pod's handling was cancelled or failed is finished, not released, so
    # Telegram's redelivery is a duplicate (docs/bot-service.md, "No update lost, none handled twice").
    assert not doubled, f"updates answered more than once: {doubled}"


def test_a_watch_alert_through_the_watcher_deployment(
    cluster: Cluster, bot_api: LinkBotApiServer, tmp_path: Path, release: str
) -> None:
    """/watch through the bot; the watcher Deployment checks the peer through the query service; the peer
    stops; the down alert arrives at the Bot API test server."""
    chat = 730_001
    peer = JavaPeer(tmp_path / "watched.log").start()
    try:
        with forward_on_link(cluster, peer.port) as address:
            since = bot_api.last_seq
            started = time.monotonic()
            bot_api.send_text(chat, f"/watch {address}")
            try:
                answer = bot_api.wait_for_call_sync(
                    "sendMessage", lambda c: c.chat_id == chat and c.ok, timeout=90, since=since
                )
            except TimeoutError:
                pytest.fail(
                    f"/watch got no answer; the bot's log:\n{component_logs(cluster, release, 'bot')}"
                )
            print(f"/watch answered in {time.monotonic() - started:.1f} s")  # noqa: T201 - for the log
            assert "Watching" in answer.text, answer.text
            time.sleep(8)  # a few checks find it up
            assert peer.status_requests >= 2, peer.status_requests
            peer.stop()
            try:
                down = wait_until(lambda: alerts(bot_api, chat, "is down"), timeout=90, what="the down alert")
            except TimeoutError:
                pytest.fail(
                    f"no down alert; the watcher's log:\n{component_logs(cluster, release, 'watcher')}"
                )
    finally:
        with contextlib.suppress(Exception):
            peer.stop()
    assert address in down[0], down
    assert len(alerts(bot_api, chat, "is down")) == 1


def test_a_bot_pod_and_a_query_pod_deleted_during_a_burst_every_update_answered(
    cluster: Cluster, bot_api: LinkBotApiServer, java_on_link: tuple[JavaPeer, str], release: str
) -> None:
    """One bot pod and one query pod (of two each) are deleted with a 1 s grace period in the middle of a
    burst: the update in flight on the killed bot pod is redelivered, a call cut on the query pod ends in a
    retry or the stored-answer fallback; every update gets a reply."""
    _, address = java_on_link
    ns = release
    with Burst(bot_api, address, first_chat=720_000, interval=0.25) as burst:
        time.sleep(4)
        for component in ("bot", "query"):
            victim = pods_of(cluster, ns, component)[0]
            cluster.kubectl("delete", "pod", victim, "-n", ns, "--grace-period=1", "--wait=false")
        time.sleep(8)
    rolled_out(cluster, ns)
    replies = burst.wait_answered(timeout=120)
    doubled = {chat: n for chat, n in replies.items() if n > 1}
    print(  # noqa: T201 - a measurement for the log
        f"{len(replies)} updates, {burst.refused_deliveries()} deliveries redelivered, doubled: {doubled}"
    )
    assert len(replies) > 20, replies
    lost = [chat for chat, n in replies.items() if n == 0]
    assert not lost, f"updates without a reply: {lost}"


def evict(cluster: Cluster, ns: str, pod: str) -> subprocess.CompletedProcess[str]:
    body = json.dumps(
        {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": ns}}
    )
    return cluster.kubectl(
        "create", "--raw", f"/api/v1/namespaces/{ns}/pods/{pod}/eviction", "-f", "-", "-v=6",
        check=False, stdin=body,
    )  # fmt: skip


def test_the_eviction_api_refuses_to_go_below_the_pdb(cluster: Cluster, release: str) -> None:
    """The query PDB (maxUnavailable 1 of 2): the first eviction is granted, the second at once refused with
    429 Too Many Requests."""
    ns = release
    pdb = f"{RELEASE}-query"

    def allowed() -> int:
        return int(cluster.kubectl_json("get", "pdb", pdb, "-n", ns)["status"].get("disruptionsAllowed", 0))

    wait_until(lambda: allowed() == 1, timeout=60, what="the query PDB allowing one disruption")
    first, second = pods_of(cluster, ns, "query")[:2]
    granted = evict(cluster, ns, first)
    assert granted.returncode == 0, granted.stderr[-2000:]
    refused = evict(cluster, ns, second)
    assert refused.returncode != 0, refused.stdout
    assert "429 Too Many Requests" in refused.stderr, refused.stderr[-2000:]
    assert "disruption budget" in refused.stderr, refused.stderr[-2000:]
    assert second in pods_of(cluster, ns, "query")
    rolled_out(cluster, ns)


def namespaced_objects_of_the_release(cluster: Cluster, ns: str) -> list[str]:
    """Every object in `ns`, of every namespaced kind the API server serves, that carries the release's
    labels or annotations (Helm's own release records included)."""
    kinds = cluster.kubectl("api-resources", "--namespaced=true", "--verbs=list", "-o", "name").stdout.split()
    found: list[str] = []
    items = cluster.kubectl_json("get", ",".join(kinds), "-n", ns)["items"]
    for item in items:
        meta = item["metadata"]
        labels = meta.get("labels") or {}
        annotations = meta.get("annotations") or {}
        if (
            labels.get("app.kubernetes.io/instance") == RELEASE
            or annotations.get("meta.helm.sh/release-name") == RELEASE
            or (labels.get("owner") == "helm" and labels.get("name") == RELEASE)
        ):
            found.append(f"{item['kind']}/{meta['name']}")
    return found


def test_uninstall_leaves_no_object_of_the_release(cluster: Cluster, release: str) -> None:
    ns = release
    assert namespaced_objects_of_the_release(cluster, ns), "the release has no objects to begin with"
    cluster.run(str(HELM), "uninstall", RELEASE, "-n", ns, "--wait", "--timeout", "3m", timeout=240)
    left: list[str] = []
    deadline = time.monotonic() + 90  # pods of deleted ReplicaSets finish their grace period
    while time.monotonic() < deadline:
        left = namespaced_objects_of_the_release(cluster, ns)
        if not left:
            break
        time.sleep(2)
    assert not left, f"left behind by helm uninstall: {left}"
