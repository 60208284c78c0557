"""A private Docker engine and a debootstrapped Python base image for the image tests.

No image can be pulled on the test machines, so the `python:3.12-slim` base of the Dockerfiles is replaced
by a stand-in: Debian bookworm from `debootstrap --variant=minbase` with Debian's python3 and python3-venv
(`python` linked to python3), imported with `docker import`. Its root filesystem tarball is cached in
`.tools/images/` (debootstrap takes about a minute). The stand-in trusts the host's CA bundle, so `pip` and
`uv` in the builder stage reach PyPI through the same TLS setup the host uses.

The engine is our own dockerd (root needed) with its own data root, exec root and socket in a temporary
directory, no bridge and no iptables rules; it is stopped and its directory removed afterwards. When Docker
cannot run here the tests FAIL with the reason: they never skip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".tools" / "images"
BASE_TARBALL = CACHE / "debian-bookworm-minbase-python3.tar"
BASE_IMAGE = "mcstatbot-test/python:bookworm"
MIRROR = os.environ.get("MCSTATBOT_DEBIAN_MIRROR", "http://deb.debian.org/debian")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
STAND_IN_DOCKERFILE = """\
FROM mcstatbot-test/debian-minbase:bookworm
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV LANG=C.UTF-8 \\
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \\
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt
CMD ["python"]
"""


def need(condition: bool, reason: str) -> None:
    if not condition:
        pytest.fail(f"the image tests cannot run: {reason}")


def docker_cli() -> str:
    # The Debian docker.io client matches the Debian dockerd the tests start.
    for candidate in ("/usr/bin/docker", shutil.which("docker")):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail(
        "the image tests cannot run: no docker client (install docker.io: scripts/install-test-deps.sh)"
    )


def run_checked(
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: Path = ROOT,
    timeout: float,
    check: bool = True,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `argv` with its output captured; with `check`, a non-zero exit fails the test with that output."""
    result = subprocess.run(
        argv, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        name = Path(argv[0]).name
        pytest.fail(
            f"`{' '.join([name, *argv[1:]])}` failed ({result.returncode}):\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


@dataclass
class DockerEngine:
    """Our own dockerd; `docker(...)` runs the client against it."""

    workdir: Path
    process: subprocess.Popen[bytes]
    client: str
    log: Path

    @property
    def host(self) -> str:
        return f"unix://{self.workdir / 'docker.sock'}"

    def docker(
        self, *args: str, check: bool = True, timeout: float = 900, cwd: Path = ROOT
    ) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "DOCKER_HOST": self.host,
            "DOCKER_BUILDKIT": "1",  # built-in BuildKit: skips the unused `dev` stage
            "DOCKER_CONFIG": str(self.workdir / "cli"),
        }
        return run_checked([self.client, *args], env=env, cwd=cwd, timeout=timeout, check=check)


def start_engine(workdir: Path) -> DockerEngine:
    need(os.geteuid() == 0, "dockerd needs root and this test run is not root")
    dockerd = shutil.which("dockerd", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    need(dockerd is not None, "dockerd is missing (install docker.io: scripts/install-test-deps.sh)")
    assert dockerd is not None
    log = workdir / "dockerd.log"
    args = [
        dockerd,
        "--bridge=none",
        "--iptables=false",
        "--ip6tables=false",
        "--ip-masq=false",
        # Never share state with a system Docker that may use the same containerd.
        "--containerd-namespace=mcstatbot-test",
        "--containerd-plugins-namespace=mcstatbot-test-plugins",
        f"--data-root={workdir / 'data'}",
        f"--exec-root={workdir / 'exec'}",
        f"--pidfile={workdir / 'docker.pid'}",
        f"--host=unix://{workdir / 'docker.sock'}",
        "--log-level=warn",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    engine = DockerEngine(workdir, process, docker_cli(), log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"the image tests cannot run: dockerd exited ({process.returncode}):\n"
                f"{log.read_text()[-3000:]}"
            )
        if engine.docker("version", check=False, timeout=10).returncode == 0:
            return engine
        time.sleep(0.5)
    stop_engine(engine)
    pytest.fail(f"the image tests cannot run: dockerd did not answer within 60 s:\n{log.read_text()[-3000:]}")


def stop_engine(engine: DockerEngine) -> None:
    with contextlib.suppress(Exception):
        running = engine.docker("ps", "-aq", check=False, timeout=30).stdout.split()
        if running:
            engine.docker("rm", "-f", *running, check=False, timeout=60)
    if engine.process.poll() is None:
        engine.process.send_signal(signal.SIGTERM)
        try:
            engine.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(engine.process.pid, signal.SIGKILL)
            engine.process.wait(timeout=10)
    remove_workdir(engine.workdir)


def remove_workdir(workdir: Path) -> None:
    """An engine's folder, after its dockerd stopped: dockerd unmounts its layers on shutdown, so what is
    left mounted under it (deepest first) is unmounted, then the folder removed."""
    mounts = [
        line.split()[1]
        for line in Path("/proc/self/mounts").read_text().splitlines()
        if line.split()[1] == str(workdir) or line.split()[1].startswith(f"{workdir}/")
    ]
    for mount in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
    # Gigabytes of layers take minutes to delete on a busy disk, past a test's time limit when this runs in
    # the session's last teardown: the folder is renamed away at once and deleted by a detached `rm -rf`
    # (a run killed before it ends leaves a `mcsb-docker-*` folder without a dockerd, which the next run's
    # sweep removes).
    doomed = workdir.with_name(f"{workdir.name}.removing")
    try:
        workdir.rename(doomed)
    except OSError:
        shutil.rmtree(workdir, ignore_errors=True)
        return
    subprocess.Popen(
        ["rm", "-rf", "--one-file-system", str(doomed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def sweep_stale_engines(root: Path = Path("/tmp")) -> list[Path]:  # noqa: S108 - where the engines live
    """Remove the folders of engines whose dockerd is gone (a test run killed hard leaves its folder, a
    bind mount and gigabytes of layers); an engine still running (another checkout's run) is left alone.
    Returns the folders removed."""
    removed: list[Path] = []
    for workdir in sorted(root.glob("mcsb-docker-*")):
        pid_file = workdir / "docker.pid"
        with contextlib.suppress(OSError, ValueError):
            cmdline = Path(f"/proc/{int(pid_file.read_text())}/cmdline").read_bytes()
            if b"dockerd" in cmdline:
                continue
        remove_workdir(workdir)
        removed.append(workdir)
    return removed


def base_tarball(workdir: Path) -> Path:
    """The debootstrapped root filesystem as a tarball, built once and cached under .tools/images/."""
    if BASE_TARBALL.is_file():
        return BASE_TARBALL
    debootstrap = shutil.which("debootstrap") or (
        "/usr/sbin/debootstrap" if Path("/usr/sbin/debootstrap").exists() else None
    )
    need(debootstrap is not None, "debootstrap is missing (scripts/install-test-deps.sh installs it)")
    assert debootstrap is not None
    rootfs = workdir / "rootfs"
    result = subprocess.run(
        [
            debootstrap,
            "--variant=minbase",
            "--include=python3,python3-venv,ca-certificates",
            "bookworm",
            str(rootfs),
            MIRROR,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    need(result.returncode == 0, f"debootstrap failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    (rootfs / "usr" / "bin" / "python").symlink_to("python3")
    for cache in (rootfs / "var" / "cache" / "apt" / "archives", rootfs / "var" / "lib" / "apt" / "lists"):
        for item in cache.glob("*"):
            if item.is_file():
                item.unlink()
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = BASE_TARBALL.with_suffix(".partial")
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], check=True)
    partial.rename(BASE_TARBALL)
    shutil.rmtree(rootfs, ignore_errors=True)
    return BASE_TARBALL


@pytest.fixture(scope="session")
def engine() -> Iterator[DockerEngine]:
    # A short path: the socket path must stay under the 108-byte limit of unix sockets.
    sweep_stale_engines()
    workdir = Path(tempfile.mkdtemp(prefix="mcsb-docker-", dir="/tmp"))
    engine = start_engine(workdir)
    try:
        yield engine
    finally:
        stop_engine(engine)


def build_base_image(docker: Callable[..., object], workdir: Path) -> str:
    """The python:3.12-slim stand-in built into an engine (`docker(*args)` runs its client; `workdir` holds
    the build context): debootstrapped bookworm + python3/venv, trusting the host's CAs."""
    tarball = base_tarball(workdir)
    docker("import", str(tarball), "mcstatbot-test/debian-minbase:bookworm")
    context = workdir / "base-context"
    context.mkdir()
    shutil.copy(HOST_CA_BUNDLE, context / "ca-certificates.crt")
    (context / "Dockerfile").write_text(STAND_IN_DOCKERFILE)
    docker("build", "--network", "host", "-t", BASE_IMAGE, str(context))
    return BASE_IMAGE


@pytest.fixture(scope="session")
def base_image(engine: DockerEngine) -> str:
    """The python:3.12-slim stand-in in the image tests' engine."""
    return build_base_image(engine.docker, engine.workdir)
