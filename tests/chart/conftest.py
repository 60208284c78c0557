"""Renders the mcstatbot chart and the kustomize overlays once per session for the chart tests.

helm 3 (`.tools/bin/helm`) and helm 4 (`.tools/bin/helm4`) come from scripts/install-test-deps.sh; kubectl
(with kustomize built in) is part of the machine. A missing tool fails the tests with the command that
installs it: nothing here is skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # jsonschema ships no type information
import pytest
import yaml
from kubernetes_validate import utils as kv

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "mcstatbot"
OVERLAYS = ROOT / "k8s" / "overlays"
TOOLS_BIN = ROOT / ".tools" / "bin"
RELEASE = "mcstatbot"
NAMESPACE = "mcstatbot"
# Kinds without a namespace among what the chart, the overlays and skaffold's raw manifests render.
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "APIService", "IngressClass"}

# The values files of the renders every test looks at: name -> values files (relative to the root).
SCENARIOS: dict[str, list[str]] = {
    "default": ["charts/mcstatbot/ci/default-values.yaml"],
    "kind": ["k8s/overlays/kind/app/values.yaml"],
    "eks": ["k8s/overlays/eks/app/values.yaml"],
    "polling": ["charts/mcstatbot/ci/polling-values.yaml"],
}
# kind and eks read the Telegram token from an existing Secret; the others need the token value.
TOKEN = "123456:test-token-not-real"  # noqa: S105 - a made-up token

KUBERNETES_VERSIONS = ["1.29.0", "1.34.0"]
CRD_SCHEMAS = Path(__file__).parent / "crd_schemas"
# Kinds kubernetes-validate cannot know (CustomResourceDefinitions of the Prometheus Operator and of Traefik):
# each is validated against a schema in crd_schemas/ instead. Any other unknown kind or API version fails.
CRD_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule.json",
    ("traefik.io/v1alpha1", "Middleware"): "traefik-middleware.json",
}


def tool(name: str) -> str:
    """The path of a tool from .tools/bin or PATH; fails (never skips) when it is missing."""
    candidate = TOOLS_BIN / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: run `bash scripts/install-test-deps.sh` (or `make test-deps`)")
    return found


def tool_env() -> dict[str, str]:
    """The environment for helm/kubectl: .tools/bin first, so kustomize finds helm v3 as `helm`."""
    env = dict(os.environ)
    env["PATH"] = f"{TOOLS_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def run(args: list[str], *, cwd: Path = ROOT, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, env=tool_env(), capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        pytest.fail(f"`{' '.join(args)}` failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def load_docs(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if isinstance(doc, dict)]


def helm_template(
    *values_files: str,
    sets: dict[str, str] | None = None,
    json_sets: dict[str, str] | None = None,
    chart: Path = CHART,
    helm: str = "helm",
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    args = [tool(helm), "template", RELEASE, str(chart), "--namespace", NAMESPACE]
    for values in values_files:
        args += ["-f", str(ROOT / values)]
    for key, value in (sets or {}).items():
        args += ["--set", f"{key}={value}"]
    for key, value in (json_sets or {}).items():
        args += ["--set-json", f"{key}={value}"]
    return run(args, check=check)


def validate_strict(docs: list[dict[str, Any]], where: str) -> list[str]:
    """kubernetes-validate --strict over each object and version; a WARN (schema not found) is a problem."""
    problems: list[str] = []
    for doc in docs:
        name = f"{where}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        crd_schema = CRD_KINDS.get((doc.get("apiVersion", ""), doc.get("kind", "")))
        if crd_schema is not None:
            schema = json.loads((CRD_SCHEMAS / crd_schema).read_text())
            errors = [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]
            problems += [f"ERROR {name} (CRD schema): {message}" for message in errors]
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kv.validate(doc, version, strict=True)
            except kv.ValidationError as error:
                path = ".".join(str(item) for item in error.path)
                problems.append(f"ERROR {name} against {version}: {path}: {error.message}")
            except (kv.SchemaNotFoundError, kv.InvalidSchemaError) as error:
                problems.append(f"WARN {name} against {version}: {error.message}")
    return problems


@dataclass(frozen=True)
class Render:
    """One rendered scenario: its text and its objects."""

    name: str
    text: str
    docs: list[dict[str, Any]]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.docs if doc.get("kind") == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        for doc in self.of_kind(kind):
            if doc["metadata"]["name"] == name:
                return doc
        names = [doc["metadata"]["name"] for doc in self.of_kind(kind)]
        pytest.fail(f"{self.name}: no {kind} named {name} (have {names})")

    def has(self, kind: str, name: str) -> bool:
        return any(doc["metadata"]["name"] == name for doc in self.of_kind(kind))


def render(
    name: str,
    *values_files: str,
    sets: dict[str, str] | None = None,
    json_sets: dict[str, str] | None = None,
    chart: Path = CHART,
) -> Render:
    """helm template of the values, twice: the same values must render the same bytes (GitOps tools render
    with `helm template` at every sync; a random value would roll pods each time), so every render a test
    asks for checks that too."""
    result = helm_template(*values_files, sets=sets, json_sets=json_sets, chart=chart)
    again = helm_template(*values_files, sets=sets, json_sets=json_sets, chart=chart)
    if again.stdout != result.stdout:
        pytest.fail(f"{name}: two renders of the same values differ (a random or time-dependent value?)")
    return Render(name, result.stdout, load_docs(result.stdout))


def kustomize(overlay: str) -> Render:
    result = run(
        [
            tool("kubectl"),
            "kustomize",
            "--enable-helm",
            "--helm-command",
            tool("helm"),
            "--load-restrictor",
            "LoadRestrictionsNone",
            str(OVERLAYS / overlay),
        ]
    )
    return Render(f"kustomize-{overlay}", result.stdout, load_docs(result.stdout))


@pytest.fixture(scope="session")
def renders() -> dict[str, Render]:
    """helm template of every scenario (with helm 3)."""
    return {name: render(name, *files) for name, files in SCENARIOS.items()}


@pytest.fixture(scope="session")
def overlays() -> dict[str, Render]:
    """kubectl kustomize --enable-helm of both overlays."""
    return {name: kustomize(name) for name in ("kind", "eks")}


@pytest.fixture(scope="session")
def default(renders: dict[str, Render]) -> Render:
    return renders["default"]


def container_env(container: dict[str, Any], render_: Render) -> dict[str, str | None]:
    """A container's environment: envFrom ConfigMaps (their data), then env (values, or None for secrets)."""
    env: dict[str, str | None] = {}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        assert ref is not None, f"unexpected envFrom source {source}"
        env.update(render_.get("ConfigMap", ref["name"])["data"])
    for item in container.get("env", []):
        env[item["name"]] = item.get("value")
    return env


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]
    if workload["kind"] == "Pod":
        return spec
    template_spec: dict[str, Any] = spec["template"]["spec"]
    return template_spec


class Kit:
    """The helpers above, handed to test modules as the `kit` fixture (test files cannot import conftest)."""

    root = ROOT
    chart = CHART
    release = RELEASE
    namespace = NAMESPACE
    scenarios = SCENARIOS
    tool = staticmethod(tool)
    run = staticmethod(run)
    load_docs = staticmethod(load_docs)
    helm_template = staticmethod(helm_template)
    render = staticmethod(render)
    kustomize = staticmethod(kustomize)
    container_env = staticmethod(container_env)
    pod_spec = staticmethod(pod_spec)
    validate_strict = staticmethod(validate_strict)
    kubernetes_versions = KUBERNETES_VERSIONS


@pytest.fixture(scope="session")
def kit() -> Kit:
    return Kit()


def profile(skaffold: dict[str, Any], name: str) -> dict[str, Any]:
    """The profile `name` of a loaded skaffold.yaml."""
    found: dict[str, Any] = next(p for p in skaffold["profiles"] if p["name"] == name)
    return found
