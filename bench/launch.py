"""Services as processes for the benchmarks: the test kit's ServiceProcess, pinned to CPUs with taskset,
with the time from spawn to the first `GET /ready` 200 measured at 10 ms resolution."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from mcstatbot_testkit.services import ServiceProcess

from bench.wrk import pinned

if TYPE_CHECKING:
    from collections.abc import Mapping

REPO_ROOT = Path(__file__).resolve().parent.parent


class BenchService(ServiceProcess):
    """`python -m module` on a free port, optionally under `taskset -c cpus` and with another interpreter
    (`python`: a virtual environment's, as the footprint benchmark's image-like environments); `startup_s`
    after start()."""

    def __init__(
        self,
        module: str,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        *,
        cpus: str | None = None,
        port: int = 0,
        python: str | None = None,
    ) -> None:
        pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
        base = {"LOG_LEVEL": "WARNING", "PYTHONPATH": pythonpath}
        super().__init__(module, log_path, {**base, **(env or {})}, port)
        if python is not None:
            self.argv = [python, *self.argv[1:]]
        self.argv = pinned(self.argv, cpus)
        self.startup_s: float | None = None

    def start(self, ready_timeout: float = 60.0) -> BenchService:
        """Spawn and wait for `/ready` (a port taken meanwhile is chosen again, as ServiceProcess does)."""
        super().start(ready_timeout)
        return self

    def _spawn_and_wait(self, ready_timeout: float) -> None:
        """Spawn, then poll `/ready` every 10 ms and keep the time to the first 200 in `startup_s`."""
        started = time.perf_counter()
        super(ServiceProcess, self).start()  # ManagedProcess.start: spawn only
        deadline = started + ready_timeout
        with httpx.Client(timeout=1.0) as client:
            while time.perf_counter() < deadline:
                if not self.running:
                    raise RuntimeError(f"{self.argv} exited early:\n{self.log_text()[-4000:]}")
                try:
                    if client.get(f"{self.url}/ready").status_code == httpx.codes.OK:
                        self.startup_s = time.perf_counter() - started
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.01)
        self.stop()
        raise TimeoutError(f"{self.argv} not ready after {ready_timeout} s:\n{self.log_text()[-4000:]}")
