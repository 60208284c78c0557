"""`mcstatbot status`: exit 0 online, 1 offline, 2 bad input; --json prints a ServerStatus."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

import httpx
from mcstatbot_common.models import ServerStatus
from mcstatbot_testkit.minecraft import JavaPeer
from mcstatbot_testkit.net import free_port
from mcstatbot_testkit.services import query_service

if TYPE_CHECKING:
    from pathlib import Path

    from mcstatbot_testkit.minecraft import BedrockPeer


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "ALLOW_PRIVATE_ADDRESSES"}
    environment.update({"MC_TIMEOUT": "2", "MC_QUERY_TIMEOUT": "0.5", "DNS_SRV": "false", **env})
    return subprocess.run(
        [sys.executable, "-m", "mcstatbot_query.cli", "status", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )


def test_online_summary_exit_0(java_peer: JavaPeer) -> None:
    result = run_cli(java_peer.address)
    assert result.returncode == 0, result.stderr
    assert f"{java_peer.address} is online (java)" in result.stdout
    assert "A Minecraft Server" in result.stdout
    assert "second line" in result.stdout
    assert "2/20" in result.stdout
    assert "Steve, Alex" in result.stdout
    assert "runs:    vanilla 1.21.1" in result.stdout


def test_placeholder_is_offline_with_its_text(tmp_path: Path) -> None:
    with JavaPeer(
        tmp_path / "aternos.log",
        version={"name": "§4● Offline", "protocol": 46},
        motd="§fMy Aternos SMP",
        online=0,
        max_players=0,
        omit_sample=True,
    ) as peer:
        result = run_cli(peer.address, "--edition", "java")
    assert result.returncode == 1, result.stderr
    assert f"{peer.address} is offline (placeholder: " in result.stdout
    assert "placeholder (Aternos): ● Offline" in result.stdout


def test_json_parses_as_server_status(java_peer: JavaPeer) -> None:
    result = run_cli(java_peer.address, "--edition", "java", "--json")
    assert result.returncode == 0, result.stderr
    status = ServerStatus.model_validate_json(result.stdout)
    assert status.online
    assert status.motd is not None
    assert status.motd.clean == "A Minecraft Server\nsecond line"


def test_bedrock_json(bedrock_peer: BedrockPeer) -> None:
    result = run_cli(bedrock_peer.address, "--edition", "bedrock", "--json")
    assert result.returncode == 0, result.stderr
    assert ServerStatus.model_validate_json(result.stdout).edition == "bedrock"


def test_offline_exit_1() -> None:
    port = free_port()
    result = run_cli(f"127.0.0.1:{port}", "--edition", "java", "--json")
    assert result.returncode == 1
    status = ServerStatus.model_validate_json(result.stdout)
    assert not status.online
    assert status.error is not None
    assert status.error.code == "refused"
    plain = run_cli(f"127.0.0.1:{port}")
    assert plain.returncode == 1
    assert "offline (refused" in plain.stdout


def test_bad_input_exit_2() -> None:
    for bad in ("bad host", "example.com:99999", "[::1"):
        result = run_cli(bad)
        assert result.returncode == 2, bad
        assert result.stderr.startswith("mcstatbot: ")
    usage = subprocess.run(
        [sys.executable, "-m", "mcstatbot_query.cli", "status", "x.test", "--edition", "pocket"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert usage.returncode == 2


def test_private_addresses_refused_on_request(java_peer: JavaPeer) -> None:
    flag = run_cli(java_peer.address, "--no-private")
    assert flag.returncode == 2
    assert "loopback" in flag.stderr
    env = run_cli(java_peer.address, ALLOW_PRIVATE_ADDRESSES="false")
    assert env.returncode == 2


def test_the_service_loads_no_websocket_implementation(tmp_path: Path) -> None:
    """`mcstatbot-query` runs uvicorn with `ws="none"` (there is no WebSocket endpoint, and a WebSocket
    library is memory at rest): an upgrade request is answered as the plain HTTP request it also is,
    not refused by a WebSocket handshake (403)."""
    with query_service(tmp_path / "query.log", {"LOG_LEVEL": "WARNING"}) as service:
        answer = httpx.get(
            f"{service.url}/health",
            headers={
                "Connection": "Upgrade",
                "Upgrade": "websocket",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            },
            timeout=5.0,
        )
    assert answer.status_code == httpx.codes.OK
    assert answer.json() == {"status": "ok"}
