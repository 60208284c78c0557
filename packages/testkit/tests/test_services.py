"""The test kit's service processes: what the suite's own start-up has to survive."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from mcstatbot_testkit.net import LOOPBACK
from mcstatbot_testkit.services import query_service

if TYPE_CHECKING:
    from pathlib import Path


def test_a_port_taken_between_choosing_and_binding_is_chosen_again(tmp_path: Path) -> None:
    """`free_port` finds a port free, and another process of a busy test run may bind it before the
    service does (uvicorn then exits: "address already in use"). The service is started on another port."""
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        service = query_service(tmp_path / "query.log")
        # the race, made certain: the port this process chose is the one now taken
        service.port, service.url = port, f"http://{LOOPBACK}:{port}"
        service.env["PORT"] = str(port)
        with service:
            assert service.port != port
            assert "address already in use" in service.log_text()
