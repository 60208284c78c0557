"""Monitoring as an operator sees it: a real Prometheus in the cluster scrapes the release, evaluates the
chart's alert rules, and answers every query of the chart's Grafana dashboard.

Prometheus is Debian's binary in an image (scripts/cluster/images.sh), in a namespace of its own, with a
plain configuration made from what the chart renders for the Prometheus Operator: the ServiceMonitor becomes
a scrape job (the Services its selector picks, its port, path, interval and `honor_labels`, the target
labels the Operator sets), and the PrometheusRule's groups become its rule file. No Operator is built (too
long a build for CI). Debian builds Prometheus without Kubernetes service discovery (`kubernetes_sd_configs`
is refused as an unknown field), so the targets are the selected Services' cluster DNS names, found with
kubectl when the job is written: each component runs one pod here (no HPA), so a Service is a pod, and the
series carry no `pod` label (the dashboard's per-pod panels then show one series per Service).

Shortened in this test's copy only: the scrape and evaluation interval (5 s, the chart's default is 30 s)
and the `for:` of the alert under test (15 s, the chart's 5 m); the expressions are the chart's.

The release is the kind values (webhook mode) adapted as in test_helm_install; the Bot API test server on
the host end of the link delivers every update through the Ingress (Traefik). The tests run in file order on
the one release.
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import time
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import yaml
from mcstatbot_testkit.harness import TelegramUser
from mcstatbot_testkit.net import LOOPBACK
from mcstatbot_testkit.watching import wait_until

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
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from mcstatbot_testkit.dynamodb import DynamoDBLocal
    from mcstatbot_testkit.minecraft import JavaPeer
    from mcstatbot_testkit.telegram import ApiCall

    from tests.cluster.conftest import AppImages, Cluster, LinkBotApiServer

pytestmark = pytest.mark.timeout(7200)

HELM = HELMS["helm3"]
APP_NS = "monitored"
COMPONENTS = ("bot", "query", "watcher")
PROMETHEUS_NS = "monitoring"
DASHBOARD = CHART / "files" / "grafana-dashboard.json"
INTERVAL = "5s"
# The rollback alert set off here: the bot's calls to the query service failing (errors, timeouts, an open
# circuit breaker), which is what an operator sees when the query service fails.
ALERT = "McstatbotQueryServiceErrorRate"
ALERT_FOR = "15s"
# Dashboard queries that cannot return data on this cluster, and why.
NO_DATA_HERE: dict[str, str] = {
    'sum by (backend, operation) (rate(mcstatbot_state_store_retries_total{namespace=~"$namespace"}[5m]))': (
        "the bot retries a state-store call only when DynamoDB throttles or the connection drops; DynamoDB "
        "Local never throttles, and it serves the other cluster tests too, so it is not stopped here"
    ),
}


def prometheus_image() -> str:
    """The image scripts/cluster/images.sh builds from Debian's package, tagged with its version."""
    version = subprocess.run(
        ["prometheus", "--version"], capture_output=True, text=True, check=True, timeout=30
    ).stdout.split()[2]
    return f"mcstatbot.local/prometheus:{version.split('+', 1)[0]}"


def selected_services(cluster: Cluster, service_monitor: dict[str, Any]) -> list[dict[str, Any]]:
    """The Services of APP_NS that the ServiceMonitor's selector picks."""
    selector = service_monitor["spec"]["selector"]
    terms = [f"{k}={v}" for k, v in selector.get("matchLabels", {}).items()]
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", expression  # the only operator the chart uses
        terms.append(f"{expression['key']} in ({','.join(expression['values'])})")
    services: list[dict[str, Any]] = cluster.kubectl_json(
        "get", "services", "-n", APP_NS, "-l", ",".join(terms)
    )["items"]
    return services


