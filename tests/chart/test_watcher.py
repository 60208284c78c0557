"""The watcher in the chart: its objects from the shared workload template, the bot's configuration (the same
Secret, query service, state store and Redis), the bot's ServiceAccount for IRSA (or one of its own), its
NetworkPolicy and the others admitting it, the ServiceMonitor, `watcher.enabled=false`, the values checks.
The environment against WatcherSettings, the probes against its routes, HPA, PDB, spread and hardening are
checked with the bot's and the query service's in test_values.py.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.chart.conftest import Kit, Render

BOT = "mcstatbot-bot"
QUERY = "mcstatbot-query"
WATCHER = "mcstatbot-watcher"
DEFAULT = "charts/mcstatbot/ci/default-values.yaml"
POLLING = "charts/mcstatbot/ci/polling-values.yaml"
KINDS = {"ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
SHARED_CONFIG = (
    "TELEGRAM_API_BASE_URL",
    "QUERY_SERVICE_URL",
    "STATE_BACKEND",
    "DYNAMODB_TABLE",
    "WATCH_MAX_PER_CHAT",
    "LIVE_INTERVAL_SECONDS",
    "REDIS_URL",
)


def pod(render: Render, name: str = WATCHER) -> dict[str, Any]:
    spec: dict[str, Any] = render.get("Deployment", name)["spec"]["template"]["spec"]
    return spec


def env_items(render: Render, name: str) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in pod(render, name)["containers"][0]["env"]}


def labels_of(render: Render, name: str) -> dict[str, str]:
    labels: dict[str, str] = render.get("Deployment", name)["spec"]["template"]["metadata"]["labels"]
    return labels


def admits(peers: list[dict[str, Any]], labels: dict[str, str]) -> bool:
    return any(
        "podSelector" in peer
        and "namespaceSelector" not in peer
        and all(labels.get(k) == v for k, v in peer["podSelector"]["matchLabels"].items())
        for peer in peers
    )


@pytest.mark.parametrize("scenario", ["default", "kind", "eks", "polling"])
def test_the_watcher_is_deployed_with_the_bots_configuration(
    kit: Kit, renders: dict[str, Render], scenario: str
) -> None:
    render = renders[scenario]
    assert {d["kind"] for d in render.docs if d["metadata"]["name"] == WATCHER} >= KINDS - {
        "HorizontalPodAutoscaler"
    }
    container = pod(render)["containers"][0]
    assert container["ports"] == [{"name": "http", "containerPort": 8082, "protocol": "TCP"}]
    assert container["image"].rsplit("/", 1)[-1].startswith("mcstatbot-watcher:")
    watcher = render.get("ConfigMap", WATCHER)["data"]
    bot = render.get("ConfigMap", BOT)["data"]
    for key in SHARED_CONFIG:
        assert watcher.get(key) == bot.get(key), (scenario, key)
    assert watcher["PORT"] == "8082"
    # The same Secret as the bot's token; never the value.
    ours, theirs = env_items(render, WATCHER), env_items(render, BOT)
    assert ours["TELEGRAM_BOT_TOKEN"]["valueFrom"] == theirs["TELEGRAM_BOT_TOKEN"]["valueFrom"]
    assert "WEBHOOK_SECRET" not in ours  # the watcher only sends
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "REDIS_URL"):
        assert ours.get(name) == theirs.get(name), (scenario, name)
    assert "ci-token-not-real" not in json.dumps(render.get("ConfigMap", WATCHER))
    assert kit.container_env(container, render)["OTEL_SERVICE_NAME"] == "mcstatbot-watcher"


def test_the_watcher_values_reach_its_environment_and_roll_only_what_reads_them(
    kit: Kit, default: Render
) -> None:
    config = default.get("ConfigMap", WATCHER)["data"]
    assert {k: config[k] for k in config if k.startswith("WATCH_")} == {
        "WATCH_INTERVAL_SECONDS": "60",
        "WATCH_DOWN_AFTER": "3",
        "WATCH_FLAP_SECONDS": "600",
        "WATCH_CONCURRENCY": "64",
        "WATCH_MAX_PER_CHAT": "10",
    }
    assert config["HISTORY_DAYS"] == "30"  # watcher.historyDays: how long /history samples are kept
    assert (
        kit.render("history", DEFAULT, sets={"watcher.historyDays": "7"}).get("ConfigMap", WATCHER)["data"][
            "HISTORY_DAYS"
        ]
        == "7"
    )

    def checksum(render: Render, name: str) -> str:
        value: str = render.get("Deployment", name)["spec"]["template"]["metadata"]["annotations"][
            "checksum/config"
        ]
        return value

    changed = kit.render(
        "down-after", DEFAULT, sets={"watcher.downAfter": "5", "watcher.intervalSeconds": "30"}
    )
    assert changed.get("ConfigMap", WATCHER)["data"]["WATCH_DOWN_AFTER"] == "5"
    assert changed.get("ConfigMap", WATCHER)["data"]["WATCH_INTERVAL_SECONDS"] == "30"
    assert checksum(changed, WATCHER) != checksum(default, WATCHER)
    assert checksum(changed, BOT) == checksum(default, BOT)
    # The per-chat limit and the live interval are read by both: both roll.
    shared = kit.render(
        "limits", DEFAULT, sets={"watcher.maxPerChat": "4", "watcher.liveIntervalSeconds": "90"}
    )
    for name in (BOT, WATCHER):
        assert shared.get("ConfigMap", name)["data"]["WATCH_MAX_PER_CHAT"] == "4"
        assert shared.get("ConfigMap", name)["data"]["LIVE_INTERVAL_SECONDS"] == "90"
        assert checksum(shared, name) != checksum(default, name)
    # A new token (the chart's Secret) rolls the watcher too.
    annotations = default.get("Deployment", WATCHER)["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/secret" in annotations


def test_the_watcher_runs_as_the_bots_serviceaccount_for_irsa(kit: Kit, renders: dict[str, Render]) -> None:
    eks = renders["eks"]
    assert pod(eks)["serviceAccountName"] == pod(eks, BOT)["serviceAccountName"] == "mcstatbot-bot"
    assert not eks.has("ServiceAccount", WATCHER)
    assert pod(renders["default"])["serviceAccountName"] == "mcstatbot-bot"
    assert pod(eks)["automountServiceAccountToken"] is False
    # The watcher's own ServiceAccount, with its own IRSA role.
    own = kit.render(
        "own",
        DEFAULT,
        sets={
            "serviceAccount.watcherName": "mcstatbot-watcher",
            "serviceAccount.watcherAnnotations.eks\\.amazonaws\\.com/role-arn": "arn:aws:iam::1:role/watcher",
            "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn": "arn:aws:iam::1:role/bot",
        },
    )
    assert pod(own)["serviceAccountName"] == WATCHER
    account = own.get("ServiceAccount", WATCHER)
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/watcher"}
    assert account["automountServiceAccountToken"] is False
    bot_account = own.get("ServiceAccount", BOT)["metadata"]
    assert bot_account["annotations"]["eks.amazonaws.com/role-arn"].endswith("/bot")
    # Without serviceAccount.create the chart makes none, and the watcher uses the given name.
    none = kit.render("none", DEFAULT, sets={"serviceAccount.create": "false", "serviceAccount.name": "made"})
    assert not {sa["metadata"]["name"] for sa in none.of_kind("ServiceAccount")} & {BOT, QUERY, WATCHER}
    assert pod(none)["serviceAccountName"] == "made"


def test_network_policies_admit_the_watcher_where_it_goes_and_nothing_to_it(default: Render) -> None:
    policies = {p["metadata"]["name"]: p["spec"] for p in default.of_kind("NetworkPolicy")}
    watcher_labels = labels_of(default, WATCHER)
    own = policies[WATCHER]
    assert own["podSelector"]["matchLabels"].items() <= watcher_labels.items()
    assert sorted(own["policyTypes"]) == ["Egress", "Ingress"]
    # In: only the helm test Pod (and networkPolicy.metricsFrom), on its http port.
    assert len(own["ingress"]) == 1
    sources = [peer["podSelector"]["matchLabels"] for peer in own["ingress"][0]["from"]]
    assert [labels["app.kubernetes.io/component"] for labels in sources] == ["helm-test"]
    assert own["ingress"][0]["ports"] == [{"port": "http", "protocol": "TCP"}]
    # Out: the bot's ports exactly (DNS, 443 for Telegram and DynamoDB, query, Redis, collector).
    ports = {(p.get("protocol"), p.get("port")) for rule in own["egress"] for p in rule.get("ports", [])}
    bot_ports = {
        (p.get("protocol"), p.get("port")) for rule in policies[BOT]["egress"] for p in rule.get("ports", [])
    }
    expected = {("UDP", 53), ("TCP", 53), ("TCP", 443), ("TCP", 8081), ("TCP", 6379), ("TCP", 4318)}
    assert ports == bot_ports == expected
    for rule in own["egress"]:
        for peer in rule.get("to", []):
            if peer.get("ipBlock", {}).get("cidr") == "0.0.0.0/0":
                assert "169.254.169.254/32" in peer["ipBlock"]["except"]
    targets = [rule.get("to", []) for rule in own["egress"]]
    assert any(admits(peers, labels_of(default, QUERY)) for peers in targets)
    assert any(admits(peers, labels_of(default, "mcstatbot-redis")) for peers in targets)
    # Query, Redis and the collector admit it; the helm test Pod may reach it.
    for name in (QUERY, "mcstatbot-redis", "mcstatbot-otel-collector"):
        assert admits(policies[name]["ingress"][0]["from"], watcher_labels), name
    assert any(
        admits(rule.get("to", []), watcher_labels) for rule in policies["mcstatbot-helm-test"]["egress"]
    )


def test_metrics_scrapers_reach_the_watcher(kit: Kit) -> None:
    scraper = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    render = kit.render(
        "metrics",
        DEFAULT,
        sets={"metrics.serviceMonitor.enabled": "true"},
        json_sets={"networkPolicy.metricsFrom": json.dumps([scraper])},
    )
    assert scraper in render.get("NetworkPolicy", WATCHER)["spec"]["ingress"][0]["from"]
    monitor = render.of_kind("ServiceMonitor")[0]
    components = next(
        e["values"]
        for e in monitor["spec"]["selector"]["matchExpressions"]
        if e["key"] == "app.kubernetes.io/component"
    )
    assert components == ["bot", "query", "watcher"]
    assert monitor["spec"]["endpoints"][0]["port"] == "http"


def test_watcher_disabled_leaves_no_trace(kit: Kit, default: Render) -> None:
    render = kit.render(
        "off", DEFAULT, sets={"watcher.enabled": "false", "metrics.serviceMonitor.enabled": "true"}
    )
    assert not [d for d in render.docs if d["metadata"]["name"] == WATCHER]
    assert "component: watcher" not in render.text
    assert "mcstatbot-watcher" not in render.text
    components = next(
        e["values"]
        for e in render.of_kind("ServiceMonitor")[0]["spec"]["selector"]["matchExpressions"]
        if e["key"] == "app.kubernetes.io/component"
    )
    assert components == ["bot", "query"]
    # The bot keeps its watch settings (it still takes /watch and /live).
    assert render.get("ConfigMap", BOT)["data"]["WATCH_MAX_PER_CHAT"] == "10"
    assert default.has("Deployment", WATCHER)


def test_the_watcher_needs_a_shared_state_store(kit: Kit) -> None:
    memory = {"bot.stateBackend": "memory"}
    result = kit.helm_template(POLLING, sets=memory, check=False)
    assert result.returncode != 0
    assert "the watcher cannot read them" in result.stderr, result.stderr
    # Without the watcher, a one-replica bot may keep its state in memory (as before).
    alone = kit.render("alone", POLLING, sets={**memory, "watcher.enabled": "false"})
    assert alone.get("ConfigMap", BOT)["data"]["STATE_BACKEND"] == "memory"


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({"watcher.autoscaling.minReplicas": "6"}, "watcher.autoscaling.minReplicas (6) is above"),
        ({"watcher.downAfter": "0"}, "downAfter"),
        ({"watcher.intervalSeconds": "0"}, "intervalSeconds"),
        ({"watcher.imag": "x"}, "imag"),
    ],
)
def test_the_schema_and_the_checks_refuse_bad_watcher_values(
    kit: Kit, sets: dict[str, str], message: str
) -> None:
    result = kit.helm_template(DEFAULT, sets=sets, check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
