"""A benchmark's service whose free port was taken before it bound it starts on another one."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import httpx
from mcstatbot_testkit.net import LOOPBACK

from bench.launch import BenchService
from bench.stack import QUERY_MODULE, query_env

if TYPE_CHECKING:
    from pathlib import Path


def test_a_port_taken_meanwhile_is_chosen_again(tmp_path: Path) -> None:
    service = BenchService(QUERY_MODULE, tmp_path / "query.log", query_env())
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind((LOOPBACK, 0))
        taken.listen()
        # as if another process had bound the port the service was given, between its choice and its bind
        service.port = taken.getsockname()[1]
        service.env["PORT"] = str(service.port)
        service.url = f"http://{LOOPBACK}:{service.port}"
        try:
            service.start()
            assert service.port != taken.getsockname()[1]
            assert "address already in use" in service.log_text()
            assert httpx.get(f"{service.url}/health", timeout=5.0).status_code == httpx.codes.OK
            assert service.startup_s is not None
        finally:
            service.stop()