def scrape_job(service_monitor: dict[str, Any], services: list[dict[str, Any]]) -> dict[str, Any]:
    """The ServiceMonitor as a scrape job of Debian's Prometheus, which is built without Kubernetes service
    discovery: one static target per selected Service (its port named as the endpoint's), with the target
    labels the Prometheus Operator sets (`namespace`, `service`, `job`, `endpoint`; no `pod`: a target is
    a Service, and this release runs one pod of each), and the endpoint's path, interval and `honorLabels`."""
    (endpoint,) = service_monitor["spec"]["endpoints"]
    static = []
    for service in services:
        name = service["metadata"]["name"]
        (port,) = [p["port"] for p in service["spec"]["ports"] if p.get("name") == endpoint["port"]]
        labels = {"namespace": APP_NS, "service": name, "job": name, "endpoint": endpoint["port"]}
        static.append({"targets": [f"{name}.{APP_NS}.svc.cluster.local:{port}"], "labels": labels})
    return {
        "job_name": f"serviceMonitor/{APP_NS}/{service_monitor['metadata']['name']}/0",
        "honor_labels": bool(endpoint.get("honorLabels", False)),
        "metrics_path": endpoint.get("path", "/metrics"),
        "scrape_interval": endpoint["interval"],
        "scrape_timeout": endpoint["scrapeTimeout"],
        "static_configs": static,
    }


