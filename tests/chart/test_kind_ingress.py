"""The kind overlay's Traefik (k8s/kind/traefik) against what it serves and where it runs: the chart's
Ingress and its class (kind values), k8s/kind/cluster.yaml (the node label and the host port mappings), the
bot's NetworkPolicy, the RBAC Traefik needs, and the Pod Security rules its container keeps. Schema validation
(kubernetes-validate --strict, 1.29 and 1.34) and checkov cover these objects with the rest of the overlay in
test_render.py; tests/cluster/test_overlays.py has the API server admit them (dry run) and judge the pod's
Pod Security level.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:
    from tests.chart.conftest import Kit, Render

ROOT = Path(__file__).resolve().parents[2]
KIND_VALUES = ROOT / "k8s" / "overlays" / "kind" / "app" / "values.yaml"
CLUSTER = ROOT / "k8s" / "kind" / "cluster.yaml"
VERSIONS = ROOT / "scripts" / "cluster" / "versions.env"
IMAGE = "docker.io/library/traefik"
BOT = "mcstatbot-bot"
# kind taints the control plane when the cluster has workers (k8s/kind/cluster.yaml has two).
CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


@pytest.fixture(scope="module")
def kind(overlays: dict[str, Render]) -> Render:
    return overlays["kind"]


@pytest.fixture(scope="module")
def controller(kind: Render) -> dict[str, Any]:
    """The one Deployment that runs the Traefik image."""
    found = [
        d
        for d in kind.of_kind("Deployment")
        if d["spec"]["template"]["spec"]["containers"][0]["image"].startswith(f"{IMAGE}:")
    ]
    assert len(found) == 1, [d["metadata"]["name"] for d in found]
    return found[0]


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(KIND_VALUES.read_text())
    return loaded


@pytest.fixture(scope="module")
def cluster() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CLUSTER.read_text())
    return loaded


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def flags(deployment: dict[str, Any]) -> dict[str, str]:
    """Traefik's `--name=value` arguments."""
    args: list[str] = container(deployment)["args"]
    parsed = dict(arg.split("=", 1) for arg in args)
    assert all(name.startswith("--") for name in parsed), args
    return parsed


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, selector  # matchExpressions are not used here
    return all(labels.get(key) == value for key, value in selector.get("matchLabels", {}).items())


def node_labels(node: dict[str, Any]) -> dict[str, str]:
    """A kind node's labels: `labels`, plus the kubelet's `node-labels` set through kubeadmConfigPatches."""
    labels: dict[str, str] = dict(node.get("labels", {}))
    for patch in node.get("kubeadmConfigPatches", []):
        config = yaml.safe_load(patch)
        extra = config.get("nodeRegistration", {}).get("kubeletExtraArgs", {}).get("node-labels", "")
        labels.update(item.split("=", 1) for item in extra.split(",") if item)
    return labels


def traefik_version() -> str:
    """The Traefik version the real-cluster toolchain builds (scripts/cluster/versions.env)."""
    found = re.search(r"^TRAEFIK_VERSION=(v[0-9.]+)$", VERSIONS.read_text(), re.MULTILINE)
    assert found, VERSIONS
    return found.group(1)


