"""The kind tests' tools: skaffold v2.19.0 and kind v0.33.0 built from their Go modules by
scripts/kind/toolchain.sh (seconds when they are in the cache; `make test` builds them in the background
before these tests run), one way to run skaffold, and a kind cluster: the README's kind quick start on a
fresh clone (`make kind-up`, `kind create cluster --config k8s/kind/cluster.yaml` with the node image built
offline by scripts/kind/node-image.sh) on a private dockerd (scripts/kind/dockerd.sh), deleted at the end
(`make kind-down`) with nothing of it left on the host."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from mcstatbot_testkit.telegram import BotApiServer

from tests.chart.conftest import profile
from tests.images.conftest import BASE_IMAGE, HOST_CA_BUNDLE, build_base_image

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts" / "kind"
HELM = ROOT / ".tools" / "bin" / "helm"
DYNAMODB_LOCAL = ROOT / ".tools" / "dynamodb-local"
# The README's placeholder token, which the Bot API test server takes as its own.
EXAMPLE_TOKEN = "123456:ABC-your-token"  # noqa: S105 - the README's placeholder, not a secret


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
    # The fresh clone the README's commands run in, and the developer's environment they run with.
    clone: Path = field(repr=False)
    shell: dict[str, str] = field(repr=False)

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
COLLECTOR_DOCKERFILE = """\
FROM scratch
COPY otelcol-mcstatbot /otelcol-mcstatbot
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
USER 10001:10001
EXPOSE 4317 4318 13133
ENTRYPOINT ["/otelcol-mcstatbot"]
"""


def pod_containers(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The containers of a Pod or of a workload's pod template."""
    spec = document.get("spec", {})
    if document.get("kind") == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    pod = spec.get("template", {}).get("spec", spec)
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


