"""The chart and overlays render, lint and validate: helm lint --strict (helm 3 and 4), kubernetes-validate
--strict against Kubernetes 1.29 and 1.34 (a WARN fails too), CRD objects against their own schemas, checkov.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from tests.chart.conftest import CLUSTER_SCOPED

if TYPE_CHECKING:
    from tests.chart.conftest import Kit, Render

# Kinds without a namespace, and the namespaces of the kind add-ons with the names their objects start with.
ADD_ON_NAMES = {"kube-system": ("metrics-server", "system:"), "traefik": ("traefik",)}
MONITORING = {
    "metrics.serviceMonitor.enabled": "true",
    "metrics.prometheusRule.enabled": "true",
    "metrics.grafanaDashboard.enabled": "true",
}
SAMPLE_RULES = """\
- name: mcstatbot.rollback
  rules:
    - alert: McstatbotHighErrorRate
      expr: >-
        sum(rate(mcstatbot_http_requests_total{status=~"5.."}[5m]))
        / sum(rate(mcstatbot_http_requests_total[5m])) > 0.05
      for: 5m
      labels: {severity: critical}
      annotations: {summary: error rate over 5%}
"""


@pytest.mark.parametrize("helm", ["helm", "helm4"])
@pytest.mark.parametrize(
    "values", ["charts/mcstatbot/ci/default-values.yaml", "charts/mcstatbot/ci/polling-values.yaml"]
)
def test_helm_lint_strict(kit: Kit, helm: str, values: str) -> None:
    result = kit.run([kit.tool(helm), "lint", "--strict", str(kit.chart), "-f", str(kit.root / values)])
    assert "0 chart(s) failed" in result.stdout, result.stdout


@pytest.mark.parametrize("helm", ["helm", "helm4"])
def test_helm_lint_strict_overlay_values(kit: Kit, helm: str) -> None:
    for overlay in ("kind", "eks"):
        values = kit.root / "k8s" / "overlays" / overlay / "app" / "values.yaml"
        result = kit.run([kit.tool(helm), "lint", "--strict", str(kit.chart), "-f", str(values)])
        assert "0 chart(s) failed" in result.stdout, result.stdout


def test_helm4_renders_the_same_objects(kit: Kit, renders: dict[str, Render]) -> None:
    for name, files in kit.scenarios.items():
        docs = kit.load_docs(kit.helm_template(*files, helm="helm4").stdout)
        theirs = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
        ours = sorted((d["kind"], d["metadata"]["name"]) for d in renders[name].docs)
        assert theirs == ours, name


@pytest.mark.parametrize("scenario", ["default", "kind", "eks", "polling"])
def test_helm_template_validates_strictly(kit: Kit, renders: dict[str, Render], scenario: str) -> None:
    render = renders[scenario]
    assert len(render.docs) > 10
    problems = kit.validate_strict(render.docs, scenario)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("overlay", ["kind", "eks"])
def test_kustomize_overlay_validates_strictly(kit: Kit, overlays: dict[str, Render], overlay: str) -> None:
    render = overlays[overlay]
    assert any(d["kind"] == "Namespace" for d in render.docs)
    problems = kit.validate_strict(render.docs, f"kustomize {overlay}")
    assert not problems, "\n".join(problems)
    # Everything of the product lands in the mcstatbot namespace; only the kind add-ons live elsewhere:
    # metrics-server in kube-system, Traefik in its own namespace.
    for doc in render.docs:
        namespace = doc["metadata"].get("namespace")
        if doc["kind"] in CLUSTER_SCOPED:
            assert namespace is None, doc["metadata"]
            continue
        assert namespace in ADD_ON_NAMES or namespace == "mcstatbot", doc["metadata"]
        if namespace != "mcstatbot":
            assert overlay == "kind", doc["metadata"]
            assert doc["metadata"]["name"].startswith(ADD_ON_NAMES[namespace]), doc["metadata"]


def test_the_validation_catches_a_misspelt_field_and_an_unknown_kind(kit: Kit, default: Render) -> None:
    """The validator is really strict: a typo in a field and an unknown API version are both reported."""
    deployment = yaml.safe_load(yaml.safe_dump(default.of_kind("Deployment")[0]))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    removed_api = {"apiVersion": "policy/v1beta1", "kind": "PodSecurityPolicy", "metadata": {"name": "x"}}
    problems = kit.validate_strict([deployment, removed_api], "mutated")
    assert any(p.startswith("ERROR") and "imagePullPolicyy" in p for p in problems), problems
    assert any(p.startswith("WARN") and "PodSecurityPolicy" in p for p in problems), problems


def copy_chart(kit: Kit, tmp_path: Path, *, with_files: bool) -> Path:
    chart = tmp_path / "mcstatbot"
    shutil.copytree(kit.chart, chart)
    files = chart / "files"
    for name in ("prometheus-rules.yaml", "grafana-dashboard.json"):
        (files / name).unlink(missing_ok=True)
    if with_files:
        files.mkdir(exist_ok=True)
        (files / "prometheus-rules.yaml").write_text(SAMPLE_RULES)
        (files / "grafana-dashboard.json").write_text('{"title": "mcstatbot", "panels": []}')
    return chart


def test_monitoring_objects_validate(kit: Kit, tmp_path: Path) -> None:
    """ServiceMonitor, PrometheusRule and the dashboard ConfigMap, with the repository's files when present
    (the observability work writes them) and otherwise with stand-ins in a copy of the chart."""
    files = kit.chart / "files"
    have_files = (files / "prometheus-rules.yaml").is_file() and (files / "grafana-dashboard.json").is_file()
    chart = kit.chart if have_files else copy_chart(kit, tmp_path, with_files=True)
    result = kit.helm_template("charts/mcstatbot/ci/default-values.yaml", sets=MONITORING, chart=chart)
    docs = kit.load_docs(result.stdout)
    kinds = {d["kind"] for d in docs}
    assert {"ServiceMonitor", "PrometheusRule"} <= kinds
    problems = kit.validate_strict(docs, "monitoring")
    assert not problems, "\n".join(problems)
    dashboard = next(
        d for d in docs if d["kind"] == "ConfigMap" and "grafana_dashboard" in d["metadata"]["labels"]
    )
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(next(iter(dashboard["data"].values())))  # the JSON survives quoting
    monitor = next(d for d in docs if d["kind"] == "ServiceMonitor")
    # The rules and the dashboard group by the apps' own `service` label: the scrape must keep it.
    assert all(endpoint["honorLabels"] is True for endpoint in monitor["spec"]["endpoints"])
    rule = next(d for d in docs if d["kind"] == "PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load((chart / "files" / "prometheus-rules.yaml").read_text())


def test_monitoring_files_are_optional_until_enabled(kit: Kit, tmp_path: Path) -> None:
    chart = copy_chart(kit, tmp_path, with_files=False)
    plain = kit.helm_template("charts/mcstatbot/ci/default-values.yaml", chart=chart)
    assert "PrometheusRule" not in plain.stdout
    for key, missing in (
        ("metrics.prometheusRule.enabled", "prometheus-rules.yaml is missing"),
        ("metrics.grafanaDashboard.enabled", "grafana-dashboard.json is missing"),
    ):
        result = kit.helm_template(
            "charts/mcstatbot/ci/default-values.yaml", sets={key: "true"}, chart=chart, check=False
        )
        assert result.returncode != 0
        assert missing in result.stderr, result.stderr


def test_checkov_passes_with_justified_skips(
    kit: Kit, renders: dict[str, Render], overlays: dict[str, Render], tmp_path: Path
) -> None:
    """checkov (kubernetes framework, offline) over every render; skips live in checkov.yaml, each with its
    reason, and per object as `checkov.io/skipN` annotations."""
    for name, render in {**renders, **{f"kustomize-{k}": v for k, v in overlays.items()}}.items():
        (tmp_path / f"{name}.yaml").write_text(render.text)
    config = Path(__file__).parent / "checkov.yaml"
    result = kit.run(
        [
            kit.tool("checkov"),
            "--config-file",
            str(config),
            "--directory",
            str(tmp_path),
            "--output",
            "json",
        ],
        check=False,
    )
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [
        f"{check['check_id']} {check['resource']} ({check['file_path']})"
        for item in reports
        for check in item["results"]["failed_checks"]
    ]
    assert not failed, "\n".join(failed)
    assert result.returncode == 0, result.stderr
    assert sum(item["summary"]["passed"] for item in reports) > 500


def test_the_kubernetes_validate_command_agrees(
    kit: Kit, renders: dict[str, Render], overlays: dict[str, Render], tmp_path: Path
) -> None:
    """The same check through the `kubernetes-validate` command line (as an operator would run it): exit 0
    and no WARN line for every render (none of these holds a CRD object)."""
    files = []
    for name, render in {**renders, **{f"kustomize-{k}": v for k, v in overlays.items()}}.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(render.text)
        files.append(str(path))
    command = Path(sys.executable).parent / "kubernetes-validate"
    args = [str(command), "--strict", "--quiet", *(f"-k{v}" for v in kit.kubernetes_versions), *files]
    result = kit.run(args, check=False)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert not [line for line in lines if line.startswith(("WARN", "ERROR", "FATAL"))], result.stdout
    assert result.returncode == 0, result.stdout + result.stderr
