"""Start the mcstatbot services themselves as processes, the way they run in a container."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

import httpx

from mcstatbot_testkit.net import LOOPBACK, free_port
from mcstatbot_testkit.process import ManagedProcess

if TYPE_CHECKING:
    from pathlib import Path


class ServiceProcess(ManagedProcess):
    """`python -m <module>` on a free port with `env`; `start()` returns once `GET /ready` answers 200."""

    def __init__(self, module: str, log_path: Path, env: dict[str, str] | None = None, port: int = 0) -> None:
        self.port = port or free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        base = {"HOST": LOOPBACK, "PORT": str(self.port), "LOG_FORMAT": "json"}
        super().__init__([sys.executable, "-m", module], log_path, env={**base, **(env or {})})

    def start(self, ready_timeout: float = 30.0) -> ServiceProcess:
        super().start()
        self.wait_ready(ready_timeout)
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"{self.argv} exited early:\n{self.log_text()[-4000:]}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=1.0).status_code == httpx.codes.OK:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.argv} not ready after {timeout} s:\n{self.log_text()[-4000:]}")


def query_service(log_path: Path, env: dict[str, str] | None = None, port: int = 0) -> ServiceProcess:
    return ServiceProcess("mcstatbot_query", log_path, env, port)


def bot_service(log_path: Path, env: dict[str, str] | None = None, port: int = 0) -> ServiceProcess:
    return ServiceProcess("mcstatbot_bot", log_path, env, port)


def watcher_service(log_path: Path, env: dict[str, str] | None = None, port: int = 0) -> ServiceProcess:
    return ServiceProcess("mcstatbot_watcher", log_path, env, port)
