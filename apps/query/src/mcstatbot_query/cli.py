"""`mcstatbot status HOST[:PORT] [--edition java|bedrock|auto] [--json] [--no-private]`.

A one-off check in the terminal, on the same probe code as the service (no cache). It runs on the
user's own machine, so private and loopback addresses are allowed unless `--no-private` is given or
ALLOW_PRIVATE_ADDRESSES is set in the environment (then its value decides). Other settings (MC_TIMEOUT,
DNS_NAMESERVERS, ...) are read from the environment as the service reads them.

Exit status: 0 online, 1 offline, 2 bad input (an invalid or refused address, or bad arguments).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from mcstatbot_common.addresses import InvalidAddressError, parse_address
from mcstatbot_common.models import Edition, ServerStatus
from pydantic import ValidationError

from mcstatbot_query.errors import ForbiddenAddressError
from mcstatbot_query.probe import Prober
from mcstatbot_query.resolver import Resolver
from mcstatbot_query.settings import QuerySettings

EXIT_ONLINE, EXIT_OFFLINE, EXIT_BAD_INPUT = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcstatbot", description="Check a Minecraft server from the terminal."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    status = commands.add_parser(
        "status", help="show whether a server is up, who plays and how fast it answers"
    )
    status.add_argument("address", help="HOST, HOST:PORT, an IPv4 address or [IPv6]:PORT")
    status.add_argument("--edition", choices=[e.value for e in Edition], default=Edition.AUTO.value)
    status.add_argument("--json", action="store_true", help="print the ServerStatus as JSON")
    status.add_argument(
        "--no-private",
        action="store_true",
        help="refuse private, loopback and metadata addresses, as the service does",
    )
    return parser


def summary(status: ServerStatus) -> str:
    """A readable, plain-text summary of a status."""
    if not status.online:
        error = status.error
        reason = f"{error.code.value}: {error.message}" if error is not None else "no answer"
        line = f"{status.address} is offline ({reason})"
        if status.placeholder is not None:
            line += f"\n  placeholder ({status.placeholder.host}): {status.placeholder.text}"
        return line
    lines = [f"{status.address} is online ({status.edition.value})"]
    if status.version is not None:
        lines.append(f"  version: {status.version.name}")
    if status.motd is not None and status.motd.clean.strip():
        motd_lines = status.motd.clean.splitlines() or [""]
        lines.append(f"  motd:    {motd_lines[0]}")
        lines.extend(f"           {line}" for line in motd_lines[1:])
    if status.players is not None:
        lines.append(f"  players: {status.players.online}/{status.players.max}")
        names = ", ".join(p.name for p in status.players.sample)
        if names:
            lines.append(f"           {names}")
    if status.software is not None:
        software = " ".join(filter(None, (status.software.name, status.software.version)))
        counts = [f"{len(status.mods)} mods"] if status.mods else []
        counts += [f"{len(status.plugins)} plugins"] if status.plugins else []
        lines.append(f"  runs:    {', '.join([software, *counts])}")
    if status.latency_ms is not None:
        lines.append(f"  latency: {status.latency_ms:.1f} ms")
    if status.srv is not None:
        lines.append(f"  srv:     {status.srv.target}:{status.srv.port}")
    return "\n".join(lines)


async def _probe(settings: QuerySettings, address_text: str, edition: Edition) -> ServerStatus:
    address = parse_address(address_text)
    resolver = Resolver(allow_private=settings.allow_private_addresses, nameservers=settings.nameservers())
    return await Prober(settings, resolver).status(address, edition)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = QuerySettings()
    except ValidationError as exc:
        print(f"mcstatbot: invalid settings in the environment: {exc}", file=sys.stderr)  # noqa: T201
        return EXIT_BAD_INPUT
    allow_private = settings.allow_private_addresses if "ALLOW_PRIVATE_ADDRESSES" in os.environ else True
    settings = settings.model_copy(update={"allow_private_addresses": allow_private and not args.no_private})
    try:
        status = asyncio.run(_probe(settings, args.address, Edition(args.edition)))
    except (InvalidAddressError, ForbiddenAddressError) as exc:
        print(f"mcstatbot: {exc}", file=sys.stderr)  # noqa: T201
        return EXIT_BAD_INPUT
    print(status.model_dump_json(indent=2, exclude={"debug"}) if args.json else summary(status))  # noqa: T201
    return EXIT_ONLINE if status.online else EXIT_OFFLINE


if __name__ == "__main__":
    sys.exit(main())
