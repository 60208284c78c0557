"""The ping farm's child binds its control port before its thousands of responder ports, on a port the
kernel picks, and says which in its ready file: the parent never guesses a port that the farm's own ports
may then take (which failed a benchmark start with "address already in use")."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mcstatbot_testkit.net import LOOPBACK
from mcstatbot_testkit.ping_farm import PingFarm
from mcstatus import JavaServer

if TYPE_CHECKING:
    from pathlib import Path


def test_the_control_port_comes_from_the_farm_and_is_none_of_its_servers(tmp_path: Path) -> None:
    with PingFarm(tmp_path / "farm.log", 2000) as farm:
        assert len(set(farm.ports)) == 2000
        assert farm.control_port > 0
        assert farm.control_port not in farm.ports
        assert farm.request_times() == {}  # the control port answers
        asked = farm.ports[1234]
        status = JavaServer(LOOPBACK, asked, timeout=10).status()
        assert status.players.online >= 0
        assert list(farm.request_times()) == [asked]
