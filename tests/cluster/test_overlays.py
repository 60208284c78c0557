"""The kustomize overlays applied for real: `kubectl kustomize --enable-helm ... | kubectl apply -f -`.

Each overlay (k8s/overlays/kind, k8s/overlays/eks) is rendered as its header says, with this cluster's
kubectl and helm 3. What is the product's own (the `mcstatbot` namespace and everything in it) is applied for
real: the API server accepts every object and every Deployment's and Job's pods are admitted under the
namespace's `restricted` Pod Security level (their ReplicaSets and Jobs create them; a refused pod would
leave a FailedCreate instead). The pods do not start: their images (`mcstatbot-*:dev`, amazon/dynamodb-local,
the EKS values' ECR repositories) cannot be had here; tests/cluster/test_helm_install.py runs the same
chart and values with the images built here.

The kind overlay also brings metrics-server and ingress-nginx: those go through `kubectl apply
--dry-run=server` (every admission step, nothing stored), because applying them would replace the
cluster's own metrics-server APIService and add a controller that is not built here (ingress-nginx is
retired; the cluster's Ingress controller is Traefik). Their namespace is created for real for the dry run.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.cluster.conftest import HELMS, ROOT

if TYPE_CHECKING:
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
        assert others, "the kind overlay brings metrics-server and ingress-nginx"
        for doc in others:
            if doc["kind"] == "Namespace":
                cleanup.append(doc["metadata"]["name"])
                cluster.apply(dump([doc]))
        rest = [d for d in others if d["kind"] != "Namespace"]
        dry = cluster.kubectl("apply", "--dry-run=server", "-f", "-", stdin=dump(rest), check=False)
        assert dry.returncode == 0, dry.stderr[-4000:]
    else:
        assert not others, [f"{d['kind']}/{d['metadata']['name']}" for d in others]
