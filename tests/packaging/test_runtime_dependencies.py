"""What each service's image installs (`uv sync --frozen --no-dev --package mcstatbot-<app>`, as
apps/Dockerfile runs it), read from the lock file by `uv export`: uvicorn's event loop and HTTP parser, not
the rest of its `standard` extra. The reloader (watchfiles) is imported by uvicorn whenever it is installed,
so it is only in the development image's `reload` extra."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
APPS = ("bot", "query", "watcher")


def _installed(app: str, *extras: str) -> set[str]:
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv is not None, "uv runs the tests: `make test` installs it"
    argv = [uv, "export", "--frozen", "--no-dev", "--package", f"mcstatbot-{app}", "--no-hashes"]
    argv += ["--no-emit-workspace", *(f"--extra={extra}" for extra in extras)]
    done = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=True)
    names = {
        match[1].lower()
        for match in re.finditer(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", done.stdout, re.MULTILINE)
    }
    assert "fastapi" in names, done.stdout[:2000]  # the export read the package
    return names


@pytest.mark.parametrize("app", APPS)
def test_the_image_has_uvicorn_fast_parts_and_no_reloader(app: str) -> None:
    installed = _installed(app)
    assert {"uvicorn", "uvloop", "httptools"} <= installed
    assert not {"watchfiles", "websockets"} & installed


@pytest.mark.parametrize("app", APPS)
def test_the_development_image_has_the_reloader(app: str) -> None:
    assert "watchfiles" in _installed(app, "reload")
