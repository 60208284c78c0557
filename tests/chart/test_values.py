"""What the rendered chart means: environment vs the apps' settings, probes vs the apps' routes, HPAs, IRSA,
polling, the Redis values check, NetworkPolicies, hardening, Ingress, secrets, the webhook hook, values docs.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mcstatbot_common
import opentelemetry.environment_variables as otel_api_env
import opentelemetry.sdk.environment_variables as otel_sdk_env
import pytest
import yaml
from mcstatbot_bot.settings import BotSettings
from mcstatbot_query.settings import QuerySettings
from mcstatbot_watcher.settings import WatcherSettings

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings

    from tests.chart.conftest import Kit, Render

TMP = "/tmp"  # noqa: S108 - the containers' /tmp mount point, not a file this test writes
BOT = "mcstatbot-bot"
QUERY = "mcstatbot-query"
WATCHER = "mcstatbot-watcher"
DEFAULT = "charts/mcstatbot/ci/default-values.yaml"
POLLING = "charts/mcstatbot/ci/polling-values.yaml"
EKS = "k8s/overlays/eks/app/values.yaml"
KIND = "k8s/overlays/kind/app/values.yaml"
# Variables read by libraries rather than the apps' settings classes: the OpenTelemetry SDK reads OTEL_*,
# the bot's DynamoDB store reads these AWS_* as the AWS SDKs do (state/aws.py; SPEC.md: "the standard AWS
# SDK variables").
BOTOCORE_ENV = {"AWS_REGION", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def env_names(settings: type[BaseSettings]) -> set[str]:
    return {name.upper() for name in settings.model_fields}


def required_env(settings: type[BaseSettings]) -> set[str]:
    return {name.upper() for name, field in settings.model_fields.items() if field.is_required()}


def container(render: Render, kind: str, name: str) -> dict[str, Any]:
    workload = render.get(kind, name)
    containers: list[dict[str, Any]] = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _otel_env() -> set[str]:
    """OTEL_* variables something in the apps reads: the OpenTelemetry SDK's own, and the ones
    mcstatbot_common's tracing setup reads. OTEL_METRICS_EXPORTER/OTEL_LOGS_EXPORTER are only read by the
    `opentelemetry-instrument` launcher, which the images do not use."""
    names = {
        value
        for module in (otel_api_env, otel_sdk_env)
        for key, value in vars(module).items()
        if key.startswith("OTEL_") and isinstance(value, str)
    }
    common = Path(mcstatbot_common.__file__).parent
    for source in common.rglob("*.py"):
        names |= set(re.findall(r"OTEL_[A-Z_]+", source.read_text()))
    return names - {"OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER"}


OTEL_ENV = _otel_env()


def library_env(name: str) -> bool:
    return name in OTEL_ENV


# --- environment vs settings -------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", ["default", "kind", "eks", "polling"])
def test_every_variable_the_chart_sets_is_read_by_the_app(
    kit: Kit, renders: dict[str, Render], scenario: str
) -> None:
    render = renders[scenario]
    for name, settings, aws in (
        (BOT, BotSettings, BOTOCORE_ENV),
        (QUERY, QuerySettings, set()),
        (WATCHER, WatcherSettings, BOTOCORE_ENV),
    ):
        env = kit.container_env(container(render, "Deployment", name), render)
        unknown = {k for k in env if k not in env_names(settings) and not library_env(k) and k not in aws}
        assert not unknown, f"{scenario}/{name} sets variables the app does not read: {sorted(unknown)}"
        missing = required_env(settings) - set(env)
        assert not missing, f"{scenario}/{name} leaves required variables unset: {sorted(missing)}"


def unread_variables(kit: Kit, render: Render, name: str) -> set[str]:
    settings, aws = (BotSettings, BOTOCORE_ENV) if name == BOT else (QuerySettings, set())
    env = kit.container_env(container(render, "Deployment", name), render)
    return {k for k in env if k not in env_names(settings) and not library_env(k) and k not in aws}


def test_an_unread_variable_is_caught(kit: Kit) -> None:
    render = kit.render(
        "extra",
        DEFAULT,
        sets={
            "bot.extraEnv[0].name": "QUERY_TIMEOUTS",
            "bot.extraEnv[0].value": "3",
            "query.extraEnv[0].name": "AWS_REGION",  # the AWS SDKs', but the query service has no AWS client
            "query.extraEnv[0].value": "eu-west-1",
        },
    )
    assert unread_variables(kit, render, BOT) == {"QUERY_TIMEOUTS"}
    assert unread_variables(kit, render, QUERY) == {"AWS_REGION"}


@pytest.mark.parametrize("scenario", ["default", "kind", "eks", "polling"])
def test_the_rendered_environment_is_accepted_by_the_settings_classes(
    kit: Kit, renders: dict[str, Render], scenario: str
) -> None:
    """The values the chart puts in ConfigMaps and env parse (types, enums, ranges) in the apps' settings."""
    render = renders[scenario]
    ports = {BOT: 8080, QUERY: 8081, WATCHER: 8082}
    settings_classes: tuple[tuple[str, type[BaseSettings]], ...] = (
        (BOT, BotSettings),
        (QUERY, QuerySettings),
        (WATCHER, WatcherSettings),
    )
    for name, settings in settings_classes:
        env = kit.container_env(container(render, "Deployment", name), render)
        fields = {
            key.lower(): ("from-a-secret" if value is None else value)
            for key, value in env.items()
            if key.lower() in settings.model_fields
        }
        if name in (QUERY, WATCHER) and fields.get("redis_url") == "from-a-secret":
            fields["redis_url"] = "rediss://elasticache.example:6379/0"
        parsed = settings.model_validate(fields)
        assert getattr(parsed, "port", None) == ports[name]
    bot = BotSettings.model_validate(
        {
            k.lower(): v or "x"
            for k, v in kit.container_env(container(render, "Deployment", BOT), render).items()
            if k.lower() in BotSettings.model_fields
        }
    )
    assert bot.bot_mode == ("polling" if scenario == "polling" else "webhook")
    assert bot.state_backend == "dynamodb"


