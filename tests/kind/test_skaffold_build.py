"""`skaffold build -p kind` for real: skaffold v2.19.0 built here (scripts/kind/toolchain.sh) builds the three
images of the kind profile (the Dockerfile's `dev` stage) into a Docker engine, with no registry (the
profile's `push: false`), and says which tags it built.

The engine and the python:3.12-slim stand-in are the image tests' (tests/images/conftest.py: our own dockerd,
a debootstrapped base), so skaffold reads a copy of skaffold.yaml in which only what this machine needs is
changed: the stand-in as BASE_IMAGE, the host's network for the builder stage (the engine has no bridge), and
the build context as an absolute path (the copy lives in the engine's folder).
Everything else of the kind profile (artifacts, target, tag policy, sync rules) is skaffold.yaml's own.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.chart.conftest import profile
from tests.images.conftest import base_image, engine  # noqa: F401 - the image tests' fixtures
from tests.kind.conftest import run_skaffold

if TYPE_CHECKING:
    from tests.images.conftest import DockerEngine

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = {"mcstatbot-bot": "bot", "mcstatbot-query": "query", "mcstatbot-watcher": "watcher"}

pytestmark = pytest.mark.timeout(2400)


def config_for_this_machine(workdir: Path, base: str) -> Path:
    """A copy of skaffold.yaml in `workdir`: its kind artifacts given the stand-in base, the host network and
    their context as an absolute path (the copy's own folder is not the checkout)."""
    config = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    for artifact in profile(config, "kind")["build"]["artifacts"]:
        artifact["context"] = str(ROOT / artifact["context"])
        artifact["docker"]["buildArgs"]["BASE_IMAGE"] = base
        artifact["docker"]["network"] = "host"
    path = workdir / "skaffold.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def built(
    skaffold: Path,
    engine: DockerEngine,  # noqa: F811
    base_image: str,  # noqa: F811
) -> dict[str, Any]:
    config = config_for_this_machine(engine.workdir, base_image)
    output = engine.workdir / "skaffold-build.json"
    env = {
        "DOCKER_HOST": engine.host,
        "DOCKER_CONFIG": str(engine.workdir / "cli"),
        "PATH": f"{Path(engine.client).parent}:{os.environ.get('PATH', '')}",
    }
    result = run_skaffold(
        skaffold,
        "build",
        "-f",
        str(config),
        "-p",
        "kind",
        "--file-output",
        str(output),
        env=env,
        timeout=2000,
    )
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    loaded: dict[str, Any] = json.loads(output.read_text())
    return loaded


def sync_dirs(artifact: dict[str, Any]) -> list[str]:
    """The folders in the image that the artifact's sync rules write into (`src` glob under `dest`)."""
    dirs = []
    for rule in artifact["sync"]["manual"]:
        assert rule["src"].endswith("/**/*.py"), rule
        dirs.append(f"{rule['dest']}/{rule['src'].removesuffix('/**/*.py')}")
    return dirs


def test_skaffold_builds_the_three_dev_images_without_a_registry(
    built: dict[str, Any],
    engine: DockerEngine,  # noqa: F811
) -> None:
    tags = {b["imageName"]: b["tag"] for b in built["builds"]}
    assert set(tags) == set(ARTIFACTS)
    artifacts = {
        a["image"]: a
        for a in profile(yaml.safe_load((ROOT / "skaffold.yaml").read_text()), "kind")["build"]["artifacts"]
    }
    for name, app in ARTIFACTS.items():
        # A local tag (no registry, no digest from a push), present in the engine.
        assert tags[name].startswith(f"{name}:"), tags[name]
        assert "@sha256:" not in tags[name], tags[name]
        config = json.loads(engine.docker("image", "inspect", tags[name]).stdout)[0]["Config"]
        # The `dev` stage: watchfiles runs the service and restarts it on a change in the synced folders.
        entrypoint: list[str] = config["Entrypoint"]
        assert entrypoint[0] == "watchfiles", entrypoint
        assert f"mcstatbot-{app}" in entrypoint, entrypoint
        assert config["User"] == "10001:10001"
        for folder in sync_dirs(artifacts[name]):
            assert folder in entrypoint, (folder, entrypoint)
            # skaffold's sync writes there as the app user: the folder is its own.
            owner = engine.docker(
                "run", "--rm", "--network", "none", "--entrypoint", "stat", tags[name], "-c", "%u", folder
            )
            assert owner.stdout.strip() == "10001", (folder, owner.stdout)
