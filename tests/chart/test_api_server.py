"""What a kube-apiserver refuses although schema validation lets it through, over many values sets; the
chart's own refusals for such values; and the GitOps property: the same values render the same bytes.

kubernetes-validate checks types and field names (test_render.py); it knows nothing of the API server's own
validation: an Ingress with neither `rules` nor a `defaultBackend`, names and label values over 63 characters,
an HPA whose minimum is above its maximum, requests above limits, a selector that misses its pod template.
`api_server_problems` checks those rules (a subset of what k8s.io/kubernetes/pkg/apis/*/validation does) on
every render here, and also reports every `null` the templates leave (an empty list rendered as nothing).
"""

from __future__ import annotations

import base64
import re
import shutil
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:
    from pathlib import Path

    from tests.chart.conftest import Kit, Render

DEFAULT = "charts/mcstatbot/ci/default-values.yaml"
BOT = "mcstatbot-bot"
QUERY = "mcstatbot-query"
DIGEST = "sha256:" + "ab" * 32
LONG_NAME = "a-very-long-release-name-that-an-operator-might-well-choose-for-it"
MIDDLEWARES_KEY = "ingress.annotations.traefik\\.ingress\\.kubernetes\\.io/router\\.middlewares"
TELEGRAM_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")  # what Telegram accepts as `secret_token`

# Values sets beyond the scenarios of conftest (default, kind, eks, polling): name -> (--set, --set-json).
VALUE_SETS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    # issue 18: the usual ALB setup, the load balancer's DNS name is the address.
    "alb-without-hosts": ({"ingress.enabled": "true", "ingress.className": "alb"}, {}),
    "nginx-hosts-tls": (
        {"ingress.enabled": "true", "ingress.className": "nginx"},
        {
            "ingress.hosts": '[{"host": "a.example.com"}, {"host": "b.example.com"}]',
            "ingress.tls": '[{"secretName": "bot-tls", "hosts": ["a.example.com", "b.example.com"]}]',
        },
    ),
    "traefik": ({"ingress.enabled": "true", "ingress.className": "traefik"}, {}),
    "traefik-open": (
        {
            "ingress.enabled": "true",
            "ingress.className": "traefik",
            "ingress.hosts[0].host": "bot.example.com",
        },
        {"ingress.allowedSourceRanges": "[]"},
    ),
    "fixed-replicas-no-pdb": (
        {"bot.autoscaling.enabled": "false", "query.autoscaling.enabled": "false", "pdb.enabled": "false"},
        {},
    ),
    "no-policies-no-spread-no-accounts": (
        {
            "networkPolicy.enabled": "false",
            "topologySpread.enabled": "false",
            "serviceAccount.create": "false",
        },
        {},
    ),
    "empty-lists": (
        {},
        {
            "networkPolicy.blockedCidrs": "[]",
            "networkPolicy.botIngressFrom": "[]",
            "networkPolicy.metricsFrom": "[]",
            "networkPolicy.minecraft.udpPorts": "[]",
            "imagePullSecrets": "[]",
            "bot.extraEnv": "[]",
            "bot.tolerations": "[]",
            "ingress.tls": "[]",
            "ingress.hosts": "[]",
        },
    ),
    "strict-minecraft-ports": (
        {"networkPolicy.minecraft.allowAnyPort": "false"},
        {"networkPolicy.minecraft.tcpPorts": "[25565, 25566]", "networkPolicy.minecraft.udpPorts": "[]"},
    ),
    "external-collector": ({"otel.endpoint": "http://adot-collector.observability:4318"}, {}),
    "tracing-off": ({"otel.enabled": "false"}, {}),
    "existing-secrets": (
        {
            "telegram.existingSecret": "telegram",
            "redis.enabled": "false",
            "externalRedis.existingSecret": "elasticache",
        },
        {},
    ),
    "registry-and-digests": (
        {
            "global.imageRegistry": "registry.example.com:5000",
            "global.imagePullPolicy": "Always",
            "bot.image.digest": DIGEST,
            "redis.image.digest": DIGEST,
            "tests.image.repository": "tools/python",
            "tests.image.tag": "3.12",
        },
        {},
    ),
    "long-release-name": (
        {"fullnameOverride": LONG_NAME, "ingress.enabled": "true", "ingress.className": "nginx"},
        {},
    ),
    "monitoring": (
        {
            "metrics.serviceMonitor.enabled": "true",
            "metrics.prometheusRule.enabled": "true",
            "metrics.grafanaDashboard.enabled": "true",
        },
        {},
    ),
}

