"""The kind tests' skaffold: v2.19.0 built from its Go module by scripts/kind/toolchain.sh (seconds when it is
in the cache; `make test` builds it in the background before these tests run), and one way to run it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def skaffold() -> Path:
    """The skaffold binary of the kind toolchain (built when missing; seconds when it is in the cache)."""
    built = subprocess.run(
        ["bash", str(ROOT / "scripts" / "kind" / "toolchain.sh")],
        capture_output=True,
        text=True,
        check=False,
        timeout=1700,
    )
    assert built.returncode == 0, built.stderr[-4000:]
    binary = Path(built.stdout.strip().splitlines()[-1]) / "skaffold"
    assert os.access(binary, os.X_OK), binary
    return binary


def run_skaffold(
    skaffold: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """skaffold in the checkout: helm 3 first on PATH (skaffold's helm deployer runs `helm template`), no
    cluster, no telemetry, no update check; `env` on top."""
    full_env = {
        **os.environ,
        "PATH": f"{ROOT / '.tools' / 'bin'}:{os.environ.get('PATH', '')}",
        "KUBECONFIG": str(ROOT / "nonexistent-kubeconfig"),
        "SKAFFOLD_COLLECT_METRICS": "false",
        "SKAFFOLD_UPDATE_CHECK": "false",
        **(env or {}),
    }
    return subprocess.run(
        [str(skaffold), *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
