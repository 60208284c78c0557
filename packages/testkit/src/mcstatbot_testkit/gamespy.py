"""An asyncio UDP responder for the Minecraft Query protocol (GameSpy4), with a configurable player list.

No npm or PyPI package serves this protocol, so this is the test suite's own implementation of the server
side, written from the protocol description (https://minecraft.wiki/w/Query): a handshake (type 9)
answered with a challenge token, then a full-stat request (type 0) carrying that token, answered with the
key/value section and the player list. Requests with a wrong token are ignored, as a real server does.

    async with GameSpyResponder(players=["Steve", "Alex"]) as query:
        ...  # query 127.0.0.1:query.port over UDP
        assert query.full_stat_requests == 1
"""

from __future__ import annotations

import asyncio
import random
import struct
from dataclasses import dataclass, field
from typing import Self, cast

from mcstatbot_testkit.net import LOOPBACK
from mcstatbot_testkit.process import AsyncStarted

_MAGIC = b"\xfe\xfd"
_HANDSHAKE = 9
_STAT = 0


@dataclass
class GameSpyConfig:
    players: list[str] = field(default_factory=lambda: ["Steve", "Alex"])
    motd: str = "A Minecraft Server"
    version: str = "1.21.1"
    plugins: str = ""
    map_name: str = "world"
    max_players: int = 20
    host_port: int = 25565
    online: int | None = None
    """Reported `numplayers`; the length of `players` when None."""


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, responder: GameSpyResponder) -> None:
        self.responder = responder
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.DatagramTransport", transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        reply = self.responder.answer(data, addr)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


class GameSpyResponder(AsyncStarted):
    """Serves the Query protocol on 127.0.0.1:`port` (UDP; a free port when 0) until `stop()`.

    `config` may be changed while it runs. `handshakes` and `full_stat_requests` count what it answered.
    """

    def __init__(self, config: GameSpyConfig | None = None, *, port: int = 0, **overrides: object) -> None:
        self.config = config or GameSpyConfig()
        for key, value in overrides.items():
            setattr(self.config, key, value)
        self.port = port
        self.handshakes = 0
        self.full_stat_requests = 0
        self._tokens: dict[tuple[str | int, ...], int] = {}
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self) -> Self:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=(LOOPBACK, self.port)
        )
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        return self

    async def stop(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def answer(self, data: bytes, sender: tuple[str | int, ...] = ("", 0)) -> bytes | None:
        """The reply to one request datagram from `sender`, or None to stay silent.

        As in the vanilla server, the challenge token belongs to the sender's address (clients may use a
        new session id for the full-stat request).
        """
        if len(data) < 7 or not data.startswith(_MAGIC):  # noqa: PLR2004 - magic, type and session
            return None
        kind = data[2]
        session = data[3:7]
        client = sender[:2]
        if kind == _HANDSHAKE:
            self.handshakes += 1
            token = random.randint(1, 2**31 - 1)  # noqa: S311 - a test token, not a secret
            self._tokens[client] = token
            return bytes([_HANDSHAKE]) + session + str(token).encode() + b"\x00"
        if kind == _STAT and len(data) >= 11:  # noqa: PLR2004 - header and challenge token
            token = struct.unpack(">i", data[7:11])[0]
            if self._tokens.get(client) != token:
                return None
            self.full_stat_requests += 1
            return bytes([_STAT]) + session + self._full_stat()
        return None

    def _full_stat(self) -> bytes:
        cfg = self.config
        pairs = {
            "hostname": cfg.motd,
            "gametype": "SMP",
            "game_id": "MINECRAFT",
            "version": cfg.version,
            "plugins": cfg.plugins,
            "map": cfg.map_name,
            "numplayers": str(len(cfg.players) if cfg.online is None else cfg.online),
            "maxplayers": str(cfg.max_players),
            "hostport": str(cfg.host_port),
            "hostip": LOOPBACK,
        }
        body = bytearray(b"splitnum\x00\x80\x00")
        for key, value in pairs.items():
            body += key.encode("latin-1") + b"\x00" + value.encode("latin-1", "replace") + b"\x00"
        body += b"\x00\x01player_\x00\x00"
        for name in cfg.players:
            body += name.encode("latin-1", "replace") + b"\x00"
        body += b"\x00"
        return bytes(body)