def test_secrets_reach_the_bot_by_reference_only(kit: Kit, default: Render) -> None:
    env = container(default, "Deployment", BOT)["env"]
    by_name = {item["name"]: item for item in env}
    for name in ("TELEGRAM_BOT_TOKEN", "WEBHOOK_SECRET"):
        assert "secretKeyRef" in by_name[name]["valueFrom"], name
        assert "value" not in by_name[name]
    assert "123456:ci-token-not-real" not in json.dumps(default.get("ConfigMap", BOT))
    # The Deployment never registers the webhook itself (the hook Job does, once): no WEBHOOK_URL.
    assert "WEBHOOK_URL" not in kit.container_env(container(default, "Deployment", BOT), default)


def test_hook_jobs_and_local_jobs_set_only_variables_the_bot_reads(
    kit: Kit, overlays: dict[str, Render]
) -> None:
    eks = overlays["eks"]
    job = eks.get("Job", "mcstatbot-set-webhook")
    create_table = overlays["kind"].get("Job", "dynamodb-create-table")
    for workload, render in ((job, eks), (create_table, overlays["kind"])):
        spec = kit.pod_spec(workload)
        env = kit.container_env(spec["containers"][0], render)
        unknown = {
            k for k in env if k not in env_names(BotSettings) and not library_env(k) and k not in BOTOCORE_ENV
        }
        assert not unknown, f"{workload['metadata']['name']}: {sorted(unknown)}"
        assert required_env(BotSettings) <= set(env)
    assert kit.pod_spec(job)["containers"][0]["args"] == ["set-webhook"]
    assert kit.pod_spec(create_table)["containers"][0]["command"] == ["mcstatbot-bot", "create-table"]


# --- probes vs the apps -------------------------------------------------------------------------------


# Each app is imported in a process of its own (both register process-wide Prometheus metrics), built with
# its `create_app()` and asked, with Starlette's own route matching, which (method, path) pairs it routes.
ROUTES_SCRIPT = """
import json, sys
from starlette.routing import Match
if sys.argv[1] == "query":
    from mcstatbot_query.app import create_app
    from mcstatbot_query.settings import QuerySettings
    app = create_app(QuerySettings())
elif sys.argv[1] == "watcher":
    from mcstatbot_watcher.app import create_app
    from mcstatbot_watcher.settings import WatcherSettings
    app = create_app(WatcherSettings(telegram_bot_token="1:route-listing", state_backend="memory"))
else:
    from mcstatbot_bot.app import create_app
    from mcstatbot_bot.settings import BotSettings
    settings = BotSettings(telegram_bot_token="1:route-listing", bot_mode="webhook", state_backend="memory")
    app = create_app(settings)
routed = []
for method, path in json.loads(sys.argv[2]):
    scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}
    if any(route.matches(scope)[0] == Match.FULL for route in app.router.routes):
        routed.append([method, path])
print(json.dumps(routed))
"""
CANDIDATES = [
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/metrics"),
    ("POST", "/telegram/webhook"),
    ("GET", "/no-such-path"),
]


def app_routes(kit: Kit, service: str) -> set[tuple[str, str]]:
    """The CANDIDATES (method, path) pairs that `create_app()` of the service's `app` module routes."""
    result = kit.run([sys.executable, "-c", ROUTES_SCRIPT, service, json.dumps(CANDIDATES)])
    return {(method, path) for method, path in json.loads(result.stdout.strip().splitlines()[-1])}


@pytest.fixture(scope="module")
def query_routes(kit: Kit) -> set[tuple[str, str]]:
    return app_routes(kit, "query")


@pytest.fixture(scope="module")
def bot_routes(kit: Kit) -> set[tuple[str, str]]:
    return app_routes(kit, "bot")


@pytest.fixture(scope="module")
def watcher_routes(kit: Kit) -> set[tuple[str, str]]:
    return app_routes(kit, "watcher")


