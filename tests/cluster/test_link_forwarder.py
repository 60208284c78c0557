"""The link's socat forwarders leave no process behind: a UDP forwarder forks a child per client address
that never sees its peer close, so stopping the forwarder stops its children too."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING

from mcstatbot_testkit.net import LOOPBACK
from mcstatbot_testkit.watching import wait_until

from tests.cluster.conftest import forward_on_link

if TYPE_CHECKING:
    from tests.cluster.conftest import Cluster


def socats_listening_on(port: int) -> list[int]:
    """Pids of the socat processes whose command line listens on `port`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"socat") and any(f"LISTEN:{port},".encode() in a for a in argv):
            found.append(int(proc.name))
    return found


def test_a_udp_forwarder_stops_with_its_children(cluster: Cluster) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as echo:
        echo.bind((LOOPBACK, 0))
        echo.settimeout(10)
        with forward_on_link(cluster, echo.getsockname()[1], udp=True) as address:
            host, port = address.rsplit(":", 1)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                client.settimeout(10)
                client.sendto(b"ping", (host, int(port)))
                data, forwarded_by = echo.recvfrom(64)
                assert data == b"ping"
                echo.sendto(b"pong", forwarded_by)
                assert client.recvfrom(64)[0] == b"pong"  # through the child socat forked for this client
            assert len(socats_listening_on(int(port))) == 2  # the listener and its child
        wait_until(lambda: not socats_listening_on(int(port)), timeout=10, what="the forwarder's socats gone")