def test_the_overlay_runs_one_traefik_of_the_tested_version_with_the_ingress_provider_only(
    kind: Render, controller: dict[str, Any]
) -> None:
    item = container(controller)
    # The official image at the version the real-cluster tests run; by tag (no digest that was not checked).
    assert item["image"] == f"{IMAGE}:{traefik_version()}", item["image"]
    assert controller["spec"]["replicas"] == 1
    given = flags(controller)
    assert given["--providers.kubernetesingress"] == "true"
    assert given["--providers.kubernetesingress.ingressendpoint.hostname"] == "localhost"
    assert given["--global.checknewversion"] == given["--global.sendanonymoususage"] == "false"
    # No CRD provider and no CRDs: the kind values render no Middleware (they admit every source).
    assert not [name for name in given if "kubernetescrd" in name or "kubernetesgateway" in name], given
    assert not kind.of_kind("CustomResourceDefinition")
    assert not kind.of_kind("Middleware")
    assert given["--ping"] == "true"
    ping_port = next(p for p in item["ports"] if p["name"] == given["--ping.entrypoint"])
    assert given[f"--entrypoints.{ping_port['name']}.address"] == f":{ping_port['containerPort']}"
    for probe in ("readinessProbe", "livenessProbe"):
        assert item[probe]["httpGet"] == {"path": "/ping", "port": ping_port["name"]}, probe
    # Every port Traefik is given is an entry point it listens on.
    for port in item["ports"]:
        assert given[f"--entrypoints.{port['name']}.address"] == f":{port['containerPort']}", port
    assert {"requests", "limits"} <= set(item["resources"])
    # One pod holds the node's hostPorts: a surge pod could never be scheduled.
    assert controller["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}


# Pod Security's `restricted` level, as far as a Pod's fields go (kubernetes.io/docs/concepts/security/
# pod-security-standards): the kind Traefik meets all of it but the hostPorts, which need `privileged`.
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret"}  # fmt: skip


def container_problems(item: dict[str, Any], pod_ctx: dict[str, Any]) -> list[str]:
    """What in one container (with its pod's securityContext) breaks the `restricted` level."""
    problems: list[str] = []
    ctx = item.get("securityContext", {})
    where = f"container {item['name']}"
    if ctx.get("privileged"):
        problems.append(f"{where}: privileged")
    if ctx.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{where}: allowPrivilegeEscalation")
    if ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")) is not True:
        problems.append(f"{where}: runAsNonRoot")
    if ctx.get("runAsUser", pod_ctx.get("runAsUser")) == 0:
        problems.append(f"{where}: runAsUser 0")
    seccomp = ctx.get("seccompProfile", pod_ctx.get("seccompProfile", {})).get("type")
    if seccomp not in {"RuntimeDefault", "Localhost"}:
        problems.append(f"{where}: seccompProfile {seccomp}")
    caps = ctx.get("capabilities", {})
    if "ALL" not in caps.get("drop", []):
        problems.append(f"{where}: capabilities not dropped")
    if not set(caps.get("add", [])) <= {"NET_BIND_SERVICE"}:
        problems.append(f"{where}: capabilities added {caps['add']}")
    return problems


def restricted_problems(pod: dict[str, Any]) -> list[str]:
    """What in a pod spec breaks the `restricted` level, hostPorts aside."""
    problems = [f"spec.{key}" for key in ("hostNetwork", "hostPID", "hostIPC") if pod.get(key)]
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            problems.append(f"volume {volume['name']}: {sorted(kinds)}")
    for item in pod.get("initContainers", []) + pod["containers"]:
        problems += container_problems(item, pod.get("securityContext", {}))
    return problems


def test_the_traefik_pod_is_restricted_but_for_its_host_ports(
    kind: Render, controller: dict[str, Any]
) -> None:
    namespace = kind.get("Namespace", controller["metadata"]["namespace"])
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    pod = controller["spec"]["template"]["spec"]
    assert restricted_problems(pod) == []
    assert [p for p in container(controller)["ports"] if "hostPort" in p]  # the reason for `privileged`
    # No added capability either: the hostPorts map onto unprivileged container ports.
    assert "add" not in container(controller)["securityContext"]["capabilities"]
    assert all(p["containerPort"] >= 1024 for p in container(controller)["ports"])
    assert container(controller)["securityContext"]["readOnlyRootFilesystem"] is True


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda pod: pod.update(hostNetwork=True), "spec.hostNetwork"),
        (lambda pod: pod["containers"][0]["securityContext"].pop("allowPrivilegeEscalation"),
         "allowPrivilegeEscalation"),
        (lambda pod: pod["containers"][0]["securityContext"].update(runAsNonRoot=False), "runAsNonRoot"),
        (lambda pod: pod["containers"][0]["securityContext"].update(seccompProfile={"type": "Unconfined"}),
         "seccompProfile"),
        (lambda pod: pod["containers"][0]["securityContext"]["capabilities"].update(add=["NET_ADMIN"]),
         "capabilities added"),
        (lambda pod: pod["volumes"].append({"name": "host", "hostPath": {"path": "/"}}), "volume host"),
    ],
)  # fmt: skip
def test_the_restricted_check_catches_each_breach(
    controller: dict[str, Any], change: Any, problem: str
) -> None:
    pod = yaml.safe_load(yaml.safe_dump(controller["spec"]["template"]["spec"]))
    change(pod)
    found = restricted_problems(pod)
    assert len(found) == 1, found
    assert problem in found[0], found


