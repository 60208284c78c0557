"""Run `wrk` (the Debian package) against one URL and read its summary as JSON (see wrk_report.lua)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LUA_SCRIPT = Path(__file__).with_name("wrk_report.lua")


class WrkError(RuntimeError):
    pass


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    errors: dict[str, int]
    latency_us: dict[str, float]
    cache: dict[str, Any]

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "duration_s": self.duration_s,
            "rps": self.rps,
            "errors": self.errors,
            "latency_ms": {key: value / 1000 for key, value in self.latency_us.items()},
            "cache": self.cache,
        }


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def pinned(argv: list[str], cpus: str | None) -> list[str]:
    """`argv` run under `taskset -c cpus` when cpus is given and taskset exists."""
    if cpus is None or shutil.which("taskset") is None:
        return argv
    return ["taskset", "-c", cpus, *argv]


def start_wrk(
    url: str,
    *,
    connections: int,
    threads: int,
    duration_s: float,
    cpus: str | None = None,
    count_cache: bool = False,
    timeout_s: float = 10.0,
) -> subprocess.Popen[str]:
    """Start wrk in the background; read it with `finish_wrk`."""
    if not wrk_available():
        raise WrkError("wrk is not installed (scripts/install-test-deps.sh installs it from Debian)")
    argv = [
        "wrk",
        f"--connections={max(connections, threads)}",
        f"--threads={threads}",
        f"--duration={max(1, round(duration_s))}s",
        f"--timeout={max(1, round(timeout_s))}s",
        f"--script={LUA_SCRIPT}",
        url,
    ]
    env = {**os.environ, "WRK_COUNT_CACHE": "1" if count_cache else "0"}
    return subprocess.Popen(
        pinned(argv, cpus), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def finish_wrk(proc: subprocess.Popen[str], timeout_s: float = 600) -> WrkResult:
    out, err = proc.communicate(timeout=timeout_s)
    if proc.returncode != 0:
        raise WrkError(f"wrk exited {proc.returncode}: {err.strip() or out.strip()}")
    for line in out.splitlines():
        if line.startswith("WRK_JSON "):
            data = json.loads(line.removeprefix("WRK_JSON "))
            return WrkResult(
                requests=data["requests"],
                duration_s=data["duration_us"] / 1e6,
                errors=data["errors"],
                latency_us=data["latency_us"],
                cache=data["cache"],
            )
    raise WrkError(f"no summary in wrk's output:\n{out}\n{err}")


def run_wrk(
    url: str,
    *,
    connections: int,
    threads: int,
    duration_s: float,
    cpus: str | None = None,
    count_cache: bool = False,
) -> WrkResult:
    proc = start_wrk(
        url,
        connections=connections,
        threads=threads,
        duration_s=duration_s,
        cpus=cpus,
        count_cache=count_cache,
    )
    return finish_wrk(proc, timeout_s=duration_s + 60)
