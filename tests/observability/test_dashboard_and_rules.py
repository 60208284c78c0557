"""The Grafana dashboard and the Prometheus alert rules the chart ships: shape, PromQL, and real metric names.

Every PromQL expression is parsed (promql-parser, the Rust parser used by GreptimeDB); every metric it names
must be exported by the two services (their metrics modules are imported in a fresh interpreter), and every
label it matches or groups by must be one of that metric's labels or a label Prometheus adds to a target.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from functools import cache
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "charts/mcstatbot/files/grafana-dashboard.json"
RULES = ROOT / "charts/mcstatbot/files/prometheus-rules.yaml"
# Labels Prometheus (kubernetes_sd / ServiceMonitor) attaches to every scraped series.
TARGET_LABELS = frozenset({"namespace", "pod", "instance", "job", "service", "container", "endpoint"})
GRID_WIDTH = 24
SERVICE_METRICS_MODULES = ("mcstatbot_query.metrics", "mcstatbot_bot.metrics")
PANEL_TYPES = frozenset({"row", "stat", "timeseries", "table", "gauge", "bargauge", "text", "heatmap"})

EXPORTED_METRICS = textwrap.dedent(
    """
    import importlib, json, sys
    import mcstatbot_common.observability
    from prometheus_client import REGISTRY

    importlib.import_module(sys.argv[1])

    SUFFIXES = {
        "counter": ["_total", "_created"],
        "histogram": ["_bucket", "_sum", "_count", "_created"],
        "summary": ["", "_sum", "_count", "_created"],
        "info": ["_info"],
    }
    names = {}
    for collector in set(REGISTRY._collector_to_names):
        labels = set(getattr(collector, "_labelnames", ()))
        for family in collector.collect():
            labels |= {label for sample in family.samples for label in sample.labels if label != "le"}
            for suffix in SUFFIXES.get(family.type, [""]):
                names[family.name + suffix] = sorted(labels | ({"le"} if suffix == "_bucket" else set()))
    print(json.dumps(names))
    """
)


@cache
def exported_metrics() -> dict[str, set[str]]:
    """Series names the two services can export, each with its label names (from their own modules).

    One interpreter per service: both define `mcstatbot_errors_total`, each in its own process.
    """
    metrics: dict[str, set[str]] = {}
    for module in SERVICE_METRICS_MODULES:
        done = subprocess.run(
            [sys.executable, "-c", EXPORTED_METRICS, module],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        for name, labels in json.loads(done.stdout).items():
            metrics.setdefault(name, set()).update(labels)
    return metrics


def load_dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text())
    assert isinstance(data, dict)
    return data


def load_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES.read_text())
    assert isinstance(data, list), "the file is the value of spec.groups: a list of rule groups"
    return data


def dashboard_queries() -> list[tuple[str, str]]:
    return [
        (f"panel {panel['title']!r} {target['refId']}", target["expr"])
        for panel in load_dashboard()["panels"]
        for target in panel.get("targets", [])
    ]


def rule_queries() -> list[tuple[str, str]]:
    return [
        (f"rule {rule.get('alert') or rule.get('record')}", str(rule["expr"]))
        for group in load_rules()
        for rule in group["rules"]
    ]


def selectors(expr: promql_parser.Expr) -> list[promql_parser.VectorSelector]:
    found: list[promql_parser.VectorSelector] = []

    def visit(node: object) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)
        return True

    promql_parser.walk(expr, visit)
    return found


def check_expression(where: str, text: str) -> list[str]:
    """Parse `text`; return the problems (unknown metric, unknown label) found in it."""
    try:
        expr = promql_parser.parse(text)
    except Exception as error:  # noqa: BLE001 - the parser raises a plain exception with the reason
        return [f"{where}: does not parse: {error}"]
    metrics = exported_metrics()
    problems: list[str] = []
    used = selectors(expr)
    if not used:
        problems.append(f"{where}: names no metric")
    for selector in used:
        name = selector.name
        if name is None:
            problems.append(f"{where}: a selector without a metric name")
            continue
        if name not in metrics:
            problems.append(f"{where}: {name!r} is exported by neither service")
            continue
        allowed = metrics[name] | TARGET_LABELS
        problems.extend(
            f"{where}: {name} has no label {matcher.name!r}"
            for matcher in selector.matchers.matchers
            if matcher.name != "__name__" and matcher.name not in allowed
        )

    def visit(node: object) -> bool:
        if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            inner = selectors(node.expr)
            allowed = set(TARGET_LABELS)
            for selector in inner:
                allowed |= metrics.get(selector.name or "", set())
            problems.extend(
                f"{where}: grouping by {label!r}, which none of {[s.name for s in inner]} has"
                for label in node.modifier.labels
                if label not in allowed
            )
        return True

    promql_parser.walk(expr, visit)
    return problems


def test_the_services_export_the_families_the_dashboard_is_built_on() -> None:
    metrics = exported_metrics()
    for name in (
        "mcstatbot_probes_total",
        "mcstatbot_cache_requests_total",
        "mcstatbot_commands_total",
        "mcstatbot_http_request_duration_seconds_bucket",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ):
        assert name in metrics
    assert {"edition", "outcome"} <= metrics["mcstatbot_probes_total"]


def test_dashboard_is_a_grafana_dashboard() -> None:
    dashboard = load_dashboard()
    assert dashboard["uid"] == "mcstatbot-overview"
    assert len(dashboard["uid"]) <= 40
    assert dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int)
    assert dashboard["schemaVersion"] >= 36
    assert "id" not in dashboard or dashboard["id"] is None  # provisioning assigns the id
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = dashboard["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    occupied: set[tuple[int, int]] = set()
    for panel in panels:
        assert panel["type"] in PANEL_TYPES, panel["title"]
        assert panel["title"]
        grid = panel["gridPos"]
        assert all(isinstance(grid[key], int) for key in ("x", "y", "w", "h"))
        assert grid["x"] >= 0
        assert grid["x"] + grid["w"] <= GRID_WIDTH, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & occupied, f"panel {panel['title']!r} overlaps another"
        occupied |= cells
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        targets = panel["targets"]
        assert targets, panel["title"]
        ref_ids = [target["refId"] for target in targets]
        assert len(ref_ids) == len(set(ref_ids))
        for target in targets:
            assert target["expr"].strip()
            assert target["datasource"]["uid"] == "${datasource}"
            assert 'namespace=~"$namespace"' in target["expr"], "every query follows the namespace picker"


def test_dashboard_has_the_seed_panels() -> None:
    titles = {panel["title"] for panel in load_dashboard()["panels"]}
    for title in (
        "Commands per hour",
        "Probe success rate",
        "Cache hit ratio",
        "Average response time",
        "p95 response time",
        "Error rate by type",
        "CPU per pod",
        "Memory per pod",
        "Circuit breaker state",
        "Redis cache backend",
    ):
        assert title in titles


@pytest.mark.parametrize("source", ["dashboard", "rules"])
def test_every_query_parses_and_names_real_metrics_and_labels(source: str) -> None:
    queries = dashboard_queries() if source == "dashboard" else rule_queries()
    assert len(queries) >= (20 if source == "dashboard" else 5)
    problems = [problem for where, text in queries for problem in check_expression(where, text)]
    assert problems == []


def test_the_checker_catches_wrong_names_and_labels() -> None:
    """The check above can fail: a typo in a metric or a label, or broken PromQL, is reported."""
    assert check_expression("x", "sum(rate(mcstatbot_probe_total[5m]))") == [
        "x: 'mcstatbot_probe_total' is exported by neither service"
    ]
    assert check_expression("x", 'sum(rate(mcstatbot_probes_total{result="hit"}[5m]))') == [
        "x: mcstatbot_probes_total has no label 'result'"
    ]
    assert check_expression("x", "sum by (command) (rate(mcstatbot_probes_total[5m]))") == [
        "x: grouping by 'command', which none of ['mcstatbot_probes_total'] has"
    ]
    assert check_expression("x", "sum(rate(mcstatbot_probes_total[5m])")[0].startswith("x: does not parse")


def test_rules_are_prometheus_rule_groups_with_the_rollback_triggers() -> None:
    groups = load_rules()
    names = [group["name"] for group in groups]
    assert len(names) == len(set(names))
    alerts: dict[str, dict[str, Any]] = {}
    for group in groups:
        assert set(group) <= {"name", "interval", "rules", "limit"}
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}
            assert rule["alert"] not in alerts
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}
            assert rule["annotations"]["summary"]
            assert rule["annotations"]["description"]
            assert rule["for"].endswith("m")
            alerts[rule["alert"]] = rule
    rollback = {name for name, rule in alerts.items() if rule["labels"].get("rollback") == "true"}
    assert {"McstatbotHighErrorRate", "McstatbotHighLatencyP95", "McstatbotUpdateFailureRate"} <= rollback
    # The seed's thresholds: error rate over 5 %, p95 latency over 2 s.
    assert alerts["McstatbotHighErrorRate"]["expr"].strip().endswith("> 0.05")
    assert 'status=~"5.."' in alerts["McstatbotHighErrorRate"]["expr"]
    latency = alerts["McstatbotHighLatencyP95"]["expr"]
    assert latency.strip().endswith("> 2")
    assert "histogram_quantile(0.95" in latency
    assert "mcstatbot_http_request_duration_seconds_bucket" in latency
