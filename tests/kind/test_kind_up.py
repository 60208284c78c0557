"""`make kind-up` refuses to start without what it needs, in one line that says what to do, and makes
nothing (the cluster itself is made, word for word, by the session fixture of tests/kind/conftest.py)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import TYPE_CHECKING

from tests.kind.conftest import EXAMPLE_TOKEN, ROOT

if TYPE_CHECKING:
    from pathlib import Path


# make's own report of the failed recipe ("make: *** ...", "make[1]: *** ..." under `make test`).
MAKES_OWN = re.compile(r"^make(\[\d+\])?: ")


def make_kind_up(env: dict[str, str]) -> list[str]:
    """`make kind-up` (refused: its exit status is not 0); what it wrote but make's own lines."""
    result = subprocess.run(
        ["make", "--no-print-directory", "kind-up"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert result.stdout == ""
    return [line for line in result.stderr.splitlines() if not MAKES_OWN.match(line)]


def test_without_a_token_it_says_where_one_comes_from() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"}
    (line,) = make_kind_up(env)
    assert line.startswith("make kind-up: TELEGRAM_BOT_TOKEN is not set"), line
    assert "@BotFather" in line


def test_without_kind_on_path_it_says_so(tmp_path: Path) -> None:
    # A PATH with make, the shell and the commands the script runs before its check, docker, and no kind.
    for tool in ("make", "bash", "dirname", "docker"):
        found = shutil.which(tool)
        assert found is not None, tool
        (tmp_path / tool).symlink_to(found)
    env = {**os.environ, "TELEGRAM_BOT_TOKEN": EXAMPLE_TOKEN, "PATH": str(tmp_path)}
    (line,) = make_kind_up(env)
    assert line.startswith("make kind-up: kind is not on PATH"), line
