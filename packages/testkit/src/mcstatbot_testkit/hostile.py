"""Hostile Minecraft "servers" for the tests: asyncio TCP servers that misbehave in one specific way each.

    async with HostileServer(Behaviour.TRICKLE) as server:
        ...  # probe 127.0.0.1:server.port; expect a typed error within MC_TIMEOUT plus a margin

Behaviours:
- SILENT: accepts the connection, reads whatever comes, never answers.
- TRICKLE: answers a status request with a plausible packet, one byte every `trickle_interval` seconds.
- HUGE: answers with a status packet that claims (and sends) `huge_size` bytes (10 MB by default).
- BAD_VARINT: answers with a packet length varint that never ends (continuation bit on every byte).
- BAD_JSON: a well-framed status response whose JSON is broken.
- WRONG_SHAPE: well-framed, valid JSON, but not a status object (`players` is a string).
- CLOSE: accepts and closes at once without a byte.
- LEGACY: behaves like a pre-1.7 server: answers the legacy ping (0xFE 0x01) with a kick packet
  (`legacy_fields`: 1.6.4, "A legacy server", 3/20 players by default) and closes the connection on a
  modern handshake.
- ANSWER: a well-framed status response carrying `answer` (the status JSON, as bytes) as it is: a
  server that lies in its values (numbers beyond 64 bits, ...).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from typing import Self

from mcstatbot_testkit.net import LOOPBACK
from mcstatbot_testkit.process import AsyncStarted

TEN_MB = 10 * 1024 * 1024


class Behaviour(enum.StrEnum):
    SILENT = "silent"
    TRICKLE = "trickle"
    HUGE = "huge"
    BAD_VARINT = "bad_varint"
    BAD_JSON = "bad_json"
    WRONG_SHAPE = "wrong_shape"
    CLOSE = "close"
    LEGACY = "legacy"
    ANSWER = "answer"


def varint(value: int) -> bytes:
    out = bytearray()
    value &= 0xFFFFFFFF
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


LEGACY_FIELDS = ("127", "1.6.4", "A legacy server", "3", "20")
"""Protocol, version, MOTD, players online, max players: what the LEGACY behaviour reports."""


def legacy_kick(fields: tuple[str, ...]) -> bytes:
    """The pre-1.7 server-list answer: a kick packet (0xFF) with `§1`-prefixed, NUL-separated fields."""
    text = "\0".join(("§1", *fields))
    return b"\xff" + len(text).to_bytes(2, "big") + text.encode("utf-16-be")


def status_packet(payload: bytes) -> bytes:
    """A status response packet (id 0) carrying `payload` as its length-prefixed string."""
    body = varint(0) + varint(len(payload)) + payload
    return varint(len(body)) + body


_PLAUSIBLE_STATUS = b'{"version":{"name":"1.21.1","protocol":767},"players":{"max":1,"online":0}}'
_ONE_BAD_PACKET = {
    Behaviour.BAD_VARINT: b"\xff" * 16,
    Behaviour.BAD_JSON: status_packet(b'{"version": {"name": "1.21.1", "protocol": 767}, "players": '),
    Behaviour.WRONG_SHAPE: status_packet(b'{"version": 5, "players": "lots", "description": 7}'),
}


class HostileServer(AsyncStarted):
    """A TCP server on 127.0.0.1:`port` (free when 0) that misbehaves as `behaviour` says.

    `connections` counts accepted connections; `bytes_sent` what it managed to write.
    """

    def __init__(
        self,
        behaviour: Behaviour,
        *,
        port: int = 0,
        trickle_interval: float = 0.2,
        huge_size: int = TEN_MB,
        answer: bytes = _PLAUSIBLE_STATUS,
        legacy_fields: tuple[str, ...] = LEGACY_FIELDS,
    ) -> None:
        self.behaviour = behaviour
        self.answer = answer
        self.legacy_fields = legacy_fields
        self.port = port
        self.trickle_interval = trickle_interval
        self.huge_size = huge_size
        self.connections = 0
        self.bytes_sent = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> Self:
        self._server = await asyncio.start_server(self._on_client, LOOPBACK, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._misbehave(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # stop() cancels the handlers; the server is going away, nothing more to do
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        await writer.drain()
        self.bytes_sent += len(data)

    async def _misbehave(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        behaviour = self.behaviour
        if behaviour is Behaviour.CLOSE:
            return
        if behaviour is Behaviour.SILENT:
            while await reader.read(4096):
                pass
            return
        first = await reader.read(1024)  # the handshake and status request (usually in one or two segments)
        if behaviour is Behaviour.LEGACY:
            if first[:1] == b"\xfe":
                await self._send(writer, legacy_kick(self.legacy_fields))
            return
        if behaviour is Behaviour.TRICKLE:
            packet = status_packet(_PLAUSIBLE_STATUS)
            for index in range(len(packet)):
                await self._send(writer, packet[index : index + 1])
                await asyncio.sleep(self.trickle_interval)
        elif behaviour is Behaviour.HUGE:
            await self._send_huge(writer)
        elif behaviour is Behaviour.ANSWER:
            await self._send(writer, status_packet(self.answer))
            await asyncio.sleep(30)
        else:
            await self._send(writer, _ONE_BAD_PACKET[behaviour])
            await asyncio.sleep(30)

    async def _send_huge(self, writer: asyncio.StreamWriter) -> None:
        body_length = self.huge_size
        header = varint(body_length + 1 + len(varint(body_length))) + varint(0) + varint(body_length)
        await self._send(writer, header)
        chunk = b"A" * 65536
        sent = 0
        while sent < body_length:
            part = chunk[: min(len(chunk), body_length - sent)]
            await self._send(writer, part)
            sent += len(part)
