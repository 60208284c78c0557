"""Real Minecraft peers for the tests: the npm `minecraft-protocol` Java server and `bedrock-protocol`.

Both run as node processes from `tests/peers/` (where `npm ci` put node_modules) on free loopback ports.
Each counts the status checks it answers; `status_requests` reads the count from the peer's small
HTTP control endpoint, `reset_counts()` sets it back to zero and `configure(...)` changes what it reports
while it runs.

    with JavaPeer(tmp_path / "java.log", motd="§aHello", online=3) as peer:
        ...  # probe 127.0.0.1:peer.port
        assert peer.status_requests == 1
"""

from __future__ import annotations

import json
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Self

import httpx

from mcstatbot_testkit.net import LOOPBACK, free_port
from mcstatbot_testkit.process import ManagedProcess

PEERS_DIR = Path(__file__).resolve().parents[4] / "tests" / "peers"
"""`tests/peers` in the repository: the node scripts and their node_modules."""

DEFAULT_JAVA_MOTD: dict[str, Any] = {
    "text": "",
    "extra": [
        {"text": "A Minecraft Server", "color": "green"},
        {"text": "\n"},
        {"text": "second line", "color": "gold", "bold": True},
    ],
}
"""The peer's default MOTD: two lines, green then bold gold (a JSON text component with `extra`)."""

DEFAULT_SAMPLE: list[dict[str, str]] = [
    {"name": "Steve", "id": "8667ba71-b85a-4004-af54-457a9734eed7"},
    {"name": "Alex", "id": "ec561538-f3fd-461d-aff5-086b22154bce"},
]


def node_binary() -> str:
    found = shutil.which("node") or "/usr/bin/node"
    if not Path(found).exists():
        raise RuntimeError("node is not installed (scripts/install-test-deps.sh installs it)")
    return found


class _NodePeer(ManagedProcess):
    script: str = ""

    def __init__(self, log_path: Path, config: dict[str, Any], port: int) -> None:
        self.port = port
        self.control_port = free_port()
        self.config = {**config, "port": port, "controlPort": self.control_port}
        if not (PEERS_DIR / "node_modules").is_dir():
            raise RuntimeError(f"{PEERS_DIR}/node_modules is missing: run `npm ci` in {PEERS_DIR}")
        super().__init__(
            [node_binary(), str(PEERS_DIR / self.script), json.dumps(self.config)], log_path, cwd=PEERS_DIR
        )

    @property
    def address(self) -> str:
        """`127.0.0.1:<port>`, what a user would type to reach this peer."""
        return f"{LOOPBACK}:{self.port}"

    def start(self, timeout: float = 30.0) -> Self:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        super().start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")[offset:] if self.log_path.exists() else ""
            if f"READY {self.port}" in text and self._control_up():
                return self
            if not self.running:
                raise RuntimeError(f"{self.script} exited early:\n{text[-4000:]}")
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"{self.script} not ready after {timeout} s:\n{self.log_text()[-4000:]}")

    def _control_up(self) -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            return sock.connect_ex((LOOPBACK, self.control_port)) == 0

    def _control(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"http://{LOOPBACK}:{self.control_port}{path}"
        response = httpx.request(method, url, json=body, timeout=5.0)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def stats(self) -> dict[str, Any]:
        """Every counter the peer keeps (see the node script), plus e.g. `last_handshake_host` (Java)."""
        return self._control("GET", "/stats")

    @property
    def status_requests(self) -> int:
        """How many status checks the peer has answered since it started (or since `reset_counts`)."""
        return int(self.stats()["status_requests"])

    def reset_counts(self) -> None:
        self._control("POST", "/reset")

    def configure(self, **changes: Any) -> None:
        """Change what the peer reports from now on (keys as in the constructor's config)."""
        self.config.update(changes)
        self._control("POST", "/config", changes)


class JavaPeer(_NodePeer):
    """A Java Edition server (npm `minecraft-protocol` 1.21.1, offline mode) on 127.0.0.1.

    `motd` may be a string with section-sign codes or a JSON text component; `sample` is a list of
    `{"name", "id"}`; `version` (`{"name", "protocol"}`) overrides the reported version; `extra` adds
    top-level fields to the status answer (`forgeData`, `modinfo`, `isModded`, ...); `omit_sample`
    leaves `players.sample` out.
    `status_requests` counts status requests; `stats()["status_connections"]` counts connections whose
    handshake asked for the status state.
    """

    script = "java_server.js"

    def __init__(
        self,
        log_path: Path,
        *,
        motd: str | dict[str, Any] | None = None,
        max_players: int = 20,
        online: int = 2,
        sample: list[dict[str, str]] | None = None,
        version: dict[str, Any] | None = None,
        port: int = 0,
        extra: dict[str, Any] | None = None,
        omit_sample: bool = False,
    ) -> None:
        config: dict[str, Any] = {
            "motd": DEFAULT_JAVA_MOTD if motd is None else motd,
            "maxPlayers": max_players,
            "online": online,
            "sample": DEFAULT_SAMPLE if sample is None else sample,
            "version": version,
            "extra": extra,
            "omitSample": omit_sample,
        }
        super().__init__(log_path, config, port or free_port())

    @property
    def status_connections(self) -> int:
        return int(self.stats()["status_connections"])

    @property
    def last_handshake_host(self) -> str:
        """The server address the last client put in its handshake (virtual hosts route by it)."""
        return str(self.stats()["last_handshake_host"])


class BedrockPeer(_NodePeer):
    """A Bedrock Edition server (npm `bedrock-protocol`, pure-JS RakNet) on 127.0.0.1 (UDP).

    `status_requests` counts RakNet unconnected pings, which is what a status check sends.
    """

    script = "bedrock_server.js"

    def __init__(
        self,
        log_path: Path,
        *,
        motd: str = "mcstatbot bedrock peer",
        level_name: str = "peer world",
        max_players: int = 10,
        port: int = 0,
    ) -> None:
        config = {"motd": motd, "levelName": level_name, "maxPlayers": max_players}
        super().__init__(log_path, config, port or free_port(socket.SOCK_DGRAM))
