"""The workload template (templates/_workload.tpl) is shared: bot, query and watcher are three calls of it,
and a further component needs only a values block and a small file that calls it.
"""

from __future__ import annotations

import copy
import json
import shutil
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from pathlib import Path

    from tests.chart.conftest import Kit, Render

WORKER_TEMPLATE = """\
{{- define "mcstatbot.worker.config" -}}
PORT: "8083"
LOG_LEVEL: {{ .Values.worker.logLevel | quote }}
{{- end -}}
{{- include "mcstatbot.workload" (dict "ctx" . "component" "worker" "port" 8083
  "config" "mcstatbot.worker.config"
  "serviceAccount" (dict "name" (include "mcstatbot.componentName" (dict "ctx" . "component" "worker")))) }}
"""
KINDS = {
    "ConfigMap",
    "ServiceAccount",
    "Deployment",
    "Service",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
}


def test_bot_query_and_watcher_come_from_the_shared_template(kit: Kit) -> None:
    for component in ("bot", "query", "watcher"):
        files = sorted(p.name for p in (kit.chart / "templates" / component).iterdir())
        workload = (kit.chart / "templates" / component / "workload.yaml").read_text()
        assert 'include "mcstatbot.workload"' in workload
        assert "kind:" not in workload  # no object of its own: every one comes from the shared template
        assert set(files) <= {"workload.yaml", "webhook-job.yaml"}, files


def test_another_component_needs_a_values_block_and_one_small_file(kit: Kit, tmp_path: Path) -> None:
    chart = tmp_path / "mcstatbot"
    shutil.copytree(kit.chart, chart)
    (chart / "templates" / "worker").mkdir()
    (chart / "templates" / "worker" / "workload.yaml").write_text(WORKER_TEMPLATE)
    # The values block: the query service's, under its own name (its schema node too: the schema is closed).
    values: dict[str, Any] = yaml.safe_load((chart / "values.yaml").read_text())
    worker = copy.deepcopy(values["query"])
    worker["image"]["repository"] = "mcstatbot-worker"
    (tmp_path / "worker.yaml").write_text(yaml.safe_dump({"worker": worker}))
    schema = json.loads((chart / "values.schema.json").read_text())
    schema["properties"]["worker"] = copy.deepcopy(schema["properties"]["query"])
    (chart / "values.schema.json").write_text(json.dumps(schema))

    result = kit.helm_template(
        "charts/mcstatbot/ci/default-values.yaml", str(tmp_path / "worker.yaml"), chart=chart
    )
    docs = [d for d in kit.load_docs(result.stdout) if d["metadata"]["name"] == "mcstatbot-worker"]
    assert {d["kind"] for d in docs} == KINDS
    assert not kit.validate_strict(docs, "worker")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod = kit.pod_spec(deployment)
    container = pod["containers"][0]
    assert container["image"] == "mcstatbot-worker:0.1.0"
    assert container["ports"] == [{"name": "http", "containerPort": 8083, "protocol": "TCP"}]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["serviceAccountName"] == "mcstatbot-worker"
    assert {e["name"] for e in container["env"]} >= {"OTEL_SERVICE_NAME", "OTEL_TRACES_EXPORTER"}
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    assert config["data"] == {"PORT": "8083", "LOG_LEVEL": "INFO"}
    assert container["envFrom"] == [{"configMapRef": {"name": "mcstatbot-worker"}}]


def test_a_component_may_run_as_an_account_made_elsewhere(kit: Kit, default: Render) -> None:
    """`"serviceAccount" (dict ... "create" false)`: the watcher runs as the bot's, and makes none."""
    names = [sa["metadata"]["name"] for sa in default.of_kind("ServiceAccount")]
    assert "mcstatbot-watcher" not in names
    assert "mcstatbot-bot" in names
    watcher = next(d for d in default.of_kind("Deployment") if d["metadata"]["name"] == "mcstatbot-watcher")
    assert kit.pod_spec(watcher)["serviceAccountName"] == "mcstatbot-bot"
