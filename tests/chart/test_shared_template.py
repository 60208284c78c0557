"""The workload template (templates/_workload.tpl) is shared: bot and query are two calls of it, and a third
component (the watcher to come) needs only a values block and a small file that calls it.
"""

from __future__ import annotations

import copy
import json
import shutil
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from pathlib import Path

    from tests.chart.conftest import Kit

WATCHER_TEMPLATE = """\
{{- define "mcstatbot.watcher.config" -}}
PORT: "8082"
LOG_LEVEL: {{ .Values.watcher.logLevel | quote }}
{{- end -}}
{{- include "mcstatbot.workload" (dict "ctx" . "component" "watcher" "port" 8082
  "config" "mcstatbot.watcher.config"
  "serviceAccount" (dict "name" (include "mcstatbot.componentName" (dict "ctx" . "component" "watcher")))) }}
"""
KINDS = {
    "ConfigMap",
    "ServiceAccount",
    "Deployment",
    "Service",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
}


def test_bot_and_query_come_from_the_shared_template(kit: Kit) -> None:
    for component in ("bot", "query"):
        files = sorted(p.name for p in (kit.chart / "templates" / component).iterdir())
        workload = (kit.chart / "templates" / component / "workload.yaml").read_text()
        assert 'include "mcstatbot.workload"' in workload
        assert "kind:" not in workload  # no object of its own: every one comes from the shared template
        assert set(files) <= {"workload.yaml", "webhook-job.yaml"}, files


def test_a_third_component_needs_a_values_block_and_one_small_file(kit: Kit, tmp_path: Path) -> None:
    chart = tmp_path / "mcstatbot"
    shutil.copytree(kit.chart, chart)
    (chart / "templates" / "watcher").mkdir()
    (chart / "templates" / "watcher" / "workload.yaml").write_text(WATCHER_TEMPLATE)
    # The values block: the query service's, under its own name (its schema node too: the schema is closed).
    values: dict[str, Any] = yaml.safe_load((chart / "values.yaml").read_text())
    watcher = copy.deepcopy(values["query"])
    watcher["image"]["repository"] = "mcstatbot-watcher"
    (tmp_path / "watcher.yaml").write_text(yaml.safe_dump({"watcher": watcher}))
    schema = json.loads((chart / "values.schema.json").read_text())
    schema["properties"]["watcher"] = copy.deepcopy(schema["properties"]["query"])
    (chart / "values.schema.json").write_text(json.dumps(schema))

    result = kit.helm_template(
        "charts/mcstatbot/ci/default-values.yaml", str(tmp_path / "watcher.yaml"), chart=chart
    )
    docs = [d for d in kit.load_docs(result.stdout) if d["metadata"]["name"] == "mcstatbot-watcher"]
    assert {d["kind"] for d in docs} == KINDS
    assert not kit.validate_strict(docs, "watcher")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod = kit.pod_spec(deployment)
    container = pod["containers"][0]
    assert container["image"] == "mcstatbot-watcher:0.1.0"
    assert container["ports"] == [{"name": "http", "containerPort": 8082, "protocol": "TCP"}]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["serviceAccountName"] == "mcstatbot-watcher"
    assert {e["name"] for e in container["env"]} >= {"OTEL_SERVICE_NAME", "OTEL_TRACES_EXPORTER"}
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    assert config["data"] == {"PORT": "8082", "LOG_LEVEL": "INFO"}
    assert container["envFrom"] == [{"configMapRef": {"name": "mcstatbot-watcher"}}]
