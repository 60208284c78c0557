"""A real redis-server on a free loopback port, which a test can kill and restart on the same port."""

from __future__ import annotations

import shutil
import signal
import socket
import time
from typing import TYPE_CHECKING, Self

from mcstatbot_testkit.net import LOOPBACK, free_port
from mcstatbot_testkit.process import ManagedProcess

if TYPE_CHECKING:
    from pathlib import Path


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("redis-server is not installed (scripts/install-test-deps.sh installs it)")
    return found


class RedisServer(ManagedProcess):
    """`redis-server` without persistence on 127.0.0.1:`port` (a free one by default).

    `start()` returns once it accepts connections; `kill()` ends it at once (SIGKILL, like a crash);
    `restart()` brings it back on the same port, empty; `pause()` / `resume()` stop and continue it
    (SIGSTOP / SIGCONT: it holds its connections and what they sent, and runs it on resuming). `url` is
    what REDIS_URL should say.
    """

    def __init__(self, log_path: Path, port: int = 0) -> None:
        self.port = port or free_port()
        argv = [
            redis_server_binary(),
            "--port", str(self.port),
            "--bind", LOOPBACK,
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
        ]  # fmt: skip
        super().__init__(argv, log_path)

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def start(self, timeout: float = 15.0) -> Self:
        super().start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ping():
                return self
            if not self.running:
                raise RuntimeError(f"redis-server exited early:\n{self.log_text()[-4000:]}")
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"redis-server not ready after {timeout} s:\n{self.log_text()[-4000:]}")

    def ping(self) -> bool:
        """True when the server answers PING (a raw RESP exchange; no client library needed)."""
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def pause(self) -> None:
        self.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.send_signal(signal.SIGCONT)

    def restart(self) -> Self:
        self.stop()
        return self.start()
