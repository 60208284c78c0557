"""The watcher benchmark's parts: the test kit's ping farm (many Server List Ping ports in one process,
each status request recorded) against a real mcstatus client, and how `schedule` sorts the checks the
farm saw into slots (on schedule, late, missed, doubled)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from mcstatbot_testkit.ping_farm import PingFarm
from mcstatbot_watcher.service import offset
from mcstatus import JavaServer

from bench.scenarios.watcher import _ref, schedule

if TYPE_CHECKING:
    from pathlib import Path


def test_ping_farm_answers_every_port_and_records_each_status_request(tmp_path: Path) -> None:
    with PingFarm(tmp_path / "farm.log", 300) as farm:
        assert len(set(farm.ports)) == 300

        async def ask() -> list[str]:
            first, last = farm.ports[0], farm.ports[-1]
            answers = [await JavaServer("127.0.0.1", port).async_status() for port in (first, first, last)]
            await JavaServer("127.0.0.1", last).async_ping()  # a ping alone is no status request
            return [answer.version.name for answer in answers]

        assert asyncio.run(ask()) == ["1.21.1"] * 3
        times = farm.request_times()
        assert {port: len(each) for port, each in times.items()} == {farm.ports[0]: 2, farm.ports[-1]: 1}
        farm.reset()
        assert farm.request_times() == {}


def test_schedule_sorts_the_farms_request_times_into_slots() -> None:
    interval = 10.0
    ports = [1001, 1002, 1003, 1004]
    due = {port: offset(_ref(port), interval) + 1000 * interval for port in ports}  # a slot's due time
    times = {
        1001: [due[1001] + 0.2, due[1001] + interval + 0.5],  # two slots, both on time
        1002: [due[1002] + 0.1, due[1002] + interval + 2.0],  # on time, then late (2 s > 10 % of 10 s)
        1003: [due[1003] + 0.1, due[1003] + 0.3],  # checked twice in its first slot, missed its second
    }  # 1004 never checked
    start = 1000 * interval
    result = schedule(times, ports, interval, start, start + 2 * interval)
    assert (result["slots"], result["on_time"], result["late"], result["missed"], result["doubled"]) == (
        8,
        3,
        1,
        3,
        1,
    )
    assert result["servers_on_schedule"] == 1  # only 1001 had every slot on schedule
