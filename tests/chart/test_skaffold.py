"""skaffold.yaml, checked structurally (skaffold itself cannot be installed here): artifacts and their
Dockerfiles, the chart path, setValueTemplates keys against values.yaml, the kind and eks profiles, file sync.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
IMAGES = {"mcstatbot-bot": "apps/bot/Dockerfile", "mcstatbot-query": "apps/query/Dockerfile"}


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


def profile(skaffold: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(p for p in skaffold["profiles"] if p["name"] == name)
    return found


def check_artifacts(artifacts: list[dict[str, Any]]) -> None:
    assert {a["image"]: a["docker"]["dockerfile"] for a in artifacts} == IMAGES
    for artifact in artifacts:
        assert artifact["context"] == "."  # the Dockerfiles build from the repository root
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
    assert kind["deploy"]["kubectl"]["defaultNamespace"] == "mcstatbot"


def test_kind_file_sync_lands_where_the_dev_image_keeps_sources(skaffold: dict[str, Any]) -> None:
    kind = profile(skaffold, "kind")
    for artifact in kind["build"]["artifacts"]:
        dockerfile = (ROOT / artifact["docker"]["dockerfile"]).read_text()
        dev_stage = dockerfile.split(" AS dev", 1)[1].split("\nFROM ", 1)[0]
        builder = dockerfile.split(" AS dev", 1)[0]
        assert "uv sync" in dev_stage
        assert "--no-editable" not in dev_stage  # sources stay where sync writes them
        assert "WORKDIR /app" in builder
        for rule in artifact["sync"]["manual"]:
            matches = list(ROOT.glob(rule["src"]))
            assert matches, f"{rule['src']} matches no file"
            assert rule["dest"] == "/app"
            top = rule["src"].split("/src/", 1)[0]  # e.g. apps/bot: copied to /app/apps/bot in the image
            assert f"COPY {top} {top}" in builder, top
            assert f"/app/{top}/src" in dev_stage or top == "packages/common"


def test_eks_profile(skaffold: dict[str, Any], values: dict[str, Any]) -> None:
    eks = profile(skaffold, "eks")
    assert eks["build"]["local"]["push"] is True
    check_releases(eks["deploy"]["helm"]["releases"], values)
    assert eks["deploy"]["helm"]["releases"][0]["valuesFiles"] == ["k8s/overlays/eks/app/values.yaml"]
