"""parse_address: what users type, and (hypothesis) that nothing makes it raise anything else."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mcstatbot_common.addresses import InvalidAddressError, ServerAddress, parse_address

if TYPE_CHECKING:
    import ipaddress


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("play.example.com", "play.example.com", None),
        ("  Play.Example.COM:25566 \n", "play.example.com", 25566),
        ("play.example.com.", "play.example.com", None),
        ("1.2.3.4", "1.2.3.4", None),
        ("1.2.3.4:19132", "1.2.3.4", 19132),
        ("[2001:db8::1]:25565", "2001:db8::1", 25565),
        ("[2001:DB8:0::1]", "2001:db8::1", None),
        ("2001:db8::1", "2001:db8::1", None),
        ("mc.bücher.de", "mc.xn--bcher-kva.de", None),
        ("пример.рф:1", "xn--e1afmkfd.xn--p1ai", 1),
        ("mc_server.example.com", "mc_server.example.com", None),
        ("localhost:65535", "localhost", 65535),
    ],
)
def test_valid_addresses(text: str, host: str, port: int | None) -> None:
    assert parse_address(text) == ServerAddress(host, port)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "a b",
        "host:0",
        "host:65536",
        "host:-1",
        "host:",
        ":25565",
        "http://host",
        "host/path",
        "user@host",
        "[::1",
        "[nope]:1",
        "[::1]x",
        "::1:25565:x",
        "a..b",
        "-a.com",
        "a-.com",
        "a" * 64 + ".com",
        ".".join(["a" * 63] * 4) + ".com",
        "1.2.3.256",
        "fe80::1%eth0",
        "[fe80::1%eth0]:25565",
        "exa$mple.com",
    ],
)
def test_invalid_addresses_say_why(text: str) -> None:
    with pytest.raises(InvalidAddressError) as info:
        parse_address(text)
    assert str(info.value)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_no_input_raises_anything_else(text: str) -> None:
    try:
        result = parse_address(text)
    except InvalidAddressError:
        return
    assert result.host
    assert result.port is None or 1 <= result.port <= 65535
    assert len(result.host) <= 253


_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
_hostname = (
    st.lists(_label, min_size=1, max_size=4).map(".".join).filter(lambda h: not h.split(".")[-1].isdigit())
)
_port = st.one_of(st.none(), st.integers(min_value=1, max_value=65535))


@settings(max_examples=300, deadline=None)
@given(_hostname, _port)
def test_hostname_round_trip(host: str, port: int | None) -> None:
    address = ServerAddress(host, port)
    assert parse_address(str(address)) == address


@settings(max_examples=300, deadline=None)
@given(st.ip_addresses(), _port)
def test_ip_round_trip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int | None) -> None:
    address = ServerAddress(ip.compressed, port)
    parsed = parse_address(str(address))
    assert parsed == address
    assert parsed.ip == ip


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=40), _port)
def test_unicode_names_either_parse_to_ascii_or_fail_cleanly(name: str, port: int | None) -> None:
    text = name if port is None else f"{name}:{port}"
    try:
        result = parse_address(text)
    except InvalidAddressError:
        return
    assert result.host.isascii()