# --- the API server's rules -----------------------------------------------------------------------------

DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")  # RFC 1123 label
DNS_1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")  # Service names
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
PORT_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")
# Kinds whose names are DNS labels (at most 63 characters) rather than subdomains.
LABEL_NAMED = {"Service": DNS_1035_LABEL, "Namespace": DNS_LABEL, "Job": DNS_LABEL}
BINARY_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
DECIMAL_SUFFIXES = {"m": 1e-3, "": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def quantity(value: str | float) -> float:
    """A Kubernetes resource quantity ("100m", "192Mi", "1", "0.5") as a number."""
    text = str(value)
    for suffix, factor in BINARY_SUFFIXES.items():
        if text.endswith(suffix):
            return float(text.removesuffix(suffix)) * factor
    number = re.fullmatch(r"([0-9.]+)([mkMGT]?)", text)
    assert number is not None, f"not a quantity: {text!r}"
    return float(number.group(1)) * DECIMAL_SUFFIXES[number.group(2)]


def nulls(node: Any, path: str) -> list[str]:
    if node is None:
        return [path]
    if isinstance(node, dict):
        return [p for key, child in node.items() for p in nulls(child, f"{path}.{key}")]
    if isinstance(node, list):
        return [p for index, child in enumerate(node) for p in nulls(child, f"{path}[{index}]")]
    return []


def key_problems(key: str, what: str) -> list[str]:
    prefix, _, name = key.rpartition("/")
    problems = []
    if prefix and (len(prefix) > 253 or not DNS_SUBDOMAIN.fullmatch(prefix)):
        problems.append(f"{what} key {key!r}: the prefix is not a DNS subdomain")
    if len(name) > 63 or not QUALIFIED_NAME.fullmatch(name):
        problems.append(f"{what} key {key!r}: the name part is over 63 characters or not a qualified name")
    return problems


def metadata_problems(doc: dict[str, Any]) -> list[str]:
    meta = doc["metadata"]
    name = meta.get("name", "")
    problems = []
    pattern = LABEL_NAMED.get(doc["kind"])
    if pattern is not None and (len(name) > 63 or not pattern.fullmatch(name)):
        problems.append(f"name {name!r} is not a DNS label of at most 63 characters")
    if pattern is None and (len(name) > 253 or not DNS_SUBDOMAIN.fullmatch(name)):
        problems.append(f"name {name!r} is not a DNS subdomain")
    for where in (meta, doc.get("spec", {}).get("template", {}).get("metadata", {})):
        for key, value in (where.get("labels") or {}).items():
            problems += key_problems(key, "label")
            if len(str(value)) > 63 or not LABEL_VALUE.fullmatch(str(value)):
                problems.append(
                    f"label {key}={value!r}: the value is over 63 characters or not a label value"
                )
        for key in where.get("annotations") or {}:
            problems += key_problems(key, "annotation")
    return problems


def pod_problems(pod: dict[str, Any]) -> list[str]:
    problems = []
    for container in pod.get("containers", []) + pod.get("initContainers", []):
        cname = container["name"]
        if len(cname) > 63 or not DNS_LABEL.fullmatch(cname):
            problems.append(f"container name {cname!r} is not a DNS label")
        for port in container.get("ports", []):
            pname = port.get("name", "x")
            if len(pname) > 15 or not PORT_NAME.fullmatch(pname) or not re.search("[a-z]", pname):
                problems.append(f"{cname}: port name {pname!r} is not an IANA service name")
        resources = container.get("resources", {})
        for resource, limit in (resources.get("limits") or {}).items():
            request = (resources.get("requests") or {}).get(resource)
            if request is not None and quantity(request) > quantity(limit):
                problems.append(f"{cname}: {resource} request {request} is above its limit {limit}")
    return problems


def spec_problems(doc: dict[str, Any]) -> list[str]:
    """The per-kind rules: Ingress rules, HPA bounds, Deployment selectors, pods, Service ports, data keys."""
    kind, spec = doc["kind"], doc.get("spec", {})
    found: list[str] = []
    if kind == "Ingress":
        if not spec.get("rules") and not spec.get("defaultBackend"):
            found.append("either `defaultBackend` or `rules` must be specified")
        found += [
            f"rule {r} has no http.paths"
            for r in spec.get("rules") or []
            if not (r.get("http") or {}).get("paths")
        ]
    elif kind == "HorizontalPodAutoscaler" and spec["minReplicas"] > spec["maxReplicas"]:
        found.append("maxReplicas must be greater than or equal to minReplicas")
    elif kind in {"Deployment", "Job"}:
        labels = spec["template"]["metadata"]["labels"]
        if kind == "Deployment" and not spec["selector"]["matchLabels"].items() <= labels.items():
            found.append("selector does not match template labels")
        found += pod_problems(spec["template"]["spec"])
    elif kind == "Pod":
        found += pod_problems(spec)
    elif kind == "Service" and not spec.get("ports"):
        found.append("a Service needs ports")
    elif kind in {"ConfigMap", "Secret"}:
        found += [
            f"data key {k!r} is not a config key" for k in doc.get("data", {}) if not CONFIG_KEY.fullmatch(k)
        ]
    return found


def api_server_problems(docs: list[dict[str, Any]], where: str) -> list[str]:
    """Rules of the API server's validation that a schema cannot express, and every null the render left."""
    problems: list[str] = []
    for doc in docs:
        found = [f"null at {path}" for path in nulls(doc, "")] + metadata_problems(doc) + spec_problems(doc)
        name = f"{where}: {doc['kind']}/{doc['metadata'].get('name')}"
        problems += [f"{name}: {problem}" for problem in found]
    return problems


@pytest.fixture(scope="module")
def value_sets(kit: Kit) -> dict[str, Render]:
    return {
        name: kit.render(name, DEFAULT, sets=sets, json_sets=json_sets)
        for name, (sets, json_sets) in VALUE_SETS.items()
    }


@pytest.mark.parametrize("scenario", ["default", "kind", "eks", "polling"])
def test_the_scenarios_hold_nothing_the_api_server_refuses(renders: dict[str, Render], scenario: str) -> None:
    problems = api_server_problems(renders[scenario].docs, scenario)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_each_values_set_renders_what_the_api_server_accepts(
    kit: Kit, value_sets: dict[str, Render], name: str
) -> None:
    render = value_sets[name]
    assert len(render.docs) > 10
    problems = kit.validate_strict(render.docs, name) + api_server_problems(render.docs, name)
    assert not problems, "\n".join(problems)


def test_the_checks_catch_what_the_api_server_refuses(default: Render) -> None:
    """The rules really bite: the issue-18 Ingress (`rules: null`), an HPA upside down, a 64-character
    Service name, a request above its limit, a label value too long and a selector missing its pods."""
    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": BOT},
        "spec": {"ingressClassName": "alb", "rules": None},
    }
    hpa = yaml.safe_load(yaml.safe_dump(default.get("HorizontalPodAutoscaler", BOT)))
    hpa["spec"]["minReplicas"] = 11
    service = yaml.safe_load(yaml.safe_dump(default.get("Service", BOT)))
    service["metadata"]["name"] = "s" * 64
    deployment = yaml.safe_load(yaml.safe_dump(default.get("Deployment", QUERY)))
    deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["memory"] = "1Gi"
    deployment["metadata"]["labels"]["example.com/owner"] = "x" * 64
    deployment["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] = "bot"
    problems = "\n".join(api_server_problems([ingress, hpa, service, deployment], "mutated"))
    for expected in (
        "null at .spec.rules",
        "either `defaultBackend` or `rules` must be specified",
        "maxReplicas must be greater than or equal to minReplicas",
        f"name {'s' * 64!r} is not a DNS label",
        "memory request 1Gi is above its limit 320Mi",
        "example.com/owner",
        "selector does not match template labels",
    ):
        assert expected in problems, (expected, problems)


def test_an_ingress_without_hosts_has_one_rule_for_the_webhook(value_sets: dict[str, Render]) -> None:
    """issue 18: `ingress.className=alb` and no hosts gave `rules: null`; now one rule without `host`."""
    ingress = value_sets["alb-without-hosts"].get("Ingress", BOT)
    assert ingress["spec"]["rules"] == [
        {
            "http": {
                "paths": [
                    {
                        "path": "/telegram/webhook",
                        "pathType": "Exact",
                        "backend": {"service": {"name": BOT, "port": {"name": "http"}}},
                    }
                ]
            }
        }
    ]
    annotations = ingress["metadata"]["annotations"]
    assert annotations["alb.ingress.kubernetes.io/inbound-cidrs"] == "149.154.160.0/20,91.108.4.0/22"
    # Without a host there is no derived webhook URL: no hook Job (NOTES.txt says to set telegram.webhookUrl).
    assert not value_sets["alb-without-hosts"].of_kind("Job")
    hosts = [rule["host"] for rule in value_sets["nginx-hosts-tls"].get("Ingress", BOT)["spec"]["rules"]]
    assert hosts == ["a.example.com", "b.example.com"]


def test_long_release_names_are_cut_to_dns_labels(value_sets: dict[str, Render]) -> None:
    render = value_sets["long-release-name"]
    services = [s["metadata"]["name"] for s in render.of_kind("Service")]
    assert len(services) == 5  # bot, query, watcher, collector, Redis
    assert all(len(name) <= 63 for name in services), services
    assert any(name.endswith("-otel-collector") for name in services)
    assert len({*services}) == len(services)


@pytest.mark.parametrize(
    ("sets", "json_sets", "message"),
    [
        (
            {"bot.autoscaling.minReplicas": "5", "bot.autoscaling.maxReplicas": "3"},
            {},
            "bot.autoscaling.minReplicas (5) is above bot.autoscaling.maxReplicas (3)",
        ),
        (
            {"query.autoscaling.minReplicas": "6"},
            {},
            "query.autoscaling.minReplicas (6) is above query.autoscaling.maxReplicas (5)",
        ),
        ({}, {"networkPolicy.httpsCidrs": "[]"}, "networkPolicy.httpsCidrs is empty"),
        (
            {"networkPolicy.minecraft.allowAnyPort": "false"},
            {"networkPolicy.minecraft.tcpPorts": "[]", "networkPolicy.minecraft.udpPorts": "[]"},
            'an empty port list is read as "every port"',
        ),
        (
            {"fullnameOverride": LONG_NAME, "ingress.enabled": "true", "ingress.className": "alb"},
            {},
            "holds a Service name of at most 52 characters",
        ),
    ],
)
def test_values_the_api_server_would_refuse_are_refused_with_a_message(
    kit: Kit, sets: dict[str, str], json_sets: dict[str, str], message: str
) -> None:
    result = kit.helm_template(DEFAULT, sets=sets, json_sets=json_sets, check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


# --- Traefik -------------------------------------------------------------------------------------------


def test_traefik_gets_its_source_ranges_from_a_middleware(kit: Kit, value_sets: dict[str, Render]) -> None:
    render = value_sets["traefik"]
    middleware = render.get("Middleware", "mcstatbot-bot-source-range")
    assert middleware["apiVersion"] == "traefik.io/v1alpha1"
    assert middleware["spec"] == {"ipAllowList": {"sourceRange": ["149.154.160.0/20", "91.108.4.0/22"]}}
    annotations = render.get("Ingress", BOT)["metadata"]["annotations"]
    # `<namespace>-<name>@kubernetescrd`: how Traefik's Ingress provider names a CRD middleware.
    reference = "mcstatbot-mcstatbot-bot-source-range@kubernetescrd"
    assert annotations == {"traefik.ingress.kubernetes.io/router.middlewares": reference}
    assert not kit.validate_strict([middleware], "traefik")
    # Middlewares the operator lists run after the chart's.
    more = kit.render(
        "traefik-more",
        DEFAULT,
        sets={
            "ingress.enabled": "true",
            "ingress.className": "traefik",
            MIDDLEWARES_KEY: "mcstatbot-rl@kubernetescrd",
        },
    )
    assert more.get("Ingress", BOT)["metadata"]["annotations"][
        "traefik.ingress.kubernetes.io/router.middlewares"
    ] == ("mcstatbot-mcstatbot-bot-source-range@kubernetescrd,mcstatbot-rl@kubernetescrd")
    # An empty list admits everyone: no Middleware, no annotation.
    open_ = value_sets["traefik-open"]
    assert not open_.of_kind("Middleware")
    assert "annotations" not in open_.get("Ingress", BOT)["metadata"]


def test_the_middleware_schema_refuses_what_traefik_refuses(value_sets: dict[str, Render], kit: Kit) -> None:
    middleware = yaml.safe_load(
        yaml.safe_dump(value_sets["traefik"].get("Middleware", "mcstatbot-bot-source-range"))
    )
    middleware["spec"]["ipAllowList"]["sourceRanges"] = middleware["spec"]["ipAllowList"].pop("sourceRange")
    problems = kit.validate_strict([middleware], "mutated")
    assert any("sourceRanges" in p for p in problems), problems


# --- images and security contexts --------------------------------------------------------------------


def images(kit: Kit, render: Render) -> dict[str, tuple[str, str]]:
    """Workload name -> (image, imagePullPolicy) of its first container."""
    return {
        doc["metadata"]["name"]: (
            kit.pod_spec(doc)["containers"][0]["image"],
            kit.pod_spec(doc)["containers"][0]["imagePullPolicy"],
        )
        for doc in render.docs
        if doc["kind"] in {"Deployment", "Job", "Pod"}
    }


def test_the_image_helper_takes_registry_tag_digest_and_globals(
    kit: Kit, default: Render, value_sets: dict[str, Render]
) -> None:
    plain = images(kit, default)
    assert plain[BOT] == ("mcstatbot-bot:0.1.0", "IfNotPresent")
    assert plain["mcstatbot-otel-collector"] == (
        "otel/opentelemetry-collector-contrib:0.128.0",
        "IfNotPresent",
    )
    found = images(kit, value_sets["registry-and-digests"])
    registry = "registry.example.com:5000"
    assert found == {
        BOT: (f"{registry}/mcstatbot-bot:0.1.0@{DIGEST}", "Always"),
        QUERY: (f"{registry}/mcstatbot-query:0.1.0", "Always"),
        "mcstatbot-watcher": (f"{registry}/mcstatbot-watcher:0.1.0", "Always"),
        "mcstatbot-otel-collector": (f"{registry}/otel/opentelemetry-collector-contrib:0.128.0", "Always"),
        "mcstatbot-redis": (f"{registry}/redis:7.4.2-alpine@{DIGEST}", "Always"),
        "mcstatbot-helm-test": (f"{registry}/tools/python:3.12", "Always"),
    }
    own = images(
        kit,
        kit.render(
            "own",
            DEFAULT,
            sets={
                "global.imageRegistry": "mirror.example.com",
                "global.imageTag": "abc1234",
                "query.image.registry": "ecr.example.com",
                "query.image.tag": "1.2.3",
                "query.image.pullPolicy": "Never",
            },
        ),
    )
    # A component's own registry, tag and policy win; the global tag is for the chart's own images only.
    assert own[QUERY] == ("ecr.example.com/mcstatbot-query:1.2.3", "Never")
    assert own[BOT] == ("mirror.example.com/mcstatbot-bot:abc1234", "IfNotPresent")
    assert own["mcstatbot-watcher"] == ("mirror.example.com/mcstatbot-watcher:abc1234", "IfNotPresent")
    assert own["mcstatbot-helm-test"] == own[QUERY]  # the test Pod runs the query image as deployed
    assert own["mcstatbot-redis"][0] == "mirror.example.com/redis:7.4.2-alpine"
    refused = kit.helm_template(DEFAULT, sets={"bot.image.digest": "latest"}, check=False)
    assert refused.returncode != 0
    assert "digest" in refused.stderr


def test_each_component_may_override_its_security_contexts(kit: Kit, default: Render) -> None:
    render = kit.render(
        "contexts",
        DEFAULT,
        sets={
            "bot.podSecurityContext.fsGroupChangePolicy": "OnRootMismatch",
            "query.containerSecurityContext.readOnlyRootFilesystem": "false",
        },
    )
    bot, query = (kit.pod_spec(render.get("Deployment", name)) for name in (BOT, QUERY))
    default_bot = kit.pod_spec(default.get("Deployment", BOT))
    assert bot["securityContext"] == {
        **default_bot["securityContext"],
        "fsGroupChangePolicy": "OnRootMismatch",
    }
    assert query["securityContext"] == default_bot["securityContext"]
    assert query["containers"][0]["securityContext"] == {
        **default_bot["containers"][0]["securityContext"],
        "readOnlyRootFilesystem": False,
    }
    assert bot["containers"][0]["securityContext"] == default_bot["containers"][0]["securityContext"]
    # The bot's webhook Job and the query image's test Pod follow their component.
    job = kit.render(
        "job",
        DEFAULT,
        sets={
            "bot.podSecurityContext.fsGroupChangePolicy": "OnRootMismatch",
            "telegram.webhookUrl": "https://x/y",
        },
    ).get("Job", "mcstatbot-set-webhook")
    assert kit.pod_spec(job)["securityContext"]["fsGroupChangePolicy"] == "OnRootMismatch"
    test_pod = render.get("Pod", "mcstatbot-helm-test")
    assert test_pod["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is False


# --- GitOps: the same values, the same manifests ------------------------------------------------------


def test_rendering_twice_gives_the_same_bytes(kit: Kit) -> None:
    """Argo CD renders with `helm template` (no `lookup`): a random value would change every sync and roll
    pods through `checksum/secret`. Each scenario and values set here renders byte-identically twice."""
    different = []
    runs: list[tuple[str, list[str], dict[str, str], dict[str, str]]] = [
        (name, files, {}, {}) for name, files in kit.scenarios.items()
    ]
    runs += [(name, [DEFAULT], sets, json_sets) for name, (sets, json_sets) in VALUE_SETS.items()]
    for name, files, sets, json_sets in runs:
        first, second = (kit.helm_template(*files, sets=sets, json_sets=json_sets).stdout for _ in range(2))
        assert len(first) > 1000, name
        if first != second:
            different.append(name)
    assert not different, different


def test_the_generated_webhook_secret_is_derived_from_the_token(kit: Kit, default: Render) -> None:
    secret = default.get("Secret", "mcstatbot-telegram")
    webhook_secret = base64.b64decode(secret["data"]["webhook-secret"]).decode()
    assert TELEGRAM_SECRET_TOKEN.fullmatch(webhook_secret)
    assert len(webhook_secret) >= 48
    assert "ci-token" not in webhook_secret
    other = kit.render("other-token", DEFAULT, sets={"telegram.token": "654321:another-token"})
    other_secret = other.get("Secret", "mcstatbot-telegram")["data"]["webhook-secret"]
    assert other_secret != secret["data"]["webhook-secret"]  # a new token, a new webhook secret

    def rollout(render: Render) -> str:
        annotations: dict[str, str] = render.get("Deployment", BOT)["spec"]["template"]["metadata"][
            "annotations"
        ]
        return annotations["checksum/secret"]

    assert rollout(other) != rollout(default)  # ... and the pods roll to it
    given = kit.render("given", DEFAULT, sets={"telegram.webhookSecret": "set-by-the-operator"})
    assert base64.b64decode(given.get("Secret", "mcstatbot-telegram")["data"]["webhook-secret"]) == (
        b"set-by-the-operator"
    )


def test_a_random_value_in_a_template_is_caught(kit: Kit, tmp_path: Path) -> None:
    """Every render the chart tests ask for is made twice and compared: a random value in a template fails."""
    chart = tmp_path / "mcstatbot"
    shutil.copytree(kit.chart, chart)
    random = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "random"},
        "data": {"v": "RANDOM"},
    }
    template = yaml.safe_dump(random).replace("RANDOM", "{{ randAlphaNum 16 | quote }}")
    (chart / "templates" / "random.yaml").write_text(template)
    with pytest.raises(pytest.fail.Exception, match="two renders of the same values differ"):
        kit.render("random", DEFAULT, chart=chart)
