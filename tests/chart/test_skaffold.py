"""skaffold.yaml, checked structurally (skaffold itself cannot be installed here): artifacts and their
Dockerfiles, the chart path, setValueTemplates keys against values.yaml, the kind and eks profiles, file sync.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.conftest import CLUSTER_SCOPED, profile

ROOT = Path(__file__).resolve().parents[2]
# One Dockerfile for the three images; the build argument APP picks the service.
IMAGES = {
    "mcstatbot-bot": "apps/Dockerfile",
    "mcstatbot-query": "apps/Dockerfile",
    "mcstatbot-watcher": "apps/Dockerfile",
}


@pytest.fixture(scope="module")
def skaffold() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    return loaded


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "charts/mcstatbot/values.yaml").read_text())
    return loaded


def has_key(values: dict[str, Any], dotted: str) -> bool:
    node: Any = values
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def check_artifacts(artifacts: list[dict[str, Any]]) -> None:
    assert {a["image"]: a["docker"]["dockerfile"] for a in artifacts} == IMAGES
    for artifact in artifacts:
        assert artifact["context"] == "."  # the Dockerfile builds from the repository root
        assert artifact["docker"]["buildArgs"] == {"APP": artifact["image"].removeprefix("mcstatbot-")}
        dockerfile = (ROOT / artifact["docker"]["dockerfile"]).read_text()
        assert "ARG BASE_IMAGE=python:3.12-slim" in dockerfile
        target = artifact["docker"].get("target")
        if target is not None:
            assert re.search(rf"^FROM \S+ AS {target}$", dockerfile, re.MULTILINE), target


def check_releases(releases: list[dict[str, Any]], values: dict[str, Any]) -> None:
    assert len(releases) == 1
    release = releases[0]
    assert release["name"] == "mcstatbot"
    assert (ROOT / release["chartPath"] / "Chart.yaml").is_file()
    templates = release["setValueTemplates"]
    for image in IMAGES:
        component = image.removeprefix("mcstatbot-")
        key = image.replace("-", "_")  # skaffold's template names replace non-alphanumerics with _
        assert templates[f"{component}.image.repository"] == f"{{{{.IMAGE_REPO_{key}}}}}"
        assert templates[f"{component}.image.tag"] == f"{{{{.IMAGE_TAG_{key}}}}}"
    for dotted in [*templates, *release.get("setValues", {})]:
        assert has_key(values, dotted), f"skaffold sets {dotted}, which values.yaml does not have"
    for values_file in release.get("valuesFiles", []):
        assert (ROOT / values_file).is_file(), values_file


def test_schema_version_and_default_pipeline(skaffold: dict[str, Any], values: dict[str, Any]) -> None:
    api = re.fullmatch(r"skaffold/v4beta(\d+)", skaffold["apiVersion"])
    assert api is not None
    assert int(api.group(1)) >= 11
    assert skaffold["kind"] == "Config"
    check_artifacts(skaffold["build"]["artifacts"])
    check_releases(skaffold["deploy"]["helm"]["releases"], values)


def test_kind_profile(skaffold: dict[str, Any], values: dict[str, Any]) -> None:
    kind = profile(skaffold, "kind")
    context = re.compile(kind["activation"][0]["kubeContext"])
    assert context.fullmatch("kind-mcstatbot")
    assert not context.fullmatch("arn:aws:eks:eu-west-1:123456789012:cluster/prod")
    assert kind["build"]["local"]["push"] is False  # kind loads images, no registry
    check_artifacts(kind["build"]["artifacts"])
    check_releases(kind["deploy"]["helm"]["releases"], values)
    assert kind["deploy"]["helm"]["releases"][0]["valuesFiles"] == ["k8s/overlays/kind/app/values.yaml"]
    for manifest in kind["manifests"]["rawYaml"]:
        assert (ROOT / manifest).is_file(), manifest


def kustomize_resources(directory: Path) -> list[Path]:
    """The files a kustomization lists (its `resources`), directories followed to their own."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    files: list[Path] = []
    for resource in kustomization["resources"]:
        path = (directory / resource).resolve()
        files += kustomize_resources(path) if path.is_dir() else [path]
    return files


