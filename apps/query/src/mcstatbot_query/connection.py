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
from typing import TYPE_CHECKING, Self

from mcstatbot_common.models import ErrorCode
from mcstatus._protocol.io.connection import BaseAsyncConnection

from mcstatbot_query.errors import ProbeFailedError

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
