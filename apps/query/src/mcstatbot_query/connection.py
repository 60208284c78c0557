"""A TCP connection for mcstatus's protocol clients that caps how much a server may send.

mcstatus reads a status packet of whatever length the server announces (up to 2 GiB); this connection
refuses, before reading, anything that would take the total past `max_bytes`, so a server that sends a
10 MB status costs nothing but a typed error. It connects to an IP that was already checked; the
handshake's host name is given to the protocol client separately.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import TYPE_CHECKING, Any, Self

from mcstatbot_common.models import ErrorCode

from mcstatbot_query.errors import ProbeFailedError
from mcstatbot_query.mcstatus_protocol import BaseAsyncConnection

if TYPE_CHECKING:
    from mcstatbot_query.resolver import IPAddress


class BoundedTCPConnection(BaseAsyncConnection):
    """An asyncio TCP stream to `ip`:`port` that reads at most `max_bytes` in total."""

    def __init__(self, ip: IPAddress, port: int, max_bytes: int) -> None:
        self.ip = ip
        self.port = port
        self.max_bytes = max_bytes
        self.bytes_read = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self) -> Self:
        # The caller's deadline (asyncio.timeout) bounds the connect; the stream buffer stays small.
        self._reader, self._writer = await asyncio.open_connection(str(self.ip), self.port, limit=64 * 1024)
        sock = self._writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self

    async def read(self, length: int, /) -> bytes:
        if self._reader is None:
            raise RuntimeError("not connected")
        if length < 0 or self.bytes_read + length > self.max_bytes:
            raise ProbeFailedError(
                ErrorCode.PROTOCOL,
                f"the server's answer is larger than the {self.max_bytes // 1024} KiB accepted",
            )
        try:
            data = await self._reader.readexactly(length)
        except asyncio.IncompleteReadError as exc:
            raise ProbeFailedError(ErrorCode.PROTOCOL, "the server closed the connection mid-answer") from exc
        self.bytes_read += length
        return data

    async def write(self, data: bytes | bytearray, /) -> None:
        if self._writer is None:
            raise RuntimeError("not connected")
        self._writer.write(bytes(data))
        await self._writer.drain()

    async def close(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.transport.abort()  # no lingering: unread data from a hostile server is dropped


class _DatagramQueue(asyncio.DatagramProtocol):
    """Datagrams and socket errors (e.g. ICMP port unreachable) in arrival order."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | BaseException] = asyncio.Queue(maxsize=64)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        del addr
        with contextlib.suppress(asyncio.QueueFull):  # a flood is dropped, not buffered
            self.queue.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(exc or ConnectionAbortedError("the UDP socket was closed"))


def _close_created(creating: asyncio.Future[tuple[asyncio.DatagramTransport, _DatagramQueue]]) -> None:
    if not creating.cancelled() and creating.exception() is None:
        creating.result()[0].close()


class UDPConnection(BaseAsyncConnection):
    """A connected UDP socket to `ip`:`port` for mcstatus's Query client and the Bedrock ping.

    Unlike mcstatus's own UDP connection, an ICMP "port unreachable" surfaces at once as
    ConnectionRefusedError instead of waiting for the timeout. The caller's deadline bounds reads.
    """

    remaining = 65535
    """What mcstatus's Query client passes to read(): one whole datagram."""

    def __init__(self, ip: IPAddress, port: int) -> None:
        self.ip = ip
        self.port = port
        self._transport: asyncio.DatagramTransport | None = None
        self._protocol: _DatagramQueue | None = None

    async def connect(self) -> Self:
        loop = asyncio.get_running_loop()
        # Under uvloop, a create_datagram_endpoint cancelled mid-way leaves its socket open: it is let
        # finish and the socket closed when the probe's deadline (or auto's winner) cuts it off.
        creating = asyncio.ensure_future(
            loop.create_datagram_endpoint(_DatagramQueue, remote_addr=(str(self.ip), self.port))
        )
        try:
            transport, protocol = await asyncio.shield(creating)
        except asyncio.CancelledError:
            creating.add_done_callback(_close_created)
            raise
        self._transport, self._protocol = transport, protocol
        return self

    async def read(self, length: int, /) -> bytes:
        del length
        if self._protocol is None:
            raise RuntimeError("not connected")
        item = await self._protocol.queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    async def write(self, data: bytes | bytearray, /) -> None:
        if self._transport is None:
            raise RuntimeError("not connected")
        self._transport.sendto(bytes(data))

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