def test_kind_profile_deploys_the_kind_overlays_components(skaffold: dict[str, Any]) -> None:
    """skaffold's raw manifests are the kind overlay's components (metrics-server, Traefik, DynamoDB
    Local): all of them, nothing else. The overlay's namespace.yaml is left out on purpose: `skaffold dev`
    deletes what it applied when it stops, and the namespace holds the Telegram Secret the user created."""
    overlay = ROOT / "k8s" / "overlays" / "kind"
    components = [
        resource
        for resource in yaml.safe_load((overlay / "kustomization.yaml").read_text())["resources"]
        if resource not in {"namespace.yaml", "app"}  # app/ is the Helm release
    ]
    assert "../../kind/traefik" in components
    assert "../../kind/metrics-server" in components
    expected = {
        str(path.relative_to(ROOT))
        for component in components
        for path in kustomize_resources(overlay / component)
    }
    assert set(profile(skaffold, "kind")["manifests"]["rawYaml"]) == expected


def test_kind_raw_manifests_name_their_namespaces(skaffold: dict[str, Any]) -> None:
    """skaffold passes a kubectl deployer's defaultNamespace as `kubectl --namespace`, and kubectl then
    refuses every object of another namespace (metrics-server lives in kube-system, Traefik in
    traefik). So there is none, and every namespaced object says where it goes."""
    kind = profile(skaffold, "kind")
    assert "defaultNamespace" not in (kind["deploy"]["kubectl"] or {})
    namespaces = set()
    for manifest in kind["manifests"]["rawYaml"]:
        for doc in yaml.safe_load_all((ROOT / manifest).read_text()):
            if doc is None or doc["kind"] in CLUSTER_SCOPED:
                continue
            assert doc["metadata"].get("namespace"), f"{manifest}: {doc['kind']}/{doc['metadata']['name']}"
            namespaces.add(doc["metadata"]["namespace"])
    assert namespaces == {"mcstatbot", "kube-system", "traefik"}


def stages(dockerfile: str, app: str) -> dict[str, tuple[str, str]]:
    """The Dockerfile's named stages, `${APP}` replaced by `app`: name -> (base, body)."""
    found: dict[str, tuple[str, str]] = {}
    for chunk in dockerfile.replace("${APP}", app).split("\nFROM ")[1:]:
        head, _, body = chunk.partition("\n")
        match = re.fullmatch(r"(\S+)(?: AS (\S+))?", head)
        assert match is not None, head
        if match.group(2):
            found[match.group(2)] = (match.group(1), body)
    return found


def stage_text(dockerfile: str, app: str, target: str, until: str) -> str:
    """The bodies of `target` and the stages it is built on, up to (without) the stage `until`."""
    named = stages(dockerfile, app)
    text = ""
    while target != until:
        base, body = named[target]
        text += body
        target = base
    return text


def test_kind_file_sync_lands_where_the_dev_image_keeps_sources(skaffold: dict[str, Any]) -> None:
    kind = profile(skaffold, "kind")
    for artifact in kind["build"]["artifacts"]:
        dockerfile = (ROOT / artifact["docker"]["dockerfile"]).read_text()
        app = artifact["docker"]["buildArgs"]["APP"]
        dev_stage = stage_text(dockerfile, app, artifact["docker"]["target"], until="builder")
        builder = stages(dockerfile, app)["builder"][1]
        assert "uv sync" in dev_stage
        assert "--no-editable" not in dev_stage  # sources stay where sync writes them
        assert "WORKDIR /app" in builder
        for rule in artifact["sync"]["manual"]:
            matches = list(ROOT.glob(rule["src"]))
            assert matches, f"{rule['src']} matches no file"
            assert rule["dest"] == "/app"
            top = rule["src"].split("/src/", 1)[0]  # e.g. apps/bot: copied to /app/apps/bot in the image
            assert f"COPY {top} {top}" in builder, top
            # Watched where the service runs it; the bot's sources in the query image are synced only so that
            # a bot edit does not rebuild that image (the query service does not run them).
            unused = app == "query" and top == "apps/bot"
            assert f"/app/{top}/src" in dev_stage or top == "packages/common" or unused


def test_eks_profile(skaffold: dict[str, Any], values: dict[str, Any]) -> None:
    eks = profile(skaffold, "eks")
    assert eks["build"]["local"]["push"] is True
    check_releases(eks["deploy"]["helm"]["releases"], values)
    assert eks["deploy"]["helm"]["releases"][0]["valuesFiles"] == ["k8s/overlays/eks/app/values.yaml"]
