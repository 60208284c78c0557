"""Thousands of Java Server List Ping responders on loopback, all in ONE asyncio process.

Each listening port answers the modern status exchange (handshake, status request, ping) with a small
status JSON and records when each status request came; `PingFarm` runs it as a child process and reads
those times back over a small control port (for the watcher benchmark: every watched server its own port,
every check counted at the server, not from the watcher's own claims).

    with PingFarm(tmp_path / "farm.log", ports=5000) as farm:
        ...  # watch 127.0.0.1:p for p in farm.ports
        times = farm.request_times()  # {port: [epoch seconds of each status request]}
        farm.reset()

`python -m mcstatbot_testkit.ping_farm --ports N --ready-file PATH [--control-port P]` is the child; it
binds its control port first (by default one the kernel picks) and writes it with the ports to the ready file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Self, cast

from mcstatbot_testkit.hostile import status_packet, varint
from mcstatbot_testkit.net import LOOPBACK
from mcstatbot_testkit.process import ManagedProcess

if TYPE_CHECKING:
    from collections.abc import Sequence

STATUS = b'{"version":{"name":"1.21.1","protocol":767},"players":{"max":20,"online":0},"description":"bench"}'
STATUS_PACKET = status_packet(STATUS)
MAX_PACKET = 1024
"""A client's handshake, status request and ping are all far below this; more closes the connection."""
VARINT_MAX_SHIFT = 35
"""A varint is at most five bytes."""


def _read_varint(data: bytes | bytearray, start: int) -> tuple[int, int] | None:
    """(value, index after it), or None when `data` ends inside the varint."""
    value = shift = 0
    index = start
    while index < len(data):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        index += 1
        if not byte & 0x80:
            return value, index
        shift += 7
        if shift > VARINT_MAX_SHIFT:
            raise ValueError("varint too long")
    return None


class _Responder(asyncio.Protocol):
    """One connection to one port: handshake (state 1), status request (counted), ping, then close."""

    def __init__(self, farm: _Farm, port: int) -> None:
        self.farm = farm
        self.port = port
        self.buffer = bytearray()
        self.handshaken = False
        self.transport = cast("asyncio.Transport", None)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > MAX_PACKET:
            self.transport.close()
            return
        try:
            while (packet := self._next_packet()) is not None:
                self._handle(packet)
        except ValueError:
            self.transport.close()

    def _next_packet(self) -> bytes | None:
        header = _read_varint(self.buffer, 0)
        if header is None:
            return None
        length, start = header
        if len(self.buffer) < start + length:
            return None
        packet = bytes(self.buffer[start : start + length])
        del self.buffer[: start + length]
        return packet

    def _handle(self, packet: bytes) -> None:
        if not packet:
            raise ValueError("empty packet")
        packet_id = packet[0]
        if not self.handshaken:
            if packet_id != 0:
                raise ValueError("no handshake")
            self.handshaken = True  # its next state is 1 (status) from any status client
        elif packet_id == 0:  # status request
            self.farm.times.setdefault(self.port, []).append(time.time())
            self.transport.write(STATUS_PACKET)
        elif packet_id == 1:  # ping: the same 8 bytes back as the pong, then done
            body = varint(1) + packet[1:9]
            self.transport.write(varint(len(body)) + body)
            self.transport.close()
        else:
            raise ValueError("unexpected packet")


class _Farm:
    def __init__(self) -> None:
        self.times: dict[int, list[float]] = {}
        self.servers: list[asyncio.Server] = []

    async def listen(self, count: int) -> list[int]:
        loop = asyncio.get_running_loop()
        ports: list[int] = []
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((LOOPBACK, 0))
            port: int = sock.getsockname()[1]
            server = await loop.create_server(
                lambda port=port: _Responder(self, port),  # type: ignore[misc]
                sock=sock,
                backlog=64,
            )
            self.servers.append(server)
            ports.append(port)
        return ports

    async def control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One command per connection: `times` (the request times by port, JSON) or `reset`."""
        command = (await reader.readline()).strip()
        if command == b"times":
            writer.write(json.dumps({str(port): t for port, t in self.times.items()}).encode())
        elif command == b"reset":
            self.times.clear()
            writer.write(b"{}")
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def _raise_open_files_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = needed if hard == resource.RLIM_INFINITY else min(max(soft, needed), hard)
    if wanted > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


async def _serve(count: int, ready_file: Path, control_port: int) -> None:
    _raise_open_files_limit(count + 4096)
    farm = _Farm()
    # The control port first (0: the kernel's choice), so that the farm's own ports cannot take it.
    control = await asyncio.start_server(farm.control, LOOPBACK, control_port)
    ports = await farm.listen(count)
    tmp = ready_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({"ports": ports, "control_port": control.sockets[0].getsockname()[1]}))
    tmp.replace(ready_file)
    async with control:
        await control.serve_forever()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ports", type=int, required=True)
    parser.add_argument("--ready-file", type=Path, required=True)
    parser.add_argument("--control-port", type=int, default=0)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.ports, args.ready_file, args.control_port))


class PingFarm(ManagedProcess):
    """The farm as a child process: `ports` once started, `request_times()`, `reset()`."""

    def __init__(self, log_path: Path, ports: int, *, argv_prefix: Sequence[str] = ()) -> None:
        """`argv_prefix` goes before the Python command (e.g. `taskset -c 1`)."""
        self.count = ports
        self.control_port = 0  # the farm's choice, read from its ready file
        self.ready_file = log_path.with_suffix(".ports.json")
        self.ports: list[int] = []
        command = [sys.executable, "-m", "mcstatbot_testkit.ping_farm", "--ports", str(ports)]
        command += ["--ready-file", str(self.ready_file)]
        super().__init__([*argv_prefix, *command], log_path)

    def start(self, timeout: float = 120.0) -> Self:
        self.ready_file.unlink(missing_ok=True)
        super().start()
        deadline = time.monotonic() + timeout
        while not self.ready_file.exists():
            if not self.running:
                raise RuntimeError(f"the ping farm exited early:\n{self.log_text()[-4000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the ping farm was not listening after {timeout} s")
            time.sleep(0.05)
        ready = json.loads(self.ready_file.read_text())
        self.ports, self.control_port = ready["ports"], ready["control_port"]
        return self

    def _ask(self, command: bytes) -> bytes:
        with socket.create_connection((LOOPBACK, self.control_port), timeout=30) as sock:
            sock.sendall(command + b"\n")
            chunks = []
            while chunk := sock.recv(1 << 16):
                chunks.append(chunk)
        return b"".join(chunks)

    def request_times(self) -> dict[int, list[float]]:
        """The epoch time of every status request so far, by port (ports never asked are left out)."""
        return {int(port): times for port, times in json.loads(self._ask(b"times")).items()}

    def reset(self) -> None:
        self._ask(b"reset")


if __name__ == "__main__":
    main()
