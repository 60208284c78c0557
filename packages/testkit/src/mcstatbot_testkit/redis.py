"""A real redis-server on a free loopback port, which a test can kill and restart on the same port."""

from __future__ import annotations

import shutil
import signal
import socket
import ssl
import time
import urllib.parse
from typing import TYPE_CHECKING, Self

from mcstatbot_testkit.net import LOOPBACK, free_port
from mcstatbot_testkit.process import ManagedProcess

if TYPE_CHECKING:
    from pathlib import Path

    from mcstatbot_testkit.tls import TestCertificates


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

    `password` sets `requirepass` (an AUTH token); `tls` (a `mcstatbot_testkit.tls.TestCertificates`)
    makes `port` a TLS-only port (no plain one, as ElastiCache with in-transit encryption), and `url`
    then `rediss://...?ssl_ca_certs=<the test CA>`.
    """

    def __init__(
        self,
        log_path: Path,
        port: int = 0,
        *,
        password: str | None = None,
        tls: TestCertificates | None = None,
    ) -> None:
        self.port = port or free_port()
        self.password = password
        self.tls = tls
        ports = ["--port", "0", "--tls-port", str(self.port)] if tls else ["--port", str(self.port)]
        argv = [
            redis_server_binary(),
            *ports,
            "--bind", LOOPBACK,
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
        ]  # fmt: skip
        if password is not None:
            argv += ["--requirepass", password]
        if tls is not None:
            argv += tls.redis_server_options()
        super().__init__(argv, log_path)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password is not None else ""
        if self.tls is None:
            return f"redis://{auth}{LOOPBACK}:{self.port}/0"
        ca = urllib.parse.quote(str(self.tls.ca), safe="/")
        return f"rediss://{auth}{LOOPBACK}:{self.port}/0?ssl_ca_certs={ca}"

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
        """True when the server answers PING (a raw RESP exchange, over TLS with `tls`; no client library
        needed). With a password, `-NOAUTH` counts too: the server is up and asks for the token."""
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=0.5) as raw:
                sock = raw
                if self.tls is not None:
                    context = ssl.create_default_context(cafile=str(self.tls.ca))
                    sock = context.wrap_socket(raw, server_hostname=LOOPBACK)
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def pause(self) -> None:
        self.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.send_signal(signal.SIGCONT)

    def restart(self) -> Self:
        self.stop()
        return self.start()
