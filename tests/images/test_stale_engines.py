"""The image tests' private dockerd leaves nothing behind a run that was killed hard: the next run removes
the folder (with its bind mount) of an engine whose dockerd is gone, and leaves a running one alone."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.images.conftest import remove_workdir, sweep_stale_engines


def _engine_folder(root: Path) -> Path:
    workdir = Path(tempfile.mkdtemp(prefix="mcsb-docker-", dir=root))
    (workdir / "data").mkdir()
    return workdir


def test_a_dead_engines_folder_is_removed_and_a_live_one_kept(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("this test needs root (mount)")
    dead = _engine_folder(tmp_path)
    # as dockerd leaves it when killed: its data root bind-mounted, a pid file naming a process long gone
    subprocess.run(["mount", "--bind", str(dead / "data"), str(dead / "data")], check=True, timeout=30)
    (dead / "docker.pid").write_text("999999999")
    live = _engine_folder(tmp_path)
    dockerd = subprocess.Popen(["bash", "-c", "exec -a dockerd sleep 600"], start_new_session=True)
    try:
        # a live engine is one whose dockerd runs: wait until bash has exec'd it (while an exec is under
        # way the process's command line can read empty, and the folder would count as dead)
        cmdline = Path(f"/proc/{dockerd.pid}/cmdline")
        deadline = time.monotonic() + 10
        while not cmdline.read_bytes().startswith(b"dockerd\0") and time.monotonic() < deadline:
            time.sleep(0.01)
        (live / "docker.pid").write_text(str(dockerd.pid))
        assert sweep_stale_engines(tmp_path) == [dead]
        assert not dead.exists()
        assert live.is_dir()
        assert f" {dead}/" not in Path("/proc/self/mounts").read_text()
    finally:
        os.killpg(dockerd.pid, signal.SIGKILL)
        dockerd.wait(timeout=10)
        subprocess.run(["umount", "-l", str(dead / "data")], check=False, capture_output=True)


def test_an_engines_folder_is_gone_at_once_and_deleted_soon_after(tmp_path: Path) -> None:
    workdir = _engine_folder(tmp_path)
    for index in range(200):
        (workdir / "data" / f"layer{index}").write_bytes(b"x" * 4096)
    remove_workdir(workdir)
    assert not workdir.exists()
    deadline = time.monotonic() + 60
    while list(tmp_path.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(tmp_path.iterdir()) == []