def rendered_monitoring(cluster: Cluster, values: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The chart's ServiceMonitor and PrometheusRule groups, rendered for this release's values."""
    rendered = cluster.run(
        str(HELM), "template", RELEASE, str(CHART), "-n", APP_NS, "-f", str(KIND_VALUES), "-f", str(values),
        "--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.prometheusRule.enabled=true",
        "--set", f"metrics.serviceMonitor.interval={INTERVAL}",
        "--set", "metrics.serviceMonitor.scrapeTimeout=4s",
    ).stdout  # fmt: skip
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    (service_monitor,) = [d for d in docs if d["kind"] == "ServiceMonitor"]
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    groups: list[dict[str, Any]] = rule["spec"]["groups"]
    return service_monitor, groups


def prometheus_manifest(config: dict[str, Any], groups: list[dict[str, Any]], image: str) -> str:
    """Prometheus in PROMETHEUS_NS (restricted Pod Security), reached from the host through a NodePort."""
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "prometheus", "namespace": PROMETHEUS_NS},
        "data": {"prometheus.yml": yaml.safe_dump(config), "rules.yaml": yaml.safe_dump({"groups": groups})},
    }
    restricted = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
    }
    return "\n---\n".join(
        [
            json.dumps(config_map),
            f"""
apiVersion: v1
kind: Service
metadata: {{name: prometheus, namespace: {PROMETHEUS_NS}}}
spec:
  type: NodePort
  selector: {{app: prometheus}}
  ports: [{{name: http, port: 9090, targetPort: 9090}}]
""",
            json.dumps(
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {"name": "prometheus", "namespace": PROMETHEUS_NS},
                    "spec": {
                        "replicas": 1,
                        "selector": {"matchLabels": {"app": "prometheus"}},
                        "template": {
                            "metadata": {"labels": {"app": "prometheus"}},
                            "spec": {
                                "automountServiceAccountToken": False,
                                "securityContext": {
                                    "runAsNonRoot": True,
                                    "runAsUser": 65534,
                                    "runAsGroup": 65534,
                                    "fsGroup": 65534,
                                    "seccompProfile": {"type": "RuntimeDefault"},
                                },
                                "containers": [
                                    {
                                        "name": "prometheus",
                                        "image": image,
                                        "imagePullPolicy": "Never",
                                        "args": [
                                            "--config.file=/etc/prometheus/prometheus.yml",
                                            "--storage.tsdb.path=/prometheus",
                                            "--storage.tsdb.retention.time=2h",
                                            "--web.listen-address=:9090",
                                        ],
                                        "ports": [{"name": "http", "containerPort": 9090}],
                                        "readinessProbe": {
                                            "httpGet": {"path": "/-/ready", "port": 9090},
                                            "periodSeconds": 2,
                                        },
                                        "resources": {
                                            "requests": {"cpu": "50m", "memory": "128Mi"},
                                            "limits": {"cpu": "500m", "memory": "512Mi"},
                                        },
                                        "securityContext": restricted,
                                        "volumeMounts": [
                                            {"name": "config", "mountPath": "/etc/prometheus"},
                                            {"name": "data", "mountPath": "/prometheus"},
                                        ],
                                    }
                                ],
                                "volumes": [
                                    {"name": "config", "configMap": {"name": "prometheus"}},
                                    {"name": "data", "emptyDir": {}},
                                ],
                            },
                        },
                    },
                }
            ),
        ]
    )


class Prometheus:
    """Prometheus's HTTP API, from the host (the node's NodePort)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._http = httpx.Client(base_url=url, timeout=15)

    def get(self, path: str, **params: Any) -> Any:
        answer = self._http.get(path, params=params)
        answer.raise_for_status()
        body = answer.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.get("/api/v1/query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result

    def firing(self, alert: str) -> list[dict[str, Any]]:
        return [
            a
            for a in self.get("/api/v1/alerts")["alerts"]
            if a["labels"].get("alertname") == alert and a["state"] == "firing"
        ]

    def reachable(self) -> bool:
        """Whether its API answers through the NodePort (kube-proxy programs a new NodePort a moment after
        the Service is made: until then the node refuses the connection)."""
        try:
            return self._http.get("/-/ready").status_code == HTTPStatus.OK
        except httpx.TransportError:
            time.sleep(0.5)
            return False

    def close(self) -> None:
        self._http.close()


@pytest.fixture(scope="module")
def monitored(
    cluster: Cluster,
    app_images: AppImages,
    bot_api: LinkBotApiServer,
    dynamodb: DynamoDBLocal,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Prometheus]:
    """The release in APP_NS, and a Prometheus in PROMETHEUS_NS scraping it with the chart's rules."""
    values = cluster_values("kind", app_images, bot_api)
    values["query"]["allowPrivateAddresses"] = True
    # One pod per component (see the module's docstring): a scrape of a Service is a scrape of its pod.
    for component in COMPONENTS:
        values[component].update({"replicaCount": 1, "autoscaling": {"enabled": False}})
    overrides: Path = tmp_path_factory.mktemp("monitoring") / "values.yaml"
    overrides.write_text(json.dumps(values))
    service_monitor, groups = rendered_monitoring(cluster, overrides)
    for group in groups:
        group["interval"] = INTERVAL
        for rule in group["rules"]:
            if rule.get("alert") == ALERT:
                rule["for"] = ALERT_FOR
    assert any(r.get("alert") == ALERT for g in groups for r in g["rules"]), groups
    secret = secrets.token_hex(16)
    with namespace(cluster, APP_NS) as ns, namespace(cluster, PROMETHEUS_NS):
        cluster.kubectl(
            "create", "secret", "generic", "mcstatbot-telegram", "-n", ns,
            f"--from-literal=telegram-bot-token={bot_api.token}", f"--from-literal=webhook-secret={secret}",
        )  # fmt: skip
        cluster.apply(link_service("dynamodb-local", cluster.host_ip, 8000, dynamodb.port), ns)
        started = time.monotonic()
        cluster.run(
            str(HELM), "install", RELEASE, str(CHART), "-n", ns, "-f", str(KIND_VALUES),
            "-f", str(overrides), "--wait", "--timeout", "5m",
            timeout=420,
        )  # fmt: skip
        print(f"release installed in {time.monotonic() - started:.0f} s")  # noqa: T201 - for the log
        assert bot_ready(cluster, ns)["state_store"] == "ok"
        services = selected_services(cluster, service_monitor)
        config = {
            "global": {"scrape_interval": INTERVAL, "evaluation_interval": INTERVAL},
            "rule_files": ["/etc/prometheus/rules.yaml"],
            "scrape_configs": [scrape_job(service_monitor, services)],
        }
        cluster.apply(prometheus_manifest(config, groups, prometheus_image()))
        cluster.kubectl(
            "rollout", "status", "deployment/prometheus", "-n", PROMETHEUS_NS, "--timeout=120s", timeout=140
        )
        service = cluster.kubectl_json("get", "service", "prometheus", "-n", PROMETHEUS_NS)
        prometheus = Prometheus(f"http://{cluster.node_ip}:{service['spec']['ports'][0]['nodePort']}")
        wait_until(prometheus.reachable, timeout=60, what="Prometheus through its NodePort")
        bot_api.webhook_host(KIND_INGRESS_HOST)
        bot_api.set_webhook(f"{cluster.ingress_url}/telegram/webhook", secret_token=secret)
        try:
            yield prometheus
        finally:
            bot_api.delete_webhook()
            bot_api.webhook_host(None)
            prometheus.close()


def test_prometheus_scrapes_bot_query_and_watcher_and_loads_every_rule(monitored: Prometheus) -> None:
    """Every target of the ServiceMonitor's job is up, each of the three services reports its build info
    (its own `service` label kept, as `honorLabels` says), and every rule group of the chart is loaded and
    evaluated without error."""
    prometheus = monitored

    def services() -> set[str]:
        found = prometheus.query(f'mcstatbot_build_info{{namespace="{APP_NS}"}}')
        return {s["metric"]["service"] for s in found}

    wait_until(
        lambda: services() == {"bot", "query", "watcher"}, timeout=60, what="the three services scraped"
    )
    targets = prometheus.get("/api/v1/targets", state="active")["activeTargets"]
    assert len(targets) == len(COMPONENTS), targets
    assert all(t["health"] == "up" for t in targets), targets
    assert {t["labels"]["service"] for t in targets} == {
        f"{RELEASE}-{c}" for c in ("bot", "query", "watcher")
    }
    assert all(t["labels"]["namespace"] == APP_NS for t in targets), targets

    def rule_health() -> list[tuple[str, str]]:
        groups = prometheus.get("/api/v1/rules")["groups"]
        return [(r["name"], r["health"]) for g in groups for r in g["rules"]]

    wait_until(
        lambda: all(health == "ok" for _, health in rule_health()) and rule_health(),
        timeout=30,
        what="every rule evaluated",
    )
    groups = {g["name"]: len(g["rules"]) for g in prometheus.get("/api/v1/rules")["groups"]}
    rules_file = yaml.safe_load((CHART / "files" / "prometheus-rules.yaml").read_text())
    assert groups == {g["name"]: len(g["rules"]) for g in rules_file}, groups


def replied_to(chat: int) -> Callable[[ApiCall], bool]:
    def accepted(call: ApiCall) -> bool:
        return call.chat_id == chat and call.ok

    return accepted


def wait_counted(prometheus: Prometheus, expr: str, at_least: float, what: str) -> None:
    def counted() -> bool:
        found = prometheus.query(expr)
        if found and float(found[0]["value"][1]) >= at_least:
            return True
        time.sleep(1)
        return False

    wait_until(counted, timeout=60, what=what)


def test_the_error_rate_alert_stays_quiet_then_fires_when_the_query_service_fails(
    cluster: Cluster, bot_api: LinkBotApiServer, java_on_link: tuple[JavaPeer, str], monitored: Prometheus
) -> None:
    """Traffic of every kind the dashboard shows (status commands, some at once so that they wait for one
    probe, a button, a reply the Bot API refuses with 429 and one it fails with 500), then the query
    service scaled to zero while updates keep coming: McstatbotQueryServiceErrorRate stays inactive while
    the service answers and becomes `firing` once the bot's calls to it fail."""
    prometheus = monitored
    _, address = java_on_link
    # Four at once from four chats about a server that accepts and never answers: the first probe takes
    # MC_TIMEOUT, so the other three wait for it (coalesced waits). The same for the Java peer: one probe,
    # the others wait for it or hit the cache.
    with (
        socket.create_server((LOOPBACK, 0), backlog=16) as silent,  # the kernel accepts; nothing reads
        forward_on_link(cluster, silent.getsockname()[1]) as silent_address,
    ):
        for chat in range(810_031, 810_035):
            bot_api.send_text(chat, f"/status {silent_address}")
        for chat in range(810_031, 810_035):
            bot_api.wait_for_call_sync("sendMessage", replied_to(chat), timeout=60)
    for chat in range(810_001, 810_005):
        bot_api.send_text(chat, f"/status {address}")
    for chat in range(810_001, 810_005):
        bot_api.wait_for_call_sync("sendMessage", replied_to(chat), timeout=60)
    user = TelegramUser(bot_api, chat_id=810_010, reply_timeout=60)
    reply = user.send(f"/status {address}")
    user.press(reply, "Players")
    # A reply the Bot API answers 429 (retried after 1 s), and one it answers 500 (the handling fails, the
    # webhook answers 500, the update is redelivered and then answered).
    bot_api.fail_next("sendMessage", 429, retry_after=1, predicate=lambda p: p.get("chat_id") == 810_020)
    bot_api.fail_next(
        "sendMessage", 500, "Internal Server Error", predicate=lambda p: p.get("chat_id") == 810_021
    )
    for chat in (810_020, 810_021):
        bot_api.send_text(chat, f"/status {address}")
        bot_api.wait_for_call_sync("sendMessage", replied_to(chat), timeout=60)
    wait_counted(
        prometheus,
        f'sum(mcstatbot_query_requests_total{{namespace="{APP_NS}", outcome="ok"}})',
        7,
        "the bot's calls to the query service scraped",
    )
    time.sleep(10)  # two evaluations with the calls in
    # Neither pending nor firing.
    assert prometheus.query(f'ALERTS{{alertname="{ALERT}", namespace="{APP_NS}"}}') == []

    query = f"deployment/{RELEASE}-query"
    cluster.kubectl("scale", query, "-n", APP_NS, "--replicas=0")
    selector = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=query"
    cluster.kubectl("wait", "--for=delete", "pod", "-l", selector, "-n", APP_NS, "--timeout=90s", timeout=120)
    failed_at = time.monotonic()
    try:
        chat = 811_000
        fired: list[dict[str, Any]] = []
        deadline = failed_at + 150
        while not fired and time.monotonic() < deadline:
            since = bot_api.last_seq
            bot_api.send_text(chat, f"/status {address}")
            # The bot still answers: a stored answer or "temporarily unavailable".
            bot_api.wait_for_call_sync("sendMessage", replied_to(chat), timeout=60, since=since)
            chat += 1
            time.sleep(1)
            fired = prometheus.firing(ALERT)
        assert fired, f"{ALERT} did not fire: {prometheus.get('/api/v1/alerts')}"
        print(  # noqa: T201 - a measurement for the log
            f"{ALERT} firing {time.monotonic() - failed_at:.0f} s after the query service went away,"
            f" after {chat - 811_000} updates: {fired[0]['labels']}"
        )
        assert fired[0]["labels"]["namespace"] == APP_NS
        assert fired[0]["labels"]["rollback"] == "true"
    finally:
        cluster.kubectl("scale", query, "-n", APP_NS, "--replicas=1")
        cluster.kubectl("rollout", "status", query, "-n", APP_NS, "--timeout=120s", timeout=140)


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expression) of every target of every panel of the dashboard, rows' panels included."""
    dashboard = json.loads(DASHBOARD.read_text())
    found: list[tuple[str, str]] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            found.extend(
                (panel.get("title", ""), t["expr"]) for t in panel.get("targets", []) if t.get("expr")
            )
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    return found