def images_to_pull(clone: Path) -> set[str]:
    """The images skaffold's kind profile runs and does not build: those of its raw manifests, and the
    chart's with the profile's values."""
    kind = profile(yaml.safe_load((clone / "skaffold.yaml").read_text()), "kind")
    documents = [d for m in kind["manifests"]["rawYaml"] for d in yaml.safe_load_all((clone / m).read_text())]
    (release,) = kind["deploy"]["helm"]["releases"]
    values = [arg for f in release["valuesFiles"] for arg in ("-f", str(clone / f))]
    rendered = subprocess.run(
        [str(HELM), "template", release["name"], str(clone / release["chartPath"]), "-n", "mcstatbot",
         *values],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    documents += list(yaml.safe_load_all(rendered))
    names = {c["image"] for d in documents if d for c in pod_containers(d)}
    return {n for n in names if not n.startswith("mcstatbot-")}


def addon_images(cluster: KindCluster, collector: Path, workdir: Path) -> list[str]:
    """Each image of `images_to_pull` in the cluster's engine under its own name, from what this machine
    has: Traefik, metrics-server and Redis of the real-cluster toolchain (built from source; Traefik and
    metrics-server at the manifests' versions, Redis Debian's), DynamoDB Local as the jar of
    `make test-deps` on Debian's Java runtime, and the collector of scripts/kind/collector.sh (the chart's
    version, the components its kind configuration runs). The names, to load into the nodes."""
    env = cluster.docker_env
    java = shutil.which("java")
    assert java is not None, "java is missing (scripts/install-test-deps.sh installs it)"
    assert (DYNAMODB_LOCAL / "DynamoDBLocal.jar").is_file(), "no DynamoDB Local (make test-deps)"
    dynamodb = workdir / "dynamodb-local"
    dynamodb.mkdir(parents=True)
    # The runtime's own folder with its symbolic links (into /etc/java-17-openjdk) resolved, without what
    # only compiling or linking uses.
    shutil.copytree(
        Path(java).resolve().parents[1],
        dynamodb / "jre",
        ignore=shutil.ignore_patterns("jmods", "src.zip", "docs", "man", "include", "demo"),
        ignore_dangling_symlinks=True,
    )
    shutil.copytree(DYNAMODB_LOCAL, dynamodb / "dynamodb-local", ignore=shutil.ignore_patterns("*.log"))
    (dynamodb / "Dockerfile").write_text(DYNAMODB_DOCKERFILE)
    docker(env, "build", "--network", "none", "-t", "mcstatbot.local/dynamodb-local:kind", str(dynamodb))
    otelcol = workdir / "otelcol"
    otelcol.mkdir()
    shutil.copy2(collector, otelcol / collector.name)
    shutil.copy(HOST_CA_BUNDLE, otelcol / "ca-certificates.crt")
    (otelcol / "Dockerfile").write_text(COLLECTOR_DOCKERFILE)
    docker(
        env, "build", "--network", "none",
        "-t", "mcstatbot.local/opentelemetry-collector-contrib:kind", str(otelcol),
    )  # fmt: skip
    for archive in ("traefik.tar", "metrics-server.tar", "redis.tar"):
        docker(env, "load", "-i", str(cluster.toolchain / "images" / archive))
    built = docker(env, "image", "ls", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    stand_ins = {
        name.removeprefix("mcstatbot.local/").split(":", 1)[0]: name
        for name in built
        if name.startswith("mcstatbot.local/")
    }
    wanted = images_to_pull(cluster.clone)
    for name in sorted(wanted):
        repository, tag = name.rsplit("/", 1)[-1].split(":", 1)
        assert repository in stand_ins, f"{name}: no image of that name can be had here"
        if repository in {"traefik", "metrics-server"}:
            assert stand_ins[repository].endswith(f":{tag}"), (name, stand_ins[repository])
        if repository == "opentelemetry-collector-contrib":
            assert collector.parents[1].name.startswith(f"otelcol-v{tag}-"), (name, collector)
        docker(env, "tag", stand_ins[repository], name)
    return sorted(wanted)


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


def host_network_state() -> dict[str, set[str]]:
    """The host's network links and firewall rules (counters left out), to compare before and after."""
    state: dict[str, set[str]] = {"links": {p.name for p in Path("/sys/class/net").iterdir()}}
    for name, tool in (("iptables", ["iptables-save"]), ("nftables", ["nft", "list", "ruleset"])):
        with contextlib.suppress(OSError):
            out = subprocess.run(tool, capture_output=True, text=True, timeout=30, check=False).stdout
            state[name] = {line for line in out.splitlines() if line and not line.startswith(("#", ":"))}
    return state


def kind_quick_start(readme: str) -> list[str]:
    """The command lines of the README's kind quick start (its bash block with `make kind-up`), without their
    comments."""
    for block in re.findall(r"```bash\n(.*?)```", readme, re.DOTALL):
        if "make kind-up" in block:
            return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]
    raise AssertionError("the README has no kind quick start (a bash block with `make kind-up`)")


def developer_shell(
    command: str, cwd: Path, env: dict[str, str], timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """One line of the README as a developer's shell runs it."""
    return subprocess.run(
        ["bash", "-c", command],
        cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=timeout,
    )  # fmt: skip


def prepare_engine(env: dict[str, str], skaffold: Path, clone: Path, workdir: Path) -> None:
    """What a developer's engine has after a first build: python:3.12-slim (the image tests' stand-in), and
    the layers of the three `dev` images, so that skaffold's builds find every step built. The layers are
    built by skaffold itself (the same build context, so the same cache keys), from the kind profile's
    artifacts on the host's network, which the engine lacks (no bridge; PyPI is reachable from the host
    only)."""
    base = build_base_image(functools.partial(docker, env), workdir)
    docker(env, "tag", base, "python:3.12-slim")
    project = yaml.safe_load((clone / "skaffold.yaml").read_text())
    artifacts = profile(project, "kind")["build"]["artifacts"]
    for artifact in artifacts:
        artifact["context"] = str(clone / artifact["context"])
        artifact["docker"]["network"] = "host"
    config = {
        "apiVersion": project["apiVersion"],
        "kind": "Config",
        "build": {"local": {"push": False}, "tagPolicy": {"sha256": {}}, "artifacts": artifacts},
    }
    path = workdir / "prebuild-skaffold.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    built = run_skaffold(
        skaffold, "build", "-f", str(path), "--cache-artifacts=false", env=env, timeout=1800, cwd=workdir
    )
    assert built.returncode == 0, f"the first build failed:\n{built.stdout[-4000:]}\n{built.stderr[-4000:]}"


@pytest.fixture(scope="session")
def bot_api() -> Iterator[BotApiServer]:
    """The Bot API test server, with the README's example token (the quick start's `TELEGRAM_BOT_TOKEN`)."""
    with BotApiServer(token=EXAMPLE_TOKEN) as api:
        yield api


@pytest.fixture(scope="session")
def kind_cluster(kind_bin: Path, skaffold: Path, bot_api: BotApiServer) -> Iterator[KindCluster]:
    """The README's kind quick start on a fresh clone, its first line (`make kind-up`: `kind create
    cluster --config k8s/kind/cluster.yaml` with KIND_NODE_IMAGE, the namespace, the Secret) as the set-up
    and its last (`make kind-down`) as the tear-down, word for word, in a developer's environment made of
    what this machine has: a private dockerd (scripts/kind/dockerd.sh), prepared as a laptop's engine would
    be (`prepare_engine`), kind, skaffold, kubectl and helm built here on PATH, the node image built offline
    (scripts/kind/node-image.sh), and the add-on images of the manifests and the chart in the nodes
    (`addon_images`: nothing can be pulled). Then the engine is stopped, and the host left as it was."""
    if os.geteuid() != 0:
        pytest.fail("the kind tests cannot run: dockerd needs root")
    toolchain = Path(script(str(ROOT / "scripts" / "cluster" / "toolchain.sh"))[-1])
    cluster_bin = toolchain / "bin"
    collector = Path(script(str(SCRIPTS / "collector.sh"))[-1])
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
    clone = engine_dir / "mcstatbot"
    (engine_dir / "home").mkdir()
    down = "make kind-down"  # the README's last line, read below
    # The developer's shell: kind, kubectl, helm 3 and docker on PATH, the kubeconfig kind writes.
    shell = skaffold_env(
        {
            **env,
            "PATH": os.pathsep.join(
                [str(kind_bin), str(cluster_bin), str(ROOT / ".tools" / "bin"), env["PATH"]]
            ),
            "KUBECONFIG": str(kubeconfig),
            "HOME": str(engine_dir / "home"),
        }
    )
    stack = contextlib.ExitStack()
    try:
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
        *_, down = commands = kind_quick_start((clone / "README.md").read_text())
        image, archive = script(str(SCRIPTS / "node-image.sh"), env=env, timeout=3000)[-2:]
        if subprocess.run(
            ["docker", "image", "inspect", image], env=env, capture_output=True, check=False
        ).returncode:
            docker(env, "load", "-i", archive)
        shell["KIND_NODE_IMAGE"] = image
        prepare_engine(env, skaffold, clone, engine_dir)
        up = developer_shell(commands[0], clone, shell)
        assert up.returncode == 0, f"{commands[0]} failed:\n{up.stdout[-3000:]}\n{up.stderr[-6000:]}"
        # The bot's Bot API server: the test server through a relay the pods reach (TELEGRAM_API_BASE_URL).
        network = docker(env, "network", "inspect", "kind").stdout
        _, shell["TELEGRAM_API_BASE_URL"] = stack.enter_context(bot_api_on_kind_network(network, bot_api))
        cluster = KindCluster(
            "mcstatbot", kubeconfig, cluster_bin / "kubectl", env, toolchain, engine_dir, clone, shell
        )
        images = addon_images(cluster, collector, engine_dir / "addons")
        load_into_kind(cluster, kind_bin / "kind", *images)
        yield cluster
    finally:
        stack.close()
        failures = tear_down(down, clone=clone, shell=shell, env=env, engine_dir=engine_dir, before=before)
        if failures:
            pytest.fail("the kind cluster did not go cleanly:\n" + "\n".join(failures))


def tear_down(
    down: str,
    *,
    clone: Path,
    shell: dict[str, str],
    env: dict[str, str],
    engine_dir: Path,
    before: dict[str, set[str]],
) -> list[str]:
    """The README's last line (`down`), then the engine stopped; what did not go as it should."""
    failures: list[str] = []
    deleted = developer_shell(down, clone, shell, timeout=300)
    if deleted.returncode != 0:
        failures.append(f"{down} failed:\n{deleted.stdout[-2000:]}\n{deleted.stderr[-3000:]}")
    # kind's node containers (the engine's others, a build's say, go with the engine below).
    containers = subprocess.run(
        ["docker", "ps", "-aq", "--filter", "label=io.x-k8s.kind.cluster"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    ).stdout.split()
    if containers:
        failures.append(f"containers after {down}: {containers}")
    subprocess.run(["docker", "network", "rm", "kind"], capture_output=True, check=False, env=env)
    stopped = subprocess.run(
        ["bash", str(SCRIPTS / "dockerd.sh"), "stop", str(engine_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    if stopped.returncode != 0:
        failures.append(f"dockerd.sh stop failed:\n{stopped.stderr[-3000:]}")
    after = host_network_state()
    failures += [
        f"{k}: {sorted(after.get(k, set()) - v)}" for k, v in before.items() if after.get(k, set()) - v
    ]
    if engine_dir.exists():
        failures.append(f"engine folder {engine_dir}")
    return failures


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
def bot_api_on_kind_network(
    network_inspect: str, api: BotApiServer | None = None
) -> Iterator[tuple[BotApiServer, str]]:
    """The Bot API test server on this machine (`api`, or a new one), and the URL pods use for it: a relay on
    the gateway address of the kind docker network (`docker network inspect kind`'s output)."""
    network = json.loads(network_inspect)[0]
    gateway = next(c["Gateway"] for c in network["IPAM"]["Config"] if "." in c.get("Gateway", ""))
    with contextlib.ExitStack() as stack:
        server = api or stack.enter_context(BotApiServer())
        relay = Relay(gateway, server.port)
        stack.callback(relay.close)
        yield server, f"http://{gateway}:{relay.port}"
