"""No descriptor outlives a probe, wherever its deadline cuts it off (uvloop, as the service runs)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import uvloop
from mcstatbot_common.addresses import parse_address
from mcstatbot_common.models import Edition
from mcstatbot_query.probe import Prober
from mcstatbot_query.resolver import Resolver

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from mcstatbot_query.settings import QuerySettings

    SettingsFactory = Callable[..., QuerySettings]

MC_TIMEOUT = 0.5
ROUNDS = 300
"""Probes, each cut off one event-loop turn later than the one before (then by its own deadline)."""


def _open_descriptors() -> int:
    return sum(1 for _ in Path("/proc/self/fd").iterdir())


def _silent_udp() -> Iterator[socket.socket]:
    """A UDP socket on loopback that never answers (a DNS server or a Bedrock server gone silent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock


async def _probes_cut_off_at_every_moment(
    settings: QuerySettings, server: str, edition: Edition
) -> tuple[int, int]:
    prober = Prober(settings, Resolver(allow_private=True, nameservers=settings.nameservers()))
    address = parse_address(server)
    await prober.status(address, edition)  # lazily created parts (the resolver) exist before counting
    before = _open_descriptors()
    for turns in range(ROUNDS):
        probe = asyncio.ensure_future(prober.status(address, edition))
        for _ in range(turns):
            await asyncio.sleep(0)
        probe.cancel()
        await asyncio.gather(probe, return_exceptions=True)
    # Whatever the cut-off probes left running ends by its own deadline (MC_TIMEOUT); on a loaded machine the
    # last of them may close a little later, so the count is read until it is back, for 10 s at most: a
    # leaked descriptor never comes back (this waits, it measures nothing).
    await asyncio.sleep(MC_TIMEOUT + 0.5)
    give_up = asyncio.get_running_loop().time() + 10
    while _open_descriptors() > before and asyncio.get_running_loop().time() < give_up:  # noqa: ASYNC110
        await asyncio.sleep(0.1)  # /proc has no event to wait for
    return before, _open_descriptors()


@pytest.mark.parametrize("edition", list(Edition))
def test_probes_whose_dns_lookup_is_cut_off_leave_no_socket(
    edition: Edition, settings_factory: SettingsFactory
) -> None:
    for silent in _silent_udp():
        nameserver = f"127.0.0.1:{silent.getsockname()[1]}"
        settings = settings_factory(mc_timeout=MC_TIMEOUT, dns_nameservers=nameserver, dns_srv=True)
        before, after = uvloop.run(_probes_cut_off_at_every_moment(settings, "never.answers.test", edition))
    assert after <= before, (before, after)


@pytest.mark.parametrize("edition", [Edition.AUTO, Edition.BEDROCK])
def test_udp_probes_cut_off_while_connecting_leave_no_socket(
    edition: Edition, settings_factory: SettingsFactory
) -> None:
    """The Bedrock ping's own UDP socket (an IP literal: no look-up), cut off at every moment."""
    settings = settings_factory(mc_timeout=MC_TIMEOUT)
    for silent in _silent_udp():
        server = f"127.0.0.1:{silent.getsockname()[1]}"
        before, after = uvloop.run(_probes_cut_off_at_every_moment(settings, server, edition))
    assert after <= before, (before, after)