def test_the_controller_namespace_service_and_account_fit_together(
    kind: Render, controller: dict[str, Any]
) -> None:
    namespace = controller["metadata"]["namespace"]
    assert kind.has("Namespace", namespace)
    pod = controller["spec"]["template"]
    assert selects(controller["spec"]["selector"], pod["metadata"]["labels"])
    account = pod["spec"]["serviceAccountName"]
    assert kind.get("ServiceAccount", account)["metadata"]["namespace"] == namespace
    assert pod["spec"]["automountServiceAccountToken"] is True  # it watches the API
    services = [
        s
        for s in kind.of_kind("Service")
        if s["metadata"]["namespace"] == namespace
        and selects({"matchLabels": s["spec"]["selector"]}, pod["metadata"]["labels"])
    ]
    assert len(services) == 1
    ports = {p["name"] for p in container(controller)["ports"]}
    assert {p["targetPort"] for p in services[0]["spec"]["ports"]} <= ports


def test_the_ingress_class_is_the_one_the_kind_values_use(
    kind: Render, controller: dict[str, Any], values: dict[str, Any]
) -> None:
    class_name = values["ingress"]["className"]
    given = flags(controller)
    ingress_class = kind.get("IngressClass", class_name)
    assert ingress_class["spec"]["controller"] == "traefik.io/ingress-controller"
    assert given["--providers.kubernetesingress.ingressclass"] == class_name
    # The chart's Ingress in the same render names that class (Traefik ignores Ingresses of other classes).
    ingresses = kind.of_kind("Ingress")
    assert [i["metadata"]["name"] for i in ingresses] == [BOT]
    assert ingresses[0]["spec"]["ingressClassName"] == class_name
    assert ingresses[0]["spec"]["rules"][0]["host"] == values["ingress"]["hosts"][0]["host"]


def test_the_controller_runs_on_the_node_with_the_host_ports(
    controller: dict[str, Any], cluster: dict[str, Any]
) -> None:
    pod = controller["spec"]["template"]["spec"]
    selector = pod["nodeSelector"]
    matching = [
        node
        for node in cluster["nodes"]
        if selector.items() <= {**node_labels(node), "kubernetes.io/os": "linux"}.items()
    ]
    assert len(matching) == 1, selector
    node = matching[0]
    assert node["role"] == "control-plane"
    assert selector["ingress-ready"] == "true"
    # kind forwards the host's ports to the node's containerPorts; Traefik takes them as hostPorts.
    mappings = node["extraPortMappings"]
    host_ports = {
        (p["hostPort"], p.get("protocol", "TCP")) for p in container(controller)["ports"] if "hostPort" in p
    }
    assert host_ports == {(m["containerPort"], m.get("protocol", "TCP")) for m in mappings}
    assert {m["listenAddress"] for m in mappings} == {"127.0.0.1"}  # only this machine reaches the Ingress
    # The control plane is tainted (the cluster has workers): Traefik must tolerate it.
    assert any(node["role"] == "worker" for node in cluster["nodes"])
    assert any(
        t["key"] == CONTROL_PLANE_TAINT["key"]
        and t.get("effect") in {None, CONTROL_PLANE_TAINT["effect"]}
        and t.get("operator") in {"Exists", None}
        for t in pod["tolerations"]
    ), pod["tolerations"]


