"""The cluster itself: the pinned version, PodSecurity admission, the aggregated metrics API, no route out.

That the cluster leaves nothing behind is checked by the session fixture after `cluster.sh down` (see
conftest.leftovers): mounts, the namespace, the veth, cgroups, processes, host iptables/nft rules, the
state folder, kubelet's kernel settings.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from typing import TYPE_CHECKING

import yaml

from tests.cluster.conftest import CLUSTER_NAME, SCRIPTS, namespace

if TYPE_CHECKING:
    from tests.cluster.conftest import Cluster


def pinned(name: str) -> str:
    for line in (SCRIPTS / "versions.env").read_text().splitlines():
        if line.startswith(f"{name}="):
            return line.split("=", 1)[1]
    raise AssertionError(f"{name} is not pinned in versions.env")


def corefile_plugins() -> set[str]:
    """The plugins the cluster's Corefile names: the first word of each line of its server blocks."""
    docs = yaml.safe_load_all((SCRIPTS / "addons" / "10-coredns.yaml").read_text())
    corefile = next(d for d in docs if d and d["kind"] == "ConfigMap")["data"]["Corefile"]
    plugins, depth = set(), 0
    for line in corefile.splitlines():
        words = line.split()
        if words and depth == 1 and words[0] != "}":
            plugins.add(words[0])
        depth += line.count("{") - line.count("}")
    return plugins


def test_coredns_carries_exactly_the_plugins_its_corefile_names(cluster: Cluster) -> None:
    # Built from a main package importing only COREDNS_PLUGINS (toolchain.sh): the Corefile's plugins, not
    # CoreDNS's 60-odd (route53, azure, clouddns, etcd, ...). `prometheus` is the plugin/metrics package.
    listed = subprocess.run(
        [str(cluster.bin / "coredns"), "-plugins"], capture_output=True, text=True, check=True, timeout=30
    )
    expected = {
        "errors",
        "health",
        "ready",
        "kubernetes",
        "prometheus",
        "cache",
        "loop",
        "reload",
        "loadbalance",
    }
    assert corefile_plugins() == expected
    # The kubernetes plugin imports metadata and transfer, which register themselves too.
    assert set(listed.stdout.split()) == expected | {"metadata", "transfer"}
    pinned_packages = shlex.split(pinned("COREDNS_PLUGINS"))[0].split()
    assert {"prometheus" if p == "metrics" else p for p in pinned_packages} == expected


def test_traefik_is_built_without_lego_dns_providers(cluster: Cluster) -> None:
    # `go version -m` reads the binary's build information: every module it was linked from, and replacements.
    info = subprocess.run(
        ["go", "version", "-m", str(cluster.bin / "traefik")],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    lines = [line.split() for line in info.splitlines()]
    lego = next(i for i, words in enumerate(lines) if words[:2] == ["dep", "github.com/go-acme/lego/v4"])
    assert lines[lego + 1][:2] == ["=>", "./lego"], info
    # Modules that only lego's DNS providers link: Route 53's and Azure DNS's SDKs, Google's APIs, Cloudflare.
    linked = [words[1] for words in lines if words[:1] == ["dep"]]
    for module in (
        "aws-sdk-go-v2/service/route53",
        "resourcemanager/dns",
        "google.golang.org/api",
        "cloudflare",
    ):
        assert not [m for m in linked if module in m], (module, info)


def test_server_reports_the_pinned_version(cluster: Cluster) -> None:
    version = cluster.kubectl_json("version")
    assert version["serverVersion"]["gitVersion"] == pinned("KUBERNETES_VERSION")
    assert version["clientVersion"]["gitVersion"] == pinned("KUBERNETES_VERSION")
    nodes = cluster.kubectl_json("get", "nodes")["items"]
    assert [n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes] == [pinned("KUBERNETES_VERSION")]


def test_pod_security_admission_refuses_a_pod_below_restricted(cluster: Cluster) -> None:
    # Not `privileged: true`: the API server (--allow-privileged=false) refuses that before admission.
    pod = """
apiVersion: v1
kind: Pod
metadata:
  name: unrestricted
spec:
  containers:
    - name: c
      image: mcstatbot.local/redis:bookworm
"""
    with namespace(cluster, "psa-check") as ns:
        result = cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=pod, check=False)
    assert result.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in result.stderr, result.stderr
    assert "allowPrivilegeEscalation != false" in result.stderr, result.stderr
    assert "runAsNonRoot != true" in result.stderr, result.stderr


def test_metrics_api_reports_node_and_pod_usage(cluster: Cluster) -> None:
    nodes = json.loads(cluster.kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes").stdout)["items"]
    assert nodes
    assert nodes[0]["usage"]["cpu"]
    assert nodes[0]["usage"]["memory"]
    # Pod metrics appear after metrics-server's first scrape of the kubelet (every 15 s).
    deadline = time.monotonic() + 90
    top = cluster.kubectl("top", "pods", "-n", "kube-system", "--no-headers", check=False)
    while "coredns" not in top.stdout and time.monotonic() < deadline:
        time.sleep(3)
        top = cluster.kubectl("top", "pods", "-n", "kube-system", "--no-headers", check=False)
    assert "coredns" in top.stdout, (top.stdout, top.stderr)


def test_the_namespace_has_no_route_off_the_machine(cluster: Cluster) -> None:
    routes = subprocess.run(
        ["ip", "-n", f"mcsb-{CLUSTER_NAME}", "route", "show"], capture_output=True, text=True, check=True
    ).stdout
    assert "default" not in routes, routes
    assert f"{cluster.host_ip.rsplit('.', 1)[0]}.0/30" in routes, routes
