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

    from mcstatbot_testkit.telegram import BotApiServer


class ServiceProcess(ManagedProcess):
    """`python -m <module>` on a free port with `env`; `start()` returns once `GET /ready` answers 200."""

    def __init__(self, module: str, log_path: Path, env: dict[str, str] | None = None, port: int = 0) -> None:
        self.port = port or free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self._chosen_port = not port
        base = {"HOST": LOOPBACK, "PORT": str(self.port), "LOG_FORMAT": "json"}
        super().__init__([sys.executable, "-m", module], log_path, env={**base, **(env or {})})

    def start(self, ready_timeout: float = 30.0) -> ServiceProcess:
        """Start and wait for `/ready`. A free port found by `free_port` can be taken by another process
        before the service binds it: a port this process chose is then chosen again (at most twice)."""
        choices_left = 2
        while True:
            logged = len(self.log_text())
            try:
                self._spawn_and_wait(ready_timeout)
            except RuntimeError:
                taken = "address already in use" in self.log_text()[logged:]
                if not (taken and self._chosen_port and choices_left):
                    raise
                choices_left -= 1
                self.port = free_port()
                self.url = f"http://{LOOPBACK}:{self.port}"
                self.env["PORT"] = str(self.port)
                continue
            return self

    def _spawn_and_wait(self, ready_timeout: float) -> None:
        """One attempt: spawn, then wait for `/ready` (RuntimeError when the process exits first)."""
        super().start()
        self.wait_ready(ready_timeout)

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


class ServiceStack:
    """Bot and watcher processes against one Bot API test server, query service and SQLite state file
    (`env` is their shared environment); `stop_all` stops every one started."""

    def __init__(self, logs: Path, api: BotApiServer, query: ServiceProcess, tmp_path: Path) -> None:
        self.logs = logs
        self.api = api
        self.query = query
        self.tmp_path = tmp_path
        self.started: list[ServiceProcess] = []

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "TELEGRAM_BOT_TOKEN": self.api.token,
            "TELEGRAM_API_BASE_URL": self.api.base_url,
            "QUERY_SERVICE_URL": self.query.url,
            "BOT_MODE": "polling",
            "STATE_BACKEND": "sqlite",
            "SQLITE_PATH": str(self.tmp_path / "state.db"),
            "LOG_LEVEL": "INFO",
            **extra,
        }

    def launch(self, kind: str, env: dict[str, str], port: int = 0) -> ServiceProcess:
        """Start a `kind` ("bot" or "watcher") process with `env`; its log is named after it and the test."""
        name = f"{kind}-{len(self.started) + 1}-{self.tmp_path.name}.log"
        factory = bot_service if kind == "bot" else watcher_service
        service = factory(self.logs / name, env, port=port)
        self.started.append(service)
        service.start()
        return service

    def stop_all(self) -> None:
        for service in self.started:
            service.stop()