def test_the_bots_network_policy_admits_the_controllers_namespace(
    kind: Render, controller: dict[str, Any]
) -> None:
    """Traefik proxies to the bot's pods directly: the bot's policy must admit its namespace (by the
    `kubernetes.io/metadata.name` label the API server sets on every Namespace) on the Ingress's port."""
    namespace = controller["metadata"]["namespace"]
    pod_labels = controller["spec"]["template"]["metadata"]["labels"]
    ingress = kind.get("Ingress", BOT)
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    service = kind.get("Service", backend["name"])
    target = next(p["targetPort"] for p in service["spec"]["ports"] if p["name"] == backend["port"]["name"])
    bot_port = next(
        p
        for p in container(kind.get("Deployment", BOT))["ports"]
        if target in {p["name"], p["containerPort"]}
    )
    policy = kind.get("NetworkPolicy", BOT)["spec"]
    assert "Ingress" in policy["policyTypes"]
    admitted = [
        rule
        for rule in policy["ingress"]
        for peer in rule.get("from", [])
        if peer.get("namespaceSelector") == {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
        and selects(peer.get("podSelector", {}), pod_labels)
    ]
    assert admitted, policy["ingress"]
    for rule in admitted:
        ports = rule.get("ports")
        assert ports is None or any(
            p.get("port") in {bot_port["name"], bot_port["containerPort"]} for p in ports
        ), ports


def rules_for(kind: Render, binding_kind: str, account: str, namespace: str) -> list[dict[str, Any]]:
    """The rules bound to a ServiceAccount by ClusterRoleBindings or by RoleBindings in `namespace`."""
    role_kind = "ClusterRole" if binding_kind == "ClusterRoleBinding" else "Role"
    rules: list[dict[str, Any]] = []
    for binding in kind.of_kind(binding_kind):
        if binding_kind == "RoleBinding" and binding["metadata"]["namespace"] != namespace:
            continue
        subjects = binding.get("subjects", [])
        if {"kind": "ServiceAccount", "name": account, "namespace": namespace} not in subjects:
            continue
        assert binding["roleRef"]["kind"] == role_kind
        role = kind.get(role_kind, binding["roleRef"]["name"])
        rules += role["rules"]
    return rules


def allows(
    rules: list[dict[str, Any]], group: str, resource: str, verb: str, name: str | None = None
) -> bool:
    return any(
        group in rule["apiGroups"]
        and resource in rule["resources"]
        and verb in rule["verbs"]
        and (not rule.get("resourceNames") or name in rule["resourceNames"])
        for rule in rules
    )


# What Traefik's Kubernetes Ingress provider reads and writes: (API group, resource, verbs).
CLUSTER_WIDE = [
    ("networking.k8s.io", "ingresses", "get list watch"),
    ("networking.k8s.io", "ingresses/status", "update"),
    ("networking.k8s.io", "ingressclasses", "get list watch"),
    ("", "services", "get list watch"),
    ("", "endpoints", "list watch"),
    ("discovery.k8s.io", "endpointslices", "list watch"),
    ("", "secrets", "get list watch"),
    ("", "nodes", "get list watch"),
]


def test_the_controller_may_do_what_it_needs_and_no_more(kind: Render, controller: dict[str, Any]) -> None:
    namespace = controller["metadata"]["namespace"]
    account = controller["spec"]["template"]["spec"]["serviceAccountName"]
    cluster_rules = rules_for(kind, "ClusterRoleBinding", account, namespace)
    local_rules = rules_for(kind, "RoleBinding", account, namespace)
    assert local_rules == []  # no leader election, no namespaced state
    for group, resource, verbs in CLUSTER_WIDE:
        for verb in verbs.split():
            assert allows(cluster_rules, group, resource, verb), (group, resource, verb)
    # Read-only but for Ingress status; no wildcards, nothing of Traefik's CRDs (none are installed).
    for rule in cluster_rules:
        assert "*" not in rule["apiGroups"] + rule["resources"] + rule["verbs"], rule
        assert "traefik.io" not in rule["apiGroups"], rule
        assert set(rule["verbs"]) <= {"get", "list", "watch", "update"}, rule
        if "update" in rule["verbs"]:
            assert rule["resources"] == ["ingresses/status"], rule


def test_the_kind_values_and_the_cluster_agree_on_the_ingress_host(values: dict[str, Any], kit: Kit) -> None:
    """`*.localtest.me` resolves to 127.0.0.1, where kind listens (k8s/kind/cluster.yaml): the documented
    `curl http://mcstatbot.localtest.me/telegram/webhook` reaches the controller."""
    host = values["ingress"]["hosts"][0]["host"]
    assert host.endswith(".localtest.me")
    assert values["ingress"]["allowedSourceRanges"] == []  # requests come from this machine, not Telegram
    assert host in (kit.root / "docs" / "kubernetes.md").read_text()