def test_probe_paths_and_ports_exist_in_the_apps(
    default: Render,
    query_routes: set[tuple[str, str]],
    bot_routes: set[tuple[str, str]],
    watcher_routes: set[tuple[str, str]],
) -> None:
    for name, routes, port in (
        (BOT, bot_routes, 8080),
        (QUERY, query_routes, 8081),
        (WATCHER, watcher_routes, 8082),
    ):
        spec = container(default, "Deployment", name)
        ports = {p["name"]: p["containerPort"] for p in spec["ports"]}
        assert ports == {"http": port}
        assert default.get("ConfigMap", name)["data"]["PORT"] == str(port)
        for probe, path in (
            ("startupProbe", "/health"),
            ("readinessProbe", "/ready"),
            ("livenessProbe", "/health"),
        ):
            assert spec[probe]["httpGet"] == {"path": path, "port": "http"}, (name, probe)
            assert ("GET", path) in routes, f"{name} has no GET {path}"
        assert ("GET", "/metrics") in routes
        service = default.get("Service", name)
        assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert ("POST", "/telegram/webhook") in bot_routes
    assert ("POST", "/telegram/webhook") not in query_routes | watcher_routes  # the matching discriminates
    assert ("GET", "/no-such-path") not in bot_routes | query_routes


def test_the_helm_test_pod_calls_every_ready_endpoint(default: Render) -> None:
    pod = default.get("Pod", "mcstatbot-helm-test")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    args = pod["spec"]["containers"][0]["args"]
    assert "http://mcstatbot-query:8081/ready" in args
    assert "http://mcstatbot-bot:8080/ready" in args
    assert "http://mcstatbot-watcher:8082/ready" in args


# --- scaling ------------------------------------------------------------------------------------------


def test_hpa_defaults_follow_the_seed(default: Render) -> None:
    for name, low, high, cpu in ((BOT, 1, 10, 70), (QUERY, 1, 5, 60), (WATCHER, 1, 5, 70)):
        hpa = default.get("HorizontalPodAutoscaler", name)
        assert hpa["apiVersion"] == "autoscaling/v2"
        spec = hpa["spec"]
        assert (spec["minReplicas"], spec["maxReplicas"]) == (low, high)
        assert spec["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": cpu}
        assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 60
        # The HPA owns the replica count.
        assert "replicas" not in default.get("Deployment", name)["spec"]


def test_without_autoscaling_the_deployment_sets_replicas(kit: Kit) -> None:
    render = kit.render(
        "fixed",
        DEFAULT,
        sets={
            "bot.autoscaling.enabled": "false",
            "query.autoscaling.enabled": "false",
            "watcher.autoscaling.enabled": "false",
        },
    )
    assert not render.of_kind("HorizontalPodAutoscaler")
    for name in (BOT, QUERY, WATCHER):
        assert render.get("Deployment", name)["spec"]["replicas"] == 2


