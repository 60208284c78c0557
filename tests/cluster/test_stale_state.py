"""`cluster.sh down` removes what a killed run left behind, so the next run can start.

A run killed hard (the machine stopped, `kill -9` on the test run) leaves the state folder, the network
namespace and the processes in it, with a containerd socket that no containerd answers any more. The test
fixture's first step is `down` on exactly that; it must clean up and succeed, not stop at the dead socket.
This builds such leftovers for a cluster of its own (`stale`, link subnet 10.213.9.0/30), without starting
one, so it runs beside the test cluster.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.cluster.conftest import _kernel_settings, cluster_script, leftovers

NAME, INDEX = "stale", "9"
STATE = Path(f"/tmp/mcsb-{NAME}")  # noqa: S108 - as cluster.sh names it


def test_down_removes_what_a_killed_run_left(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("this test needs root (network namespace)")
    settings = _kernel_settings()
    subprocess.run(["ip", "netns", "add", f"mcsb-{NAME}"], check=True, timeout=30)
    (STATE / "pids").mkdir(parents=True)
    (STATE / "log").mkdir()
    # The toolchain cache it ran from, and the socket of a containerd that is gone.
    (STATE / "cache").write_text(str(tmp_path))
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(STATE / "containerd.sock"))
    dead.close()
    # A process that survived in the namespace, its parent gone (as a kubelet of a killed run would be).
    started = subprocess.run(
        ["bash", "-c", f"setsid ip netns exec mcsb-{NAME} sleep 600 >/dev/null 2>&1 </dev/null & echo $!"],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    survivor = int(started.stdout)
    (STATE / "pids" / "kubelet").write_text(f"{survivor}\n")
    # A mount under the state folder (as a container's root filesystem).
    rootfs = STATE / "containerd" / "rootfs"
    rootfs.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(rootfs)], check=True, timeout=30)
    try:
        down = cluster_script("down", timeout=180, name=NAME, index=INDEX)
        assert down.returncode == 0, down.stderr
        assert not Path(f"/proc/{survivor}").exists(), "the process in the namespace was not stopped"
        assert leftovers(settings, NAME, INDEX) == []
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(survivor, signal.SIGKILL)
        subprocess.run(["umount", "-l", str(rootfs)], check=False, timeout=30)
        subprocess.run(["ip", "netns", "del", f"mcsb-{NAME}"], check=False, timeout=30)
        subprocess.run(["rm", "-rf", str(STATE)], check=False, timeout=30)
