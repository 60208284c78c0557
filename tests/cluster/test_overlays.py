"""The kustomize overlays applied for real: `kubectl kustomize --enable-helm ... | kubectl apply -f -`.

Each overlay (k8s/overlays/kind, k8s/overlays/eks) is rendered as its header says, with this cluster's
kubectl and helm 3. What is the product's own (the `mcstatbot` namespace and everything in it) is applied for
real: the API server accepts every object and every Deployment's and Job's pods are admitted under the
namespace's `restricted` Pod Security level (their ReplicaSets and Jobs create them; a refused pod would
leave a FailedCreate instead). The pods do not start: their images (`mcstatbot-*:dev`, amazon/dynamodb-local,
the EKS values' ECR repositories) cannot be had here; tests/cluster/test_helm_install.py runs the same
chart and values with the images built here.

The kind overlay also brings metrics-server and Traefik: those go through `kubectl apply
--dry-run=server` (every admission step, nothing stored), because applying them would replace the
cluster's own metrics-server APIService and Traefik (the cluster's Ingress controller, in the same `traefik`
namespace). A namespace the cluster does not have yet is created for real for the dry run (and deleted);
one it has is left alone. The kind Traefik's pod needs the `privileged` level only for its hostPorts: the
same pod without them is admitted in the `restricted` mcstatbot namespace (dry run), and with them refused.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.cluster.conftest import HELMS, ROOT

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Iterator

    from tests.cluster.conftest import Cluster

pytestmark = pytest.mark.timeout(7200)

OVERLAYS = ROOT / "k8s" / "overlays"
PRODUCT_NAMESPACE = "mcstatbot"


def kustomize(cluster: Cluster, overlay: str) -> list[dict[str, Any]]:
    rendered = cluster.kubectl(
        "kustomize", "--enable-helm", "--helm-command", str(HELMS["helm3"]),
        "--load-restrictor", "LoadRestrictionsNone", str(OVERLAYS / overlay),
    ).stdout  # fmt: skip
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def is_product(doc: dict[str, Any]) -> bool:
    meta = doc["metadata"]
    if doc["kind"] == "Namespace":
        return bool(meta["name"] == PRODUCT_NAMESPACE)
    return bool(meta.get("namespace") == PRODUCT_NAMESPACE)


def dump(docs: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


@pytest.fixture
def cleanup(cluster: Cluster) -> Iterator[list[str]]:
    """Namespaces to delete (and wait for) after the test, also when it fails."""
    namespaces: list[str] = []
    yield namespaces
    for ns in namespaces:
        cluster.kubectl("delete", "namespace", ns, "--ignore-not-found", "--wait=true", "--timeout=180s",
                        check=False, timeout=240)  # fmt: skip


def pods_created(cluster: Cluster, docs: list[dict[str, Any]]) -> list[str]:
    """Deployments whose ReplicaSet has not created all its pods, Jobs that created none (each a name)."""
    missing: list[str] = []
    for doc in docs:
        name, kind = doc["metadata"]["name"], doc["kind"]
        if kind == "Deployment":
            status = cluster.kubectl_json("get", "deployment", name, "-n", PRODUCT_NAMESPACE)["status"]
            wanted = int(doc["spec"].get("replicas", 1))
            if int(status.get("replicas", 0)) < wanted:
                missing.append(f"Deployment/{name}")
        elif kind == "Job":
            pods = cluster.kubectl_json("get", "pods", "-n", PRODUCT_NAMESPACE, "-l", f"job-name={name}")
            if not pods["items"]:
                missing.append(f"Job/{name}")
    return missing


def dry_run(cluster: Cluster, docs: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    """`kubectl apply --dry-run=server` of `docs`: every admission step, nothing stored."""
    return cluster.kubectl("apply", "--dry-run=server", "-f", "-", stdin=dump(docs), check=False)


def restricted_pod(deployment: dict[str, Any], *, keep_host_ports: bool) -> dict[str, Any]:
    """A Pod of the Deployment's template in the `restricted` product namespace (without its ServiceAccount,
    which lives in the add-on's namespace); its containers' hostPorts kept or removed."""
    spec = yaml.safe_load(yaml.safe_dump(deployment["spec"]["template"]["spec"]))
    spec.pop("serviceAccountName", None)
    spec["automountServiceAccountToken"] = False
    if not keep_host_ports:
        for container in spec["containers"]:
            for port in container.get("ports", []):
                port.pop("hostPort", None)
    name = f"{deployment['metadata']['name']}-pod-security-check"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": PRODUCT_NAMESPACE},
            "spec": spec}  # fmt: skip


@pytest.mark.parametrize("overlay", ["kind", "eks"])
def test_the_overlay_applied(cluster: Cluster, overlay: str, cleanup: list[str]) -> None:
    docs = kustomize(cluster, overlay)
    product = [d for d in docs if is_product(d)]
    others = [d for d in docs if not is_product(d)]
    assert any(d["kind"] == "Deployment" for d in product), [d["kind"] for d in product]
    cleanup.append(PRODUCT_NAMESPACE)

    cluster.apply(dump(product))
    for doc in product:
        kind, name = doc["kind"], doc["metadata"]["name"]
        ns = ["-n", doc["metadata"]["namespace"]] if "namespace" in doc["metadata"] else []
        found = cluster.kubectl("get", kind, name, *ns, "-o", "name", check=False)
        assert found.returncode == 0, f"{kind}/{name} of the {overlay} overlay is missing: {found.stderr}"
    deadline = time.monotonic() + 90
    missing = pods_created(cluster, product)
    while missing and time.monotonic() < deadline:
        time.sleep(2)
        missing = pods_created(cluster, product)
    events = cluster.kubectl("get", "events", "-n", PRODUCT_NAMESPACE, check=False).stdout
    assert not missing, f"pods not admitted for {missing}:\n{events[-4000:]}"
    assert "FailedCreate" not in events, events[-4000:]

    if overlay == "kind":
        assert others, "the kind overlay brings metrics-server and Traefik"
        for doc in others:
            if doc["kind"] == "Namespace":
                name = doc["metadata"]["name"]
                if cluster.kubectl("get", "namespace", name, check=False).returncode != 0:
                    cleanup.append(name)
                    cluster.apply(dump([doc]))
        rest = [d for d in others if d["kind"] != "Namespace"]
        dry = dry_run(cluster, rest)
        assert dry.returncode == 0, dry.stderr[-4000:]
        traefik = next(d for d in others if d["kind"] == "Deployment" and d["metadata"]["name"] == "traefik")
        refused = dry_run(cluster, [restricted_pod(traefik, keep_host_ports=True)])
        assert refused.returncode != 0, refused.stdout
        assert "hostPort" in refused.stderr, refused.stderr[-2000:]
        admitted = dry_run(cluster, [restricted_pod(traefik, keep_host_ports=False)])
        assert admitted.returncode == 0, admitted.stderr[-2000:]
    else:
        assert not others, [f"{d['kind']}/{d['metadata']['name']}" for d in others]