def test_polling_runs_exactly_one_bot(renders: dict[str, Render]) -> None:
    polling = renders["polling"]
    bot = polling.get("Deployment", BOT)
    assert bot["spec"]["replicas"] == 1
    assert bot["spec"]["strategy"] == {"type": "Recreate"}  # never two pollers during a rollout
    assert not polling.has("HorizontalPodAutoscaler", BOT)
    assert polling.has("HorizontalPodAutoscaler", QUERY)
    assert not polling.of_kind("Ingress")
    assert not polling.of_kind("Job")
    assert polling.get("ConfigMap", BOT)["data"]["BOT_MODE"] == "polling"


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({"bot.autoscaling.enabled": "true"}, "set bot.autoscaling.enabled=false"),
        ({"bot.replicaCount": "2"}, "set bot.replicaCount=1 (got 2)"),
        ({"ingress.enabled": "true", "ingress.className": "nginx"}, "needs telegram.mode=webhook"),
    ],
)
def test_polling_refuses_more_than_one_poller(kit: Kit, sets: dict[str, str], message: str) -> None:
    result = kit.helm_template(POLLING, sets=sets, check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_rolling_updates_never_drop_capacity_and_the_bot_drains(kit: Kit, default: Render) -> None:
    for name in (BOT, QUERY, WATCHER):
        spec = default.get("Deployment", name)["spec"]
        assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        pod = spec["template"]["spec"]
        pre_stop = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
        assert pre_stop[0] == "sleep"
        assert int(pre_stop[1]) < pod["terminationGracePeriodSeconds"]
    bot = default.get("Deployment", BOT)["spec"]["template"]["spec"]
    env = kit.container_env(bot["containers"][0], default)
    drain = float(env["GRACEFUL_SHUTDOWN_SECONDS"] or "0")
    pre_stop_seconds = int(bot["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][1])
    assert drain > 0
    assert pre_stop_seconds + drain < bot["terminationGracePeriodSeconds"]


def test_pods_spread_across_zones_and_nodes(default: Render) -> None:
    for name in (BOT, QUERY, WATCHER):
        pod = default.get("Deployment", name)["spec"]["template"]
        keys = {c["topologyKey"] for c in pod["spec"]["topologySpreadConstraints"]}
        assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
        for constraint in pod["spec"]["topologySpreadConstraints"]:
            assert selects(constraint["labelSelector"], pod["metadata"]["labels"])


def test_pdbs_cover_bot_query_and_watcher(default: Render) -> None:
    for name in (BOT, QUERY, WATCHER):
        pdb = default.get("PodDisruptionBudget", name)
        labels = default.get("Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert selects(pdb["spec"]["selector"], labels)
        assert pdb["spec"]["maxUnavailable"] == 1


# --- hardening and config roll-out ---------------------------------------------------------------------


@pytest.mark.parametrize("scenario", ["default", "kind", "eks", "polling"])
def test_every_pod_is_hardened(kit: Kit, renders: dict[str, Render], scenario: str) -> None:
    render = renders[scenario]
    workloads = [d for d in render.docs if d["kind"] in {"Deployment", "Job", "Pod"}]
    assert len(workloads) >= 4
    for workload in workloads:
        spec = kit.pod_spec(workload)
        pod_ctx = spec.get("securityContext", {})
        assert pod_ctx.get("runAsNonRoot") is True, workload["metadata"]["name"]
        assert pod_ctx.get("seccompProfile") == {"type": "RuntimeDefault"}
        assert spec.get("automountServiceAccountToken") is False
        for item in spec["containers"]:
            ctx = item["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["capabilities"] == {"drop": ["ALL"]}
            assert "limits" in item["resources"]
            assert "requests" in item["resources"]
            mounts = {m["mountPath"]: m["name"] for m in item.get("volumeMounts", [])}
            assert TMP in mounts, workload["metadata"]["name"]
            volume = next(v for v in spec["volumes"] if v["name"] == mounts[TMP])
            assert "emptyDir" in volume


def test_our_images_run_as_the_dockerfiles_uid(default: Render) -> None:
    for name in (BOT, QUERY, WATCHER):
        pod = default.get("Deployment", name)["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsUser"] == 10001


def test_config_changes_roll_only_the_pods_they_concern(kit: Kit, default: Render) -> None:
    changed = kit.render("changed", DEFAULT, sets={"query.mcTimeout": "7"})

    def checksum(render: Render, name: str) -> str:
        annotations: dict[str, str] = render.get("Deployment", name)["spec"]["template"]["metadata"][
            "annotations"
        ]
        return annotations["checksum/config"]

    assert checksum(changed, QUERY) != checksum(default, QUERY)
    assert checksum(changed, BOT) == checksum(default, BOT)
    assert checksum(changed, WATCHER) == checksum(default, WATCHER)
    assert changed.get("ConfigMap", QUERY)["data"]["MC_TIMEOUT"] == "7"
    assert "checksum/secret" in default.get("Deployment", BOT)["spec"]["template"]["metadata"]["annotations"]


# --- IRSA and ServiceAccounts -------------------------------------------------------------------------


def test_irsa_annotation_only_on_the_bot(renders: dict[str, Render]) -> None:
    eks = renders["eks"]
    bot_sa = eks.get("ServiceAccount", "mcstatbot-bot")
    assert bot_sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith(":role/mcstatbot-bot")
    assert "annotations" not in eks.get("ServiceAccount", "mcstatbot-query")["metadata"]
    assert eks.get("Deployment", BOT)["spec"]["template"]["spec"]["serviceAccountName"] == "mcstatbot-bot"
    assert eks.get("Deployment", QUERY)["spec"]["template"]["spec"]["serviceAccountName"] == "mcstatbot-query"
    collector_sa = eks.get("ServiceAccount", "mcstatbot-otel-collector")
    assert (
        collector_sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
        != (bot_sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"])
    )
    # The query service gets no AWS settings at all.
    assert not any(k.startswith("AWS_") for k in eks.get("ConfigMap", QUERY)["data"])


def test_serviceaccount_annotations_never_reach_the_query_service(kit: Kit) -> None:
    render = kit.render(
        "irsa",
        DEFAULT,
        sets={"serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn": "arn:aws:iam::1:role/x"},
    )
    annotated = [
        sa["metadata"]["name"] for sa in render.of_kind("ServiceAccount") if sa["metadata"].get("annotations")
    ]
    assert annotated == ["mcstatbot-bot"]


# --- Redis ---------------------------------------------------------------------------------------------


def test_in_cluster_redis_is_wired_to_the_query_service_and_the_bot(default: Render) -> None:
    assert default.get("ConfigMap", QUERY)["data"]["REDIS_URL"] == "redis://mcstatbot-redis:6379/0"
    # the bot's shared Telegram send budget
    assert default.get("ConfigMap", BOT)["data"]["REDIS_URL"] == "redis://mcstatbot-redis:6379/0"
    # the watcher replicas' check slots (and the send budget they share with the bot)
    assert default.get("ConfigMap", WATCHER)["data"]["REDIS_URL"] == "redis://mcstatbot-redis:6379/0"
    service = default.get("Service", "mcstatbot-redis")
    assert service["spec"]["ports"][0]["port"] == 6379
    redis = default.get("Deployment", "mcstatbot-redis")
    # The official image, pinned to a patch release (not a moving `7-alpine`).
    assert redis["spec"]["template"]["spec"]["containers"][0]["image"] == "redis:7.4.2-alpine"
    assert selects(
        {"matchLabels": service["spec"]["selector"]}, redis["spec"]["template"]["metadata"]["labels"]
    )


def test_external_redis_comes_from_a_secret(kit: Kit, renders: dict[str, Render]) -> None:
    eks = renders["eks"]
    assert not eks.has("Deployment", "mcstatbot-redis")
    for component in (QUERY, BOT, WATCHER):
        assert "REDIS_URL" not in eks.get("ConfigMap", component)["data"]
        env = {item["name"]: item for item in container(eks, "Deployment", component)["env"]}
        ref = env["REDIS_URL"]["valueFrom"]["secretKeyRef"]
        secret = eks.get("Secret", ref["name"])
        assert secret["data"][ref["key"]]  # base64 of the rediss:// URL
        annotations = eks.get("Deployment", component)["spec"]["template"]["metadata"]["annotations"]
        assert "checksum/redis-secret" in annotations  # a changed URL rolls the pods
    existing = kit.render(
        "existing", DEFAULT, sets={"redis.enabled": "false", "externalRedis.existingSecret": "elasticache"}
    )
    for component in (QUERY, BOT, WATCHER):
        env = {item["name"]: item for item in container(existing, "Deployment", component)["env"]}
        assert env["REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "elasticache", "key": "redis-url"}


def test_external_redis_cluster_mode_reaches_the_query_service_and_the_bot(
    kit: Kit, renders: dict[str, Render]
) -> None:
    """`externalRedis.cluster` is REDIS_CLUSTER (auto by default) of every Redis user (the query service's
    cache, the bot's send budget); the in-chart Redis is one node."""
    for component in (QUERY, BOT):
        config = kit.render("default", DEFAULT).get("ConfigMap", component)["data"]
        assert config["REDIS_CLUSTER"] == "false"
        assert renders["eks"].get("ConfigMap", component)["data"]["REDIS_CLUSTER"] == "auto"
    external = {"redis.enabled": "false", "externalRedis.url": "rediss://clustercfg.cache:6379"}
    for given, expected in (("true", "true"), ("false", "false"), ("auto", "auto")):
        render = kit.render(f"cluster-{given}", DEFAULT, sets={**external, "externalRedis.cluster": given})
        for component in (QUERY, BOT):
            assert render.get("ConfigMap", component)["data"]["REDIS_CLUSTER"] == expected
    result = kit.helm_template(DEFAULT, sets={**external, "externalRedis.cluster": "maybe"}, check=False)
    assert result.returncode != 0
    assert "cluster" in result.stderr


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({"externalRedis.url": "rediss://cache:6379"}, "not both"),
        ({"redis.enabled": "false"}, "neither is set"),
        ({"redis.enabled": "false", "externalRedis.url": "http://cache:6379"}, "externalRedis.url"),
        (
            {
                "redis.enabled": "false",
                "externalRedis.url": "rediss://c:6379",
                "externalRedis.existingSecret": "s",
            },
            "externalRedis.url or externalRedis.existingSecret, not both",
        ),
    ],
)
def test_the_redis_values_check(kit: Kit, sets: dict[str, str], message: str) -> None:
    result = kit.helm_template(DEFAULT, sets=sets, check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


# --- NetworkPolicies -------------------------------------------------------------------------------------


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions)."""
    if not all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not ok:
            return False
    return bool(selector.get("matchLabels") or selector.get("matchExpressions"))


def pod_labels(kit: Kit, render: Render) -> dict[str, dict[str, str]]:
    """Workload name -> the labels of its pods (Deployments, Jobs and bare Pods)."""
    result: dict[str, dict[str, str]] = {}
    for doc in render.docs:
        if doc["kind"] in {"Deployment", "Job"}:
            result[doc["metadata"]["name"]] = doc["spec"]["template"]["metadata"]["labels"]
        elif doc["kind"] == "Pod":
            result[doc["metadata"]["name"]] = doc["metadata"]["labels"]
    return result


def peers_allowed(rules: list[dict[str, Any]], pods: dict[str, dict[str, str]]) -> set[str]:
    """Workloads (in the same namespace) a list of ingress `from` / egress `to` rules lets through."""
    allowed: set[str] = set()
    for rule in rules:
        peers = rule.get("from", rule.get("to"))
        if peers is None:
            return {"*"}
        for peer in peers:
            if "podSelector" in peer and "namespaceSelector" not in peer:
                allowed |= {name for name, labels in pods.items() if selects(peer["podSelector"], labels)}
    return allowed


def test_network_policies_select_the_right_pods(kit: Kit, renders: dict[str, Render]) -> None:
    render = renders["default"]
    pods = pod_labels(kit, render)
    policies = {p["metadata"]["name"]: p["spec"] for p in render.of_kind("NetworkPolicy")}
    selected = {
        name: {pod for pod, labels in pods.items() if selects(spec["podSelector"], labels)}
        for name, spec in policies.items()
    }
    assert selected == {
        "mcstatbot-bot": {BOT},
        "mcstatbot-query": {QUERY},
        "mcstatbot-watcher": {WATCHER},
        "mcstatbot-redis": {"mcstatbot-redis"},
        "mcstatbot-otel-collector": {"mcstatbot-otel-collector"},
        "mcstatbot-set-webhook": set(),  # the hook Job exists only with a webhook URL (see the eks test)
        "mcstatbot-helm-test": {"mcstatbot-helm-test"},
    }
    for spec in policies.values():
        assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"]
    # Query only from the bot and the watcher (and the helm test Pod); Redis only from query, the bot and the
    # watcher (the send budget, the watcher's check slots).
    query_sources = peers_allowed(policies["mcstatbot-query"]["ingress"], pods)
    assert query_sources == {BOT, WATCHER, "mcstatbot-helm-test"}
    assert peers_allowed(policies["mcstatbot-redis"]["ingress"], pods) == {QUERY, BOT, WATCHER}
    assert policies["mcstatbot-redis"]["egress"] == []
    assert peers_allowed(policies["mcstatbot-otel-collector"]["ingress"], pods) == {BOT, QUERY, WATCHER}
    # Egress: the bot reaches query, Redis and the collector; query reaches Redis and the collector.
    assert {QUERY, "mcstatbot-redis", "mcstatbot-otel-collector"} <= peers_allowed(
        [r for r in policies["mcstatbot-bot"]["egress"] if "to" in r], pods
    )
    assert {"mcstatbot-redis", "mcstatbot-otel-collector"} <= peers_allowed(
        [r for r in policies["mcstatbot-query"]["egress"] if "to" in r], pods
    )
    assert BOT not in peers_allowed([r for r in policies["mcstatbot-query"]["egress"] if "to" in r], pods)


def egress_ports(spec: dict[str, Any]) -> set[tuple[str, int | None]]:
    return {
        (p.get("protocol", "TCP"), p.get("port")) for rule in spec["egress"] for p in rule.get("ports", [])
    }


def internet_except(spec: dict[str, Any]) -> set[str]:
    """The addresses cut out of the 0.0.0.0/0 egress rules of a NetworkPolicy."""
    return {
        cidr
        for rule in spec["egress"]
        for peer in rule.get("to", [])
        if peer.get("ipBlock", {}).get("cidr") == "0.0.0.0/0"
        for cidr in peer["ipBlock"].get("except", [])
    }


def test_egress_is_limited_to_what_each_service_needs(kit: Kit, default: Render) -> None:
    bot = default.get("NetworkPolicy", BOT)["spec"]
    assert egress_ports(bot) == {
        ("UDP", 53),
        ("TCP", 53),
        ("TCP", 443),
        ("TCP", 8081),
        ("TCP", 6379),
        ("TCP", 4318),
    }
    query = default.get("NetworkPolicy", QUERY)["spec"]
    # Minecraft on any port by default (custom ports are common), plus DNS, Redis and the collector.
    assert egress_ports(query) == {
        ("UDP", 53),
        ("TCP", 53),
        ("TCP", None),
        ("UDP", None),
        ("TCP", 6379),
        ("TCP", 4318),
    }
    for spec in (bot, query):
        for rule in spec["egress"]:
            for peer in rule.get("to", []):
                if "ipBlock" in peer and peer["ipBlock"]["cidr"] == "0.0.0.0/0":
                    assert "169.254.169.254/32" in peer["ipBlock"]["except"]
    # The query service may not probe private ranges (SSRF), unless it is told to allow private addresses;
    # the bot's 443 rule keeps them open (VPC endpoints for DynamoDB and STS have private addresses).
    assert "10.0.0.0/8" in internet_except(query)
    assert "10.0.0.0/8" not in internet_except(bot)
    private = kit.render("private", DEFAULT, sets={"query.allowPrivateAddresses": "true"})
    assert "10.0.0.0/8" not in internet_except(private.get("NetworkPolicy", QUERY)["spec"])
    assert "169.254.169.254/32" in internet_except(private.get("NetworkPolicy", QUERY)["spec"])
    strict = kit.render("strict", DEFAULT, sets={"networkPolicy.minecraft.allowAnyPort": "false"})
    assert {("TCP", 25565), ("UDP", 19132)} <= egress_ports(strict.get("NetworkPolicy", QUERY)["spec"])
    assert ("TCP", None) not in egress_ports(strict.get("NetworkPolicy", QUERY)["spec"])


def test_kind_network_policies_let_the_bot_and_the_watcher_reach_dynamodb_local(
    kit: Kit, overlays: dict[str, Render]
) -> None:
    kind = overlays["kind"]
    pods = pod_labels(kit, kind)
    bot_egress = [r for r in kind.get("NetworkPolicy", BOT)["spec"]["egress"] if "to" in r]
    assert "dynamodb-local" in peers_allowed(bot_egress, pods)
    dynamo_ingress = kind.get("NetworkPolicy", "dynamodb-local")["spec"]["ingress"]
    assert peers_allowed(dynamo_ingress, pods) == {BOT, WATCHER, "dynamodb-create-table"}
    watcher_egress = [r for r in kind.get("NetworkPolicy", WATCHER)["spec"]["egress"] if "to" in r]
    assert "dynamodb-local" in peers_allowed(watcher_egress, pods)


# --- Ingress, secrets, webhook registration -----------------------------------------------------


@pytest.mark.parametrize(
    ("class_name", "annotation"),
    [
        ("alb", "alb.ingress.kubernetes.io/inbound-cidrs"),
        ("nginx", "nginx.ingress.kubernetes.io/whitelist-source-range"),
    ],
)
def test_ingress_exposes_only_the_webhook_to_telegram_ranges(
    kit: Kit, class_name: str, annotation: str
) -> None:
    render = kit.render(
        class_name,
        DEFAULT,
        sets={
            "ingress.enabled": "true",
            "ingress.className": class_name,
            "ingress.hosts[0].host": "bot.example.com",
        },
    )
    ingress = render.get("Ingress", BOT)
    assert ingress["metadata"]["annotations"][annotation] == "149.154.160.0/20,91.108.4.0/22"
    paths = [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert paths == [
        {
            "path": "/telegram/webhook",
            "pathType": "Exact",
            "backend": {"service": {"name": BOT, "port": {"name": "http"}}},
        }
    ]
    if class_name == "alb":
        condition = json.loads(
            ingress["metadata"]["annotations"][f"alb.ingress.kubernetes.io/conditions.{BOT}"]
        )
        assert condition == [
            {"field": "http-request-method", "httpRequestMethodConfig": {"Values": ["POST"]}}
        ]
    job = render.get("Job", "mcstatbot-set-webhook")
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["WEBHOOK_URL"] == "https://bot.example.com/telegram/webhook"


def test_ingress_source_ranges(kit: Kit) -> None:
    base = {"ingress.enabled": "true", "ingress.hosts[0].host": "bot.example.com"}
    open_to_all = kit.render(
        "open",
        DEFAULT,
        sets={**base, "ingress.className": "nginx"},
        json_sets={"ingress.allowedSourceRanges": "[]"},
    )
    assert "nginx.ingress.kubernetes.io/whitelist-source-range" not in open_to_all.get("Ingress", BOT)[
        "metadata"
    ].get("annotations", {})
    unknown = kit.helm_template(DEFAULT, sets={**base, "ingress.className": "haproxy"}, check=False)
    assert unknown.returncode != 0
    assert "set ingress.sourceRangeAnnotation" in unknown.stderr
    custom = kit.render(
        "custom",
        DEFAULT,
        sets={**base, "ingress.className": "haproxy", "ingress.sourceRangeAnnotation": "x/ranges"},
    )
    assert (
        custom.get("Ingress", BOT)["metadata"]["annotations"]["x/ranges"] == "149.154.160.0/20,91.108.4.0/22"
    )


def test_webhook_is_registered_once_by_a_hook_job(overlays: dict[str, Render]) -> None:
    job = overlays["eks"].get("Job", "mcstatbot-set-webhook")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "post-install,post-upgrade"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["WEBHOOK_URL"]["value"] == "https://mcstatbot.example.com/telegram/webhook"
    assert env["WEBHOOK_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == "mcstatbot-telegram"
    assert not overlays["kind"].of_kind("Job") or all(
        j["metadata"]["name"] != "mcstatbot-set-webhook" for j in overlays["kind"].of_kind("Job")
    )


def test_telegram_secret_made_or_taken(kit: Kit, default: Render, renders: dict[str, Render]) -> None:
    secret = default.get("Secret", "mcstatbot-telegram")
    assert set(secret["data"]) == {"telegram-bot-token", "webhook-secret"}
    assert len(secret["data"]["webhook-secret"]) >= 48  # generated when not given
    assert not renders["eks"].has("Secret", "mcstatbot-telegram")  # existingSecret
    result = kit.helm_template(DEFAULT, sets={"telegram.token": ""}, check=False)
    assert result.returncode != 0
    assert "set telegram.token" in result.stderr


# --- values: schema, SPEC keys, documentation, NOTES ------------------------------------------------


def test_schema_rejects_unknown_keys_and_bad_values(kit: Kit) -> None:
    for sets, hint in (
        ({"bot.replicas": "3"}, "replicas"),
        ({"telegram.mode": "carrier-pigeon"}, "mode"),
        ({"query.autoscaling.targetCPUUtilizationPercentage": "170"}, "targetCPUUtilizationPercentage"),
        ({"externalRedis.url": "memcached://x"}, "url"),
        ({"ingress.allowedSourceRanges[0]": "everyone"}, "allowedSourceRanges"),
    ):
        result = kit.helm_template(DEFAULT, sets=sets, check=False)
        assert result.returncode != 0, sets
        assert "schema" in result.stderr.lower(), result.stderr
        assert hint in result.stderr, result.stderr


SPEC_KEYS = [
    *[
        f"{c}.{k}"
        for c in ("bot", "query")
        for k in (
            "image.repository",
            "image.tag",
            "image.pullPolicy",
            "replicaCount",
            "resources",
            "autoscaling.enabled",
            "autoscaling.minReplicas",
            "autoscaling.maxReplicas",
            "autoscaling.targetCPUUtilizationPercentage",
            "podAnnotations",
            "nodeSelector",
            "tolerations",
            "affinity",
        )
    ],
    "telegram.token",
    "telegram.existingSecret",
    "telegram.webhookSecret",
    "telegram.mode",
    "telegram.webhookUrl",
    "ingress.enabled",
    "ingress.className",
    "ingress.annotations",
    "ingress.hosts",
    "ingress.tls",
    "serviceAccount.create",
    "serviceAccount.name",
    "serviceAccount.annotations",
    "dynamodb.table",
    "dynamodb.region",
    "dynamodb.endpoint",
    "redis.enabled",
    "externalRedis.url",
    "externalRedis.existingSecret",
    "externalRedis.cluster",
    "otel",
    "metrics.serviceMonitor.enabled",
    "networkPolicy.enabled",
    "pdb",
]


def values_yaml(kit: Kit) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((kit.chart / "values.yaml").read_text())
    return loaded


def test_every_spec_key_exists(kit: Kit) -> None:
    values = values_yaml(kit)
    for key in SPEC_KEYS:
        node: Any = values
        for part in key.split("."):
            assert isinstance(node, dict), key
            assert part in node, f"values.yaml lacks {key}"
            node = node[part]
    assert values["bot"]["autoscaling"]["maxReplicas"] == 10
    assert values["query"]["autoscaling"]["maxReplicas"] == 5


def leaf_paths(node: Any, prefix: str = "") -> list[str]:
    if isinstance(node, dict) and node:
        return [p for k, v in node.items() for p in leaf_paths(v, f"{prefix}.{k}" if prefix else k)]
    return [prefix]


def schema_node(schema: dict[str, Any], path: str) -> dict[str, Any] | None:
    node: dict[str, Any] | None = schema
    for part in path.split("."):
        if node is None:
            return None
        properties = node.get("properties", {})
        if part in properties:
            node = properties[part]
        elif node.get("additionalProperties", True) is not False:
            return node  # a free-form map (labels, resources, securityContext): the map itself is described
        else:
            return None
    return node


def test_schema_describes_every_value(kit: Kit) -> None:
    schema = json.loads((kit.chart / "values.schema.json").read_text())
    values = values_yaml(kit)
    missing = [path for path in leaf_paths(values) if schema_node(schema, path) is None]
    assert not missing, missing

    # and every object in the schema with fixed properties refuses unknown keys
    def closed(node: dict[str, Any], where: str) -> list[str]:
        open_: list[str] = []
        if node.get("properties"):
            if node.get("additionalProperties", True) is not False:
                open_.append(where)
            for key, child in node["properties"].items():
                open_ += closed(child, f"{where}.{key}")
        return open_

    assert closed(schema, "values") == []


def test_every_value_is_documented(kit: Kit) -> None:
    """Each key in values.yaml has a comment right above it; inside a free-form block (resources, labels,
    securityContext: objects the schema leaves open) the block's own comment covers its contents."""
    schema = json.loads((kit.chart / "values.schema.json").read_text())
    lines = (kit.chart / "values.yaml").read_text().splitlines()
    undocumented: list[str] = []
    stack: list[tuple[int, str, bool]] = []  # (indent, key, documented) of the enclosing keys
    for index, line in enumerate(lines):
        match = re.match(r"^(\s*)([A-Za-z_][A-Za-z0-9_]*):", line)
        if match is None:
            continue
        indent, key = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        commented = index > 0 and lines[index - 1].strip().startswith("#")
        inherited = False
        for depth, (_, _, documented) in enumerate(stack):
            ancestor = ".".join(k for _, k, _ in stack[: depth + 1])
            node = schema_node(schema, ancestor) or {}
            free_form = ancestor.endswith("resources") or node.get("additionalProperties", True) is not False
            inherited = inherited or (documented and free_form)
        is_block = line.rstrip().endswith(":")
        if not (commented or inherited or is_block):
            undocumented.append(".".join([*(k for _, k, _ in stack), key]))
        stack.append((indent, key, commented or inherited))
    assert not undocumented, undocumented


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (DEFAULT, ["Mode: webhook", "no public URL is set", "in-cluster Redis", "helm test mcstatbot"]),
        (POLLING, ["Mode: polling", "Polling: one bot replica"]),
        (EKS, ["Webhook: https://mcstatbot.example.com/telegram/webhook", "awsxray", "external Redis"]),
    ],
)
def test_notes_render(kit: Kit, tmp_path: Path, values: str, expected: list[str]) -> None:
    """NOTES.txt, rendered through a chart copy that wraps it in a ConfigMap (helm template skips NOTES)."""
    chart = tmp_path / "mcstatbot"
    shutil.copytree(kit.chart, chart)
    shutil.copy(chart / "templates" / "NOTES.txt", chart / "notes.txt")
    (chart / "templates" / "notes-render.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\n"
        'data:\n  notes: {{ tpl (.Files.Get "notes.txt") . | quote }}\n'
    )
    result = kit.run(
        [
            kit.tool("helm"),
            "template",
            "mcstatbot",
            str(chart),
            "-n",
            "mcstatbot",
            "-f",
            str(kit.root / values),
            "--show-only",
            "templates/notes-render.yaml",
        ]
    )
    notes = yaml.safe_load(result.stdout)["data"]["notes"]
    for text in expected:
        assert text in notes, notes