def test_every_dashboard_query_returns_data(monitored: Prometheus) -> None:
    """The dashboard's `namespace` variable (label_values of mcstatbot_build_info) lists the release's
    namespace, and with it filled in every panel query returns at least one series (after the traffic and
    the failure above, within the queries' 5 m and 1 h windows)."""
    prometheus = monitored
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert "label_values(mcstatbot_build_info, namespace)" in variables["namespace"]["definition"]
    wait_until(
        lambda: (
            APP_NS in prometheus.get("/api/v1/label/namespace/values", **{"match[]": "mcstatbot_build_info"})
        ),
        timeout=30,
        what="the namespace variable",
    )
    # The query service is back: its series are scraped again (an instant vector: the old pod's series went
    # stale when its target went down, so only a scrape of the new pod brings them back).
    wait_counted(
        prometheus,
        f'count(mcstatbot_build_info{{namespace="{APP_NS}", service="query"}})',
        1,
        "the query service scraped again",
    )
    queries = dashboard_queries()
    assert len(queries) > 20, queries  # the dashboard has that many
    empty: dict[str, str] = {}
    for title, expr in queries:
        filled = expr.replace("$namespace", APP_NS)
        if not prometheus.query(filled):
            empty[filled] = title
    print(f"{len(queries)} dashboard queries, without data: {empty}")  # noqa: T201 - for the log
    assert set(empty) == {e.replace("$namespace", APP_NS) for e in NO_DATA_HERE}, empty
