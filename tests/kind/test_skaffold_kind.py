"""skaffold on the offline kind cluster, as a developer uses it: `skaffold run -p kind` builds the
three images, loads them into kind (no registry) and deploys the chart with the kind profile; a Telegram
update posted through the Ingress (kind's port 80 on this machine, Traefik, the bot's NetworkPolicy) is
answered in the chat; `skaffold dev -p kind` syncs a changed Python file under apps/ into the running pods,
where the change is seen without an image rebuild; `skaffold delete -p kind` removes what skaffold
deployed. The cluster itself (tests/kind/conftest.py) is deleted at the end with nothing of it left on the
host.

skaffold runs in a copy of the project (the files the images and the deploy read), so the test can change a
source file without touching the checkout. In the copy's skaffold.yaml only what this machine needs changes,
each for a reason no developer's laptop has:
- the images' BASE_IMAGE is the python:3.12-slim stand-in of the image tests (no image can be pulled) and
  their builder stage uses the host's network (the engine's containers have no route out);
- the kind add-ons run the images built here instead of the ones they name on Docker Hub and registry.k8s.io:
  Traefik and metrics-server from the real-cluster toolchain (same binaries, no shell), DynamoDB Local as
  the official jar on Debian's Java runtime; the chart's Redis is the toolchain's Debian Redis image;
- the chart talks to the Bot API test server (telegram.apiBaseUrl, through a relay on the kind network's
  gateway, with a NetworkPolicy egress rule for it), and the OpenTelemetry collector is off: its image
  (otel/opentelemetry-collector-contrib) cannot be had offline, and it is checked on the real cluster
  (tests/cluster) with the chart's collector values rendered.
Everything else (artifacts, the `dev` target, tag policy, sync rules, manifests, the kind values) is
skaffold.yaml's own.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
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
from tests.images.conftest import BASE_IMAGE, build_base_image
from tests.kind.conftest import ROOT, bot_api_on_kind_network, docker, run_skaffold, skaffold_env

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mcstatbot_testkit.telegram import BotApiServer

    from tests.kind.conftest import KindCluster

pytestmark = pytest.mark.timeout(2400)

NAMESPACE = "mcstatbot"
RELEASE = "mcstatbot"
WEBHOOK_SECRET = "kind-skaffold-webhook-secret"  # noqa: S105 - a made-up secret
KIND_VALUES = ROOT / "k8s" / "overlays" / "kind" / "app" / "values.yaml"
DYNAMODB_LOCAL = ROOT / ".tools" / "dynamodb-local"
# What the copy of the project holds: what the Dockerfile copies, the chart, the kind manifests.
PROJECT_FILES = ("pyproject.toml", "uv.lock", ".dockerignore", "skaffold.yaml")
PROJECT_DIRS = ("apps", "packages", "charts", "k8s")
IGNORED = shutil.ignore_patterns(
    ".venv", "node_modules", "__pycache__", "*.pyc", "tests", ".mypy_cache", ".ruff_cache"
)
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

DYNAMODB_DOCKERFILE = f"""\
FROM {BASE_IMAGE}
COPY jre /opt/java
COPY dynamodb-local /home/dynamodblocal
ENV PATH=/opt/java/bin:/usr/local/bin:/usr/bin:/bin
WORKDIR /home/dynamodblocal
USER 1000:1000
ENTRYPOINT ["java"]
CMD ["-jar", "DynamoDBLocal.jar", "-inMemory"]
"""


def build_images(cluster: KindCluster, workdir: Path) -> dict[str, str]:
    """The stand-ins in the cluster's engine (the python base, DynamoDB Local) and the toolchain's images;
    the name each add-on image of the kind manifests is replaced with."""
    env = cluster.docker_env
    build_base_image(functools.partial(docker, env), workdir)

    java = shutil.which("java")
    assert java is not None, "java is missing (scripts/install-test-deps.sh installs it)"
    assert (DYNAMODB_LOCAL / "DynamoDBLocal.jar").is_file(), "no DynamoDB Local (make test-deps)"
    context = workdir / "dynamodb-context"
    context.mkdir()
    # The runtime's own folder with its symbolic links (into /etc/java-17-openjdk) resolved, without what
    # only compiling or linking uses.
    shutil.copytree(
        Path(java).resolve().parents[1],
        context / "jre",
        ignore=shutil.ignore_patterns("jmods", "src.zip", "docs", "man", "include", "demo"),
        ignore_dangling_symlinks=True,
    )
    shutil.copytree(DYNAMODB_LOCAL, context / "dynamodb-local", ignore=shutil.ignore_patterns("*.log"))
    (context / "Dockerfile").write_text(DYNAMODB_DOCKERFILE)
    docker(env, "build", "--network", "none", "-t", "mcstatbot.local/dynamodb-local:kind", str(context))

    images = cluster.toolchain / "images"
    for archive in ("traefik.tar", "metrics-server.tar", "redis.tar"):
        docker(env, "load", "-i", str(images / archive))
    loaded = docker(env, "image", "ls", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()

    def one(repository: str) -> str:
        (name,) = [n for n in loaded if n.startswith(f"{repository}:")]
        return name

    return {
        "traefik": one("mcstatbot.local/traefik"),
        "metrics-server": one("mcstatbot.local/metrics-server"),
        "dynamodb-local": "mcstatbot.local/dynamodb-local:kind",
        "redis": one("mcstatbot.local/redis"),
    }


def load_into_kind(cluster: KindCluster, kind: Path, *images: str) -> None:
    result = subprocess.run(
        [str(kind), "load", "docker-image", "--name", cluster.name, *images],
        capture_output=True,
        text=True,
        check=False,
        env=cluster.docker_env,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]


def adapt_project(project: Path, images: dict[str, str], api_url: str, relay_port: int) -> None:
    """The copy's skaffold.yaml and kind manifests changed for this machine, and only that (see the module's
    docstring)."""
    config_path = project / "skaffold.yaml"
    config = yaml.safe_load(config_path.read_text())
    kind = profile(config, "kind")
    for artifact in kind["build"]["artifacts"]:
        artifact["docker"]["buildArgs"]["BASE_IMAGE"] = BASE_IMAGE
        artifact["docker"]["network"] = "host"
    for manifest in kind["manifests"]["rawYaml"]:
        path = project / manifest
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
        for document in documents:
            spec = document.get("spec", {}).get("template", {}).get("spec", {})
            for container in spec.get("containers", []):
                name = container["image"].rsplit("/", 1)[-1].split(":", 1)[0]
                if name in images:
                    container["image"] = images[name]
        path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    # The kind values, with this machine's on top.
    egress = yaml.safe_load(KIND_VALUES.read_text())["networkPolicy"]["botExtraEgress"]
    repository, tag = images["redis"].rsplit(":", 1)
    machine = {
        "telegram": {"apiBaseUrl": api_url},
        "redis": {"image": {"registry": "", "repository": repository, "tag": tag}},
        "otel": {"enabled": False, "collector": {"enabled": False}},
        "networkPolicy": {"botExtraEgress": [*egress, {"ports": [{"port": relay_port, "protocol": "TCP"}]}]},
    }
    (project / "machine-values.yaml").write_text(yaml.safe_dump(machine, sort_keys=False))
    (release,) = kind["deploy"]["helm"]["releases"]
    release["valuesFiles"].append("machine-values.yaml")
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))


class Skaffold:
    """skaffold in the project's copy, against the kind cluster and its engine."""

    def __init__(self, binary: Path, kind_bin: Path, cluster: KindCluster, project: Path) -> None:
        self.binary = binary
        self.project = project
        self.env = {
            **cluster.docker_env,
            "KUBECONFIG": str(cluster.kubeconfig),
            # kubectl of the toolchain, kind (skaffold runs `kind load`), helm 3, then Debian's docker client.
            "PATH": os.pathsep.join(
                [
                    str(cluster.kubectl_bin.parent),
                    str(kind_bin),
                    str(ROOT / ".tools" / "bin"),
                    cluster.docker_env["PATH"],
                ]
            ),
        }
        self.context = cluster.context

    def helm(self, *args: str) -> str:
        """helm 3 against the kind cluster; its output."""
        return subprocess.run(
            [str(ROOT / ".tools" / "bin" / "helm"), *args],
            capture_output=True, text=True, check=True, env=self.env, timeout=60,
        ).stdout  # fmt: skip

    def args(self, command: str, *extra: str) -> list[str]:
        return [command, "-p", "kind", "--kube-context", self.context, *extra]

    def run(self, command: str, *extra: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        result = run_skaffold(
            self.binary, *self.args(command, *extra), env=self.env, timeout=timeout, cwd=self.project
        )
        assert result.returncode == 0, (
            f"skaffold {command} failed:\n{result.stdout[-5000:]}\n{result.stderr[-5000:]}"
        )
        return result


@pytest.fixture(scope="module")
def telegram(kind_cluster: KindCluster) -> Iterator[tuple[BotApiServer, str]]:
    """The Bot API test server and the URL the pods use for it (a relay on the kind network's gateway)."""
    with bot_api_on_kind_network(docker(kind_cluster.docker_env, "network", "inspect", "kind").stdout) as api:
        yield api


@pytest.fixture(scope="module")
def deployed(
    kind_cluster: KindCluster, kind_bin: Path, skaffold: Path, telegram: tuple[BotApiServer, str]
) -> Skaffold:
    """`skaffold run -p kind` done: images built, loaded, the kind add-ons and the chart deployed."""
    api, api_url = telegram
    workdir = kind_cluster.engine_dir / "skaffold"
    project = workdir / "project"
    project.mkdir(parents=True)
    for name in PROJECT_FILES:
        shutil.copy2(ROOT / name, project / name)
    for name in PROJECT_DIRS:
        shutil.copytree(ROOT / name, project / name, ignore=IGNORED, symlinks=True)
    images = build_images(kind_cluster, workdir)
    load_into_kind(kind_cluster, kind_bin / "kind", *images.values())
    adapt_project(project, images, api_url, int(api_url.rsplit(":", 1)[1]))
    # The namespace and the Telegram secret come first (docs/kubernetes.md, the kind quick start).
    kind_cluster.kubectl("apply", "-f", str(ROOT / "k8s" / "overlays" / "kind" / "namespace.yaml"))
    kind_cluster.kubectl(
        "-n", NAMESPACE, "create", "secret", "generic", "mcstatbot-telegram",
        f"--from-literal=telegram-bot-token={api.token}",
        f"--from-literal=webhook-secret={WEBHOOK_SECRET}",
    )  # fmt: skip
    tool = Skaffold(skaffold, kind_bin, kind_cluster, project)
    tool.run("run", "--status-check=true", "--port-forward=off")
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


def test_a_telegram_update_through_the_ingress_is_answered(
    deployed: Skaffold, telegram: tuple[BotApiServer, str]
) -> None:
    api, _ = telegram
    since = api.last_seq
    update = api.send_text(778, f"/status {PRIVATE_SERVER}")
    answer = post_through_ingress(update, secret=WEBHOOK_SECRET)
    assert answer.status_code == 200, f"{answer.status_code} {answer.text[:500]}"
    assert answer.json()["ok"] is True
    reply = api.wait_for_call_sync(
        "sendMessage", lambda call: str(call.chat_id) == "778", since=since, timeout=60
    )
    assert reply.text == FORBIDDEN_REPLY
    # Without the secret token the request passes the Ingress, and the bot turns it away.
    refused = post_through_ingress(update, secret=None)
    assert refused.status_code == 403, refused.text[:500]
    assert refused.json() == {"ok": False, "detail": "bad secret token"}


WATCHING = "Watching for changes"
BUILDING = ("Starting build", "Building [")


def count(lines: list[str], *marks: str) -> int:
    """The lines of skaffold's output with any of `marks`."""
    return sum(any(mark in line for mark in marks) for line in list(lines))


def test_skaffold_dev_syncs_a_changed_source_file_without_a_rebuild(
    deployed: Skaffold, telegram: tuple[BotApiServer, str]
) -> None:
    api, _ = telegram
    output: list[str] = []
    process = subprocess.Popen(
        [str(deployed.binary), *deployed.args("dev", "--cleanup=false", "--port-forward=off")],
        cwd=deployed.project,
        env=skaffold_env(deployed.env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: output.extend(process.stdout or []), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 900
        while not count(output, WATCHING):
            assert process.poll() is None, "skaffold dev ended:\n" + "".join(output[-80:])
            assert time.monotonic() < deadline, "skaffold dev never watched:\n" + "".join(output[-80:])
            time.sleep(2)
        watched_before, built_before = count(output, WATCHING), count(output, *BUILDING)
        source = deployed.project / SYNCED_FILE
        text = source.read_text()
        assert text.count(REFUSAL) == 1, "the refusal the test changes is not in the bot's app.py"
        source.write_text(text.replace(REFUSAL, CHANGED_REFUSAL))

        update = api.send_text(779, "/help")
        changed = post_through_ingress(
            update,
            secret=None,
            until=lambda r: r.status_code == 403 and "synced" in r.text,
            timeout=240,
        )
        assert changed.json() == {"ok": False, "detail": "bad secret token (synced by skaffold)"}, (
            changed.text[:500] + "\n" + "".join(output[-60:])
        )
        # skaffold's iteration for the change ends when it watches again: synced, nothing rebuilt.
        deadline = time.monotonic() + 300
        while count(output, WATCHING) == watched_before:
            assert time.monotonic() < deadline, "skaffold dev never watched again:\n" + "".join(output[-80:])
            time.sleep(1)
        log = "".join(output)
        assert "Syncing 1 files for mcstatbot-bot" in log, log[-4000:]
        assert count(output, *BUILDING) == built_before, log[-4000:]
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        reader.join(timeout=10)


def test_skaffold_delete_removes_what_it_deployed(deployed: Skaffold, kind_cluster: KindCluster) -> None:
    deployed.run("delete", timeout=600)
    assert deployed.helm("list", "-n", NAMESPACE, "-q").strip() == ""
    left: dict[str, Any] = {}
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        left = {
            "mcstatbot": kind_cluster.kubectl(
                "-n", NAMESPACE, "get", "deployments,statefulsets,jobs,services,ingresses", "-o", "name"
            ).stdout.split(),
            "traefik": kind_cluster.kubectl(
                "get", "namespace", "traefik", "--ignore-not-found", "-o", "name"
            ).stdout.split(),
            "metrics-server": kind_cluster.kubectl(
                "-n", "kube-system", "get", "deployment", "metrics-server", "--ignore-not-found", "-o", "name"
            ).stdout.split(),
        }
        if not any(left.values()):
            break
        time.sleep(3)
    assert not any(left.values()), left
