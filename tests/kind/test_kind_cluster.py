"""kind on this machine, offline: the cluster the README's `make kind-up` makes (`kind create cluster
--config k8s/kind/cluster.yaml` with KIND_NODE_IMAGE, the node image built here by scripts/kind/node-image.sh,
nothing pulled) with kind v0.33.0 built from its Go module, on a private dockerd (scripts/kind/dockerd.sh);
the session fixture (tests/kind/conftest.py) deletes it with the README's `make kind-down`, and checks that
nothing of it is left on the host.
What the cluster is checked for: the three nodes of k8s/kind/cluster.yaml, Ready, on the Kubernetes version
of the real-cluster toolchain, with the config's labels; kind's system pods running from the images the node
image carries (no image pulled: the nodes cannot reach a registry); and pod networking across nodes with
CoreDNS answering a Service name, from a pod on each worker.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.kind.conftest import KindCluster

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(2400)


def versions(path: Path) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#")
    )


KUBERNETES_VERSION = versions(ROOT / "scripts" / "cluster" / "versions.env")["KUBERNETES_VERSION"]


def wait_for(what: str, check: Any, timeout: float = 240) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(3)
    pytest.fail(f"{what} within {timeout:.0f} s (last: {last!r})")


def test_the_nodes_of_k8s_kind_cluster_yaml_are_ready_on_the_toolchain_kubernetes(
    kind_cluster: KindCluster,
) -> None:
    cluster = kind_cluster

    def ready() -> list[dict[str, Any]] | None:
        items: list[dict[str, Any]] = cluster.kubectl_json("get", "nodes")["items"]
        conditions = [{c["type"]: c["status"] for c in n["status"]["conditions"]} for n in items]
        return items if len(items) == 3 and all(c.get("Ready") == "True" for c in conditions) else None

    nodes = {n["metadata"]["name"]: n for n in wait_for("three Ready nodes", ready)}
    name = cluster.name
    assert set(nodes) == {f"{name}-control-plane", f"{name}-worker", f"{name}-worker2"}
    for node in nodes.values():
        assert node["status"]["nodeInfo"]["kubeletVersion"] == KUBERNETES_VERSION
        assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    labels = {n: node["metadata"]["labels"] for n, node in nodes.items()}
    assert labels[f"{name}-control-plane"]["ingress-ready"] == "true"
    assert {
        labels[f"{name}-worker"]["topology.kubernetes.io/zone"],
        labels[f"{name}-worker2"]["topology.kubernetes.io/zone"],
    } == {"kind-a", "kind-b"}


def test_kinds_system_pods_run_from_the_images_the_node_image_carries(kind_cluster: KindCluster) -> None:
    cluster = kind_cluster

    def running() -> list[dict[str, Any]] | None:
        pods: list[dict[str, Any]] = cluster.kubectl_json("get", "pods", "-A")["items"]
        up = [
            p
            for p in pods
            if p["status"].get("phase") == "Running"
            and all(s.get("ready") for s in p["status"].get("containerStatuses", []))
        ]
        names = " ".join(p["metadata"]["name"] for p in up)
        wanted = ("coredns", "kindnet", "kube-proxy", "local-path-provisioner", "etcd", "kube-apiserver")
        return pods if all(w in names for w in wanted) and len(up) == len(pods) else None

    pods = wait_for("kind's system pods running and ready", running)
    # One kindnet and one kube-proxy per node.
    for daemon in ("kindnet", "kube-proxy"):
        assert sum(p["metadata"]["name"].startswith(daemon) for p in pods) == 3, daemon
    # Nothing was pulled: every image a pod runs was in the node image.
    preloaded = {
        line.split()[0] + ":" + line.split()[1]
        for line in cluster.node_exec(f"{cluster.name}-worker", "crictl", "images").stdout.splitlines()[1:]
    }
    used = {c["image"] for p in pods for c in p["spec"]["containers"]}
    assert used <= {i.removeprefix("docker.io/") for i in preloaded} | preloaded, used - preloaded


def test_pods_on_both_workers_resolve_a_service_name_through_coredns(kind_cluster: KindCluster) -> None:
    """A pod on each worker (kind's local-path helper image: a shell and getent) looks up the API server's
    Service by name: CoreDNS answers across nodes (kindnet's routes, kube-proxy's Service rules)."""
    cluster = kind_cluster
    helper_pod = cluster.kubectl_json("-n", "local-path-storage", "get", "configmap", "local-path-config")[
        "data"
    ]["helperPod.yaml"]
    helper = next(line.split()[-1] for line in helper_pod.splitlines() if line.strip().startswith("image:"))
    want = cluster.kubectl_json("-n", "default", "get", "service", "kubernetes")["spec"]["clusterIP"]
    for worker in (f"{cluster.name}-worker", f"{cluster.name}-worker2"):
        pod = f"dns-{worker.rsplit('-', 1)[1]}"
        overrides = {"spec": {"nodeName": worker, "restartPolicy": "Never"}}
        cluster.kubectl(
            "run",
            pod,
            "--image",
            helper,
            "--image-pull-policy=Never",
            "--restart=Never",
            f"--overrides={json.dumps(overrides)}",
            "--command",
            "--",
            "getent",
            "hosts",
            "kubernetes.default.svc.cluster.local",
        )
        phase = wait_for(
            f"pod {pod} to finish",
            lambda pod=pod: (
                cluster.kubectl_json("get", "pod", pod)["status"].get("phase") in {"Succeeded", "Failed"}
                and cluster.kubectl_json("get", "pod", pod)["status"]["phase"]
            ),
            timeout=120,
        )
        logs = cluster.kubectl("logs", pod).stdout
        assert phase == "Succeeded", logs
        assert logs.split()[0] == want, logs
        cluster.kubectl("delete", "pod", pod, "--wait=false")
