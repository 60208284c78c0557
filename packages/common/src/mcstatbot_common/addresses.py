"""Parsing what a user typed as a server address into a host and an optional port.

Both the query service (before it probes) and the bot (before it calls the query service, and to
put the server into a button's callback data) use this one parser.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

import idna

MAX_HOSTNAME_LENGTH = 253
MAX_LABEL_LENGTH = 63
JAVA_DEFAULT_PORT = 25565
BEDROCK_DEFAULT_PORT = 19132

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_PORT = re.compile(r"^[0-9]{1,5}$")


class InvalidAddressError(ValueError):
    """The text is not a server address; the message says why, in words a user understands."""


@dataclass(frozen=True, slots=True)
class ServerAddress:
    """A syntactically valid address: a lower-case ASCII host (punycode for IDNs) and maybe a port."""

    host: str
    port: int | None = None

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None

    def with_port(self, default_port: int) -> str:
        """`host:port` (IPv6 in brackets), with `default_port` when none was given."""
        return format_host_port(self.host, self.port if self.port is not None else default_port)

    def __str__(self) -> str:
        if self.port is None:
            ip = self.ip
            return f"[{self.host}]" if ip is not None and ip.version == 6 else self.host  # noqa: PLR2004
        return format_host_port(self.host, self.port)


def format_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_address(text: str) -> ServerAddress:
    """Parse `host`, `host:port`, an IPv4 address, `[IPv6]`, `[IPv6]:port` or a bare IPv6 address.

    Raises:
        InvalidAddressError: for anything else, with a message that names the problem.
    """
    if not isinstance(text, str):
        raise InvalidAddressError("the address must be text")
    value = text.strip()
    if not value:
        raise InvalidAddressError("the address is empty")
    if len(value) > MAX_HOSTNAME_LENGTH + 8:
        raise InvalidAddressError(f"the address is longer than {MAX_HOSTNAME_LENGTH} characters")
    if any(ch.isspace() for ch in value):
        raise InvalidAddressError("the address contains spaces")
    for prefix in ("minecraft://", "http://", "https://"):
        if value.lower().startswith(prefix):
            raise InvalidAddressError("give the server as host or host:port, without a scheme")
    if "/" in value or "@" in value or "?" in value or "#" in value:
        raise InvalidAddressError("the address may contain only a host name or IP and a port")

    host_part, port = _split_port(value)
    return ServerAddress(host=_normalise_host(host_part), port=port)


def _split_port(value: str) -> tuple[str, int | None]:
    if value.startswith("["):
        end = value.find("]")
        if end == -1:
            raise InvalidAddressError("an IPv6 address opened with '[' must close with ']'")
        host, rest = value[1:end], value[end + 1 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise InvalidAddressError("the text in [brackets] is not an IPv6 address") from None
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise InvalidAddressError("after ']' only ':port' may follow")
        return host, _parse_port(rest[1:])
    if value.count(":") > 1:
        try:
            ipaddress.IPv6Address(value)
        except ValueError:
            raise InvalidAddressError(
                "an IPv6 address with a port must be written as [address]:port"
            ) from None
        return value, None
    if ":" in value:
        host, _, port_text = value.partition(":")
        return host, _parse_port(port_text)
    return value, None


def _parse_port(text: str) -> int:
    if not _PORT.fullmatch(text):
        raise InvalidAddressError("the port must be a number from 1 to 65535")
    port = int(text)
    if not 1 <= port <= 65535:  # noqa: PLR2004
        raise InvalidAddressError("the port must be a number from 1 to 65535")
    return port


def _normalise_host(host: str) -> str:  # noqa: C901 - one check per rule, each with its own message
    if not host:
        raise InvalidAddressError("the host name is missing")
    if "%" in host:  # checked first: ipaddress accepts scoped IPv6 addresses (fe80::1%eth0)
        raise InvalidAddressError("scoped IPv6 addresses are not supported")
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        pass
    name = host.rstrip(".") if host.endswith(".") and not host.endswith("..") else host
    try:
        ascii_name = idna.encode(name, uts46=True).decode("ascii") if not name.isascii() else name.lower()
    except (idna.IDNAError, UnicodeError, ValueError):
        raise InvalidAddressError("the host name is not a valid internationalised domain name") from None
    if len(ascii_name) > MAX_HOSTNAME_LENGTH:
        raise InvalidAddressError(f"the host name is longer than {MAX_HOSTNAME_LENGTH} characters")
    labels = ascii_name.split(".")
    for label in labels:
        if not label:
            raise InvalidAddressError("the host name has an empty part (two dots in a row?)")
        if len(label) > MAX_LABEL_LENGTH:
            raise InvalidAddressError(f"a part of the host name is longer than {MAX_LABEL_LENGTH} characters")
        if not _LABEL.fullmatch(label.replace("_", "-")) or label.startswith("-") or label.endswith("-"):
            raise InvalidAddressError("the host name may contain only letters, digits, hyphens and dots")
    if labels[-1].isdigit():
        raise InvalidAddressError("the address looks like an IP address but is not a valid one")
    return ascii_name
