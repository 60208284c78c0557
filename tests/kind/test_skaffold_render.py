"""skaffold.yaml's kind profile read by a real skaffold: `skaffold render -p kind` with skaffold v2.19.0 built
from its Go module here (scripts/kind/toolchain.sh, which `make test` builds in the background beside the
cluster toolchain), offline (no cluster, no registry, no image build: `--digest-source=tag`).

What skaffold would deploy on kind is the kind overlay (k8s/overlays/kind, rendered by kustomize) object for
object, but the namespace (left to the developer: it holds the Telegram Secret) and the chart's `helm test`
hook (which `helm install` does not create); the three Deployments run the images skaffold builds, and the
file-sync values (a writable root filesystem) are applied. tests/chart/test_skaffold.py checks the file's
structure; tests/kind/test_kind.py runs the kind path on a real kind cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.chart.conftest import CLUSTER_SCOPED, kustomize
from tests.kind.conftest import run_skaffold

if TYPE_CHECKING:
    import subprocess

ROOT = Path(__file__).resolve().parents[2]
PRODUCT_NAMESPACE = "mcstatbot"
ARTIFACTS = {"mcstatbot-bot", "mcstatbot-query", "mcstatbot-watcher"}

pytestmark = pytest.mark.timeout(1800)


def render(skaffold: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_skaffold(skaffold, "render", "--offline=true", "--digest-source=tag", *args, env=env)


@pytest.fixture(scope="module")
def rendered(skaffold: Path) -> list[dict[str, Any]]:
    result = render(skaffold, "-p", "kind")
    assert result.returncode == 0, result.stderr[-4000:]
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def identity(doc: dict[str, Any]) -> tuple[str, str | None, str]:
    """kind, namespace, name; a namespaced object without one is the Helm release's (namespace mcstatbot)."""
    meta = doc["metadata"]
    namespace = None if doc["kind"] in CLUSTER_SCOPED else meta.get("namespace", PRODUCT_NAMESPACE)
    return doc["kind"], namespace, meta["name"]


def is_hook(doc: dict[str, Any]) -> bool:
    return "helm.sh/hook" in (doc["metadata"].get("annotations") or {})


def test_skaffold_deploys_the_kind_overlay_object_for_object(rendered: list[dict[str, Any]]) -> None:
    overlay = {identity(doc) for doc in kustomize("kind").docs}
    deployed = {identity(doc) for doc in rendered if not is_hook(doc)}
    assert overlay - deployed == {("Namespace", None, PRODUCT_NAMESPACE)}
    assert deployed - overlay == set()
    # The hooks are the chart's `helm test` Pod only (kustomize leaves tests out: skipTests).
    assert {identity(doc) for doc in rendered if is_hook(doc)} == {
        ("Pod", PRODUCT_NAMESPACE, "mcstatbot-helm-test")
    }
    assert ("Deployment", "traefik", "traefik") in deployed


def test_rendering_writes_nothing_into_the_checkout(rendered: list[dict[str, Any]]) -> None:
    """The chart's redis subchart is unpacked already: skaffold builds no dependency (no Chart.lock, no
    packed subchart beside the unpacked one, which helm would then load twice)."""
    assert rendered
    chart = ROOT / "charts" / "mcstatbot"
    assert not (chart / "Chart.lock").exists()
    assert not list((chart / "charts").glob("*.tgz"))


def test_the_deployments_run_skaffolds_images_with_a_writable_root(rendered: list[dict[str, Any]]) -> None:
    deployments = {d["metadata"]["name"]: d for d in rendered if d["kind"] == "Deployment"}
    for name in ARTIFACTS:
        pod = deployments[name]["spec"]["template"]["spec"]
        images = {c["image"] for c in pod["containers"]}
        # The artifact's image with the tag of skaffold's tag policy (`latest` when nothing was built).
        assert images == {f"{name}:latest"}, images
        for item in pod["containers"]:
            # File sync writes into the container (skaffold.yaml's setValues for the kind profile).
            assert item["securityContext"]["readOnlyRootFilesystem"] is False, name
    ingress = next(d for d in rendered if d["kind"] == "Ingress")
    assert ingress["spec"]["ingressClassName"] == "traefik"


def test_an_unknown_profile_is_refused(skaffold: Path) -> None:
    """The same command with a profile skaffold.yaml does not have fails, and says which."""
    result = render(skaffold, "-p", "no-such-profile")
    assert result.returncode != 0
    assert "no-such-profile" in result.stderr


def api_base_urls(docs: list[dict[str, Any]]) -> dict[str, str]:
    """TELEGRAM_API_BASE_URL of each ConfigMap that sets it (the bot's and the watcher's)."""
    return {
        d["metadata"]["name"]: d["data"]["TELEGRAM_API_BASE_URL"]
        for d in docs
        if d["kind"] == "ConfigMap" and "TELEGRAM_API_BASE_URL" in (d.get("data") or {})
    }


def test_telegram_api_base_url_from_the_environment_points_the_kind_release_at_a_bot_api_server(
    skaffold: Path, rendered: list[dict[str, Any]]
) -> None:
    """The kind profile passes TELEGRAM_API_BASE_URL (as `make run` reads it) to `telegram.apiBaseUrl`:
    Telegram's own without it, the given server with it."""
    assert api_base_urls(rendered) == {
        "mcstatbot-bot": "https://api.telegram.org",
        "mcstatbot-watcher": "https://api.telegram.org",
    }
    own = "http://bot-api.example.test:8081"
    result = render(skaffold, "-p", "kind", env={"TELEGRAM_API_BASE_URL": own})
    assert result.returncode == 0, result.stderr[-4000:]
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert api_base_urls(docs) == {"mcstatbot-bot": own, "mcstatbot-watcher": own}
