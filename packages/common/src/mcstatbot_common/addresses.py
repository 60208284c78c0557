"""Parsing what a user typed as a server address into a host and an optional port.

Both the query service (before it probes) and the bot (before it calls the query service, and to
put the server into a button's callback data) use this one parser.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from enum import StrEnum

import idna

MAX_HOSTNAME_LENGTH = 253
MAX_LABEL_LENGTH = 63
JAVA_DEFAULT_PORT = 25565
BEDROCK_DEFAULT_PORT = 19132

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_PORT = re.compile(r"^[0-9]{1,5}$")


class AddressProblem(StrEnum):
    """Why a text is not a server address: one value per rule of `parse_address`."""

    NOT_TEXT = "not_text"
    EMPTY = "empty"
    TOO_LONG = "too_long"
    SPACES = "spaces"
    SCHEME = "scheme"
    NOT_HOST_PORT = "not_host_port"
    BRACKET_UNCLOSED = "bracket_unclosed"
    BRACKET_NOT_IPV6 = "bracket_not_ipv6"
    AFTER_BRACKET = "after_bracket"
    IPV6_PORT_FORM = "ipv6_port_form"
    PORT = "port"
    HOST_MISSING = "host_missing"
    SCOPED_IPV6 = "scoped_ipv6"
    IDN = "idn"
    HOST_TOO_LONG = "host_too_long"
    EMPTY_LABEL = "empty_label"
    LABEL_TOO_LONG = "label_too_long"
    HOST_CHARACTERS = "host_characters"
    BAD_IP = "bad_ip"


PROBLEM_TEXTS: dict[AddressProblem, str] = {
    AddressProblem.NOT_TEXT: "the address must be text",
    AddressProblem.EMPTY: "the address is empty",
    AddressProblem.TOO_LONG: "the address is longer than {limit} characters",
    AddressProblem.SPACES: "the address contains spaces",
    AddressProblem.SCHEME: "give the server as host or host:port, without a scheme",
    AddressProblem.NOT_HOST_PORT: "the address may contain only a host name or IP and a port",
    AddressProblem.BRACKET_UNCLOSED: "an IPv6 address opened with '[' must close with ']'",
    AddressProblem.BRACKET_NOT_IPV6: "the text in [brackets] is not an IPv6 address",
    AddressProblem.AFTER_BRACKET: "after ']' only ':port' may follow",
    AddressProblem.IPV6_PORT_FORM: "an IPv6 address with a port must be written as [address]:port",
    AddressProblem.PORT: "the port must be a number from 1 to 65535",
    AddressProblem.HOST_MISSING: "the host name is missing",
    AddressProblem.SCOPED_IPV6: "scoped IPv6 addresses are not supported",
    AddressProblem.IDN: "the host name is not a valid internationalised domain name",
    AddressProblem.HOST_TOO_LONG: "the host name is longer than {limit} characters",
    AddressProblem.EMPTY_LABEL: "the host name has an empty part (two dots in a row?)",
    AddressProblem.LABEL_TOO_LONG: "a part of the host name is longer than {limit} characters",
    AddressProblem.HOST_CHARACTERS: "the host name may contain only letters, digits, hyphens and dots",
    AddressProblem.BAD_IP: "the address looks like an IP address but is not a valid one",
}
"""Each problem in English, `{limit}` filled from the error's fields. The bot translates the same texts
(mcstatbot_bot.formatting.ADDRESS_REASONS); the query service answers them as they are."""


class InvalidAddressError(ValueError):
    """The text is not a server address; the message says why, in words a user understands, and
    `problem` (with `fields`) says it in a form a caller can translate."""

    def __init__(self, problem: AddressProblem, **fields: int) -> None:
        super().__init__(PROBLEM_TEXTS[problem].format(**fields))
        self.problem = problem
        self.fields = fields


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
        raise InvalidAddressError(AddressProblem.NOT_TEXT)
    value = text.strip()
    if not value:
        raise InvalidAddressError(AddressProblem.EMPTY)
    if len(value) > MAX_HOSTNAME_LENGTH + 8:
        raise InvalidAddressError(AddressProblem.TOO_LONG, limit=MAX_HOSTNAME_LENGTH)
    if any(ch.isspace() for ch in value):
        raise InvalidAddressError(AddressProblem.SPACES)
    for prefix in ("minecraft://", "http://", "https://"):
        if value.lower().startswith(prefix):
            raise InvalidAddressError(AddressProblem.SCHEME)
    if "/" in value or "@" in value or "?" in value or "#" in value:
        raise InvalidAddressError(AddressProblem.NOT_HOST_PORT)

    host_part, port = _split_port(value)
    return ServerAddress(host=_normalise_host(host_part), port=port)


def _split_port(value: str) -> tuple[str, int | None]:
    if value.startswith("["):
        end = value.find("]")
        if end == -1:
            raise InvalidAddressError(AddressProblem.BRACKET_UNCLOSED)
        host, rest = value[1:end], value[end + 1 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise InvalidAddressError(AddressProblem.BRACKET_NOT_IPV6) from None
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise InvalidAddressError(AddressProblem.AFTER_BRACKET)
        return host, _parse_port(rest[1:])
    if value.count(":") > 1:
        try:
            ipaddress.IPv6Address(value)
        except ValueError:
            raise InvalidAddressError(AddressProblem.IPV6_PORT_FORM) from None
        return value, None
    if ":" in value:
        host, _, port_text = value.partition(":")
        return host, _parse_port(port_text)
    return value, None


def _parse_port(text: str) -> int:
    if not _PORT.fullmatch(text):
        raise InvalidAddressError(AddressProblem.PORT)
    port = int(text)
    if not 1 <= port <= 65535:  # noqa: PLR2004
        raise InvalidAddressError(AddressProblem.PORT)
    return port


def _normalise_host(host: str) -> str:  # noqa: C901 - one check per rule, each with its own message
    if not host:
        raise InvalidAddressError(AddressProblem.HOST_MISSING)
    if "%" in host:  # checked first: ipaddress accepts scoped IPv6 addresses (fe80::1%eth0)
        raise InvalidAddressError(AddressProblem.SCOPED_IPV6)
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        pass
    name = host.rstrip(".") if host.endswith(".") and not host.endswith("..") else host
    try:
        ascii_name = idna.encode(name, uts46=True).decode("ascii") if not name.isascii() else name.lower()
    except (idna.IDNAError, UnicodeError, ValueError):
        raise InvalidAddressError(AddressProblem.IDN) from None
    if len(ascii_name) > MAX_HOSTNAME_LENGTH:
        raise InvalidAddressError(AddressProblem.HOST_TOO_LONG, limit=MAX_HOSTNAME_LENGTH)
    labels = ascii_name.split(".")
    for label in labels:
        if not label:
            raise InvalidAddressError(AddressProblem.EMPTY_LABEL)
        if len(label) > MAX_LABEL_LENGTH:
            raise InvalidAddressError(AddressProblem.LABEL_TOO_LONG, limit=MAX_LABEL_LENGTH)
        if not _LABEL.fullmatch(label.replace("_", "-")) or label.startswith("-") or label.endswith("-"):
            raise InvalidAddressError(AddressProblem.HOST_CHARACTERS)
    if labels[-1].isdigit():
        raise InvalidAddressError(AddressProblem.BAD_IP)
    return ascii_name
