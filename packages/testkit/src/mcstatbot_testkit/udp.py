"""A lossy UDP relay on loopback: drops the first datagrams it receives, forwards the rest to a real peer.

UDP exchanges (a Bedrock ping, a Query handshake) are sent again when an answer does not come; this relay
stands for the network that loses the first datagram, in front of a real server:

    async with LossyUdpRelay(upstream_port=bedrock_peer.port, drop=1) as relay:
        ...  # ping 127.0.0.1:relay.port; the first datagram is lost, the next ones reach the peer
        assert relay.dropped == 1

Each client address gets its own upstream socket, so the peer sees one stable sender per client (the Query
protocol's challenge token belongs to the sender's address).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Self, cast

from mcstatbot_testkit.net import LOOPBACK
from mcstatbot_testkit.process import AsyncStarted

Address = tuple[str | int, ...]


class _Upstream(asyncio.DatagramProtocol):
    """The relay's socket towards the peer for one client: answers go back to that client."""

    def __init__(self, relay: LossyUdpRelay, client: Address) -> None:
        self.relay = relay
        self.client = client

    def datagram_received(self, data: bytes, addr: Address) -> None:  # noqa: ARG002 - always the peer
        self.relay.answered += 1
        self.relay.send_to_client(data, self.client)


class _Front(asyncio.DatagramProtocol):
    def __init__(self, relay: LossyUdpRelay) -> None:
        self.relay = relay

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.relay.front = cast("asyncio.DatagramTransport", transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.relay.from_client(data, addr)


class LossyUdpRelay(AsyncStarted):
    """Listens on 127.0.0.1:`port` (UDP; a free port when 0) and relays to 127.0.0.1:`upstream_port`.

    The first `drop` datagrams from clients are dropped (counted in `dropped`); later ones are forwarded
    (`forwarded`), and the peer's answers relayed back (`answered`).
    """

    def __init__(self, upstream_port: int, *, drop: int = 1, port: int = 0) -> None:
        self.upstream_port = upstream_port
        self.drop = drop
        self.port = port
        self.dropped = 0
        self.forwarded = 0
        self.answered = 0
        self.front: asyncio.DatagramTransport | None = None
        self._upstreams: dict[Address, asyncio.DatagramTransport] = {}
        self._pending: set[asyncio.Task[None]] = set()

    async def start(self) -> Self:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: _Front(self), local_addr=(LOOPBACK, self.port))
        assert self.front is not None  # noqa: S101 - set by connection_made
        self.port = self.front.get_extra_info("sockname")[1]
        return self

    async def stop(self) -> None:
        for task in self._pending:
            task.cancel()
        for transport in self._upstreams.values():
            transport.close()
        self._upstreams.clear()
        if self.front is not None:
            self.front.close()
            self.front = None

    def from_client(self, data: bytes, client: Address) -> None:
        if self.dropped < self.drop:
            self.dropped += 1
            return
        self.forwarded += 1
        task = asyncio.get_running_loop().create_task(self._forward(data, client))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def send_to_client(self, data: bytes, client: Address) -> None:
        if self.front is not None:
            self.front.sendto(data, client)

    async def _forward(self, data: bytes, client: Address) -> None:
        upstream = self._upstreams.get(client)
        if upstream is None:
            loop = asyncio.get_running_loop()
            created, _ = await loop.create_datagram_endpoint(
                lambda: _Upstream(self, client), remote_addr=(LOOPBACK, self.upstream_port)
            )
            upstream = self._upstreams.setdefault(client, created)  # another datagram may have won
            if upstream is not created:
                created.close()
        upstream.sendto(data)


Reply = Callable[[bytes], list[bytes]]
"""What a UdpResponder sends back to one request datagram: any number of datagrams (none: silence)."""


class _Responder(asyncio.DatagramProtocol):
    def __init__(self, responder: UdpResponder) -> None:
        self.responder = responder

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.responder.transport = cast("asyncio.DatagramTransport", transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.responder.requests += 1
        for datagram in self.responder.reply(data):
            if self.responder.transport is not None:
                self.responder.transport.sendto(datagram, addr)


class UdpResponder(AsyncStarted):
    """A UDP server on 127.0.0.1:`port` (free when 0) that answers each datagram with `reply(datagram)`:
    for hostile peers (silent, garbage, truncated, lying, flooding). `requests` counts what came in."""

    def __init__(self, reply: Reply, *, port: int = 0) -> None:
        self.reply = reply
        self.port = port
        self.requests = 0
        self.transport: asyncio.DatagramTransport | None = None

    async def start(self) -> Self:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: _Responder(self), local_addr=(LOOPBACK, self.port))
        assert self.transport is not None  # noqa: S101 - set by connection_made
        self.port = self.transport.get_extra_info("sockname")[1]
        return self

    async def stop(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None
