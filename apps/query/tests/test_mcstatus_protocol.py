"""The private mcstatus pieces the probes drive (mcstatbot_query.mcstatus_protocol): names and shapes.

A new mcstatus that moves or reshapes any of them fails here, saying what changed, before a probe meets
it; widen the pin in apps/query/pyproject.toml only once this passes against the new release.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version
from pathlib import Path

import pytest
from mcstatbot_query import mcstatus_protocol
from mcstatbot_query.connection import BoundedTCPConnection, UDPConnection
from mcstatbot_query.mcstatus_protocol import (
    Address,
    AsyncJavaClient,
    AsyncLegacyClient,
    AsyncQueryClient,
    BaseAsyncConnection,
    BedrockClient,
)


def _parameters(call: object) -> list[str]:
    return [name for name in inspect.signature(call).parameters if name != "self"]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("client", "constructor", "coroutines"),
    [
        (AsyncJavaClient, ["connection", "address", "version"], ["handshake", "read_status"]),
        (AsyncLegacyClient, ["connection"], ["read_status"]),
        (AsyncQueryClient, ["connection"], ["handshake", "read_query"]),
    ],
)
def test_protocol_clients_keep_their_shape(
    client: type, constructor: list[str], coroutines: list[str]
) -> None:
    parameters = _parameters(client)
    assert parameters[: len(constructor)] == constructor, f"{client.__name__}({', '.join(parameters)})"
    for name in coroutines:
        assert inspect.iscoroutinefunction(getattr(client, name, None)), f"{client.__name__}.{name}"


def test_bedrock_ping_pieces_keep_their_shape() -> None:
    assert isinstance(BedrockClient.request_status_data, bytes)
    assert _parameters(BedrockClient.parse_response) == ["data", "latency"]
    assert isinstance(inspect.getattr_static(BedrockClient, "parse_response"), staticmethod)


def test_connections_are_what_the_clients_expect() -> None:
    assert {"read", "write"} <= BaseAsyncConnection.__abstractmethods__
    for connection in (BoundedTCPConnection, UDPConnection):
        assert issubclass(connection, BaseAsyncConnection)
        assert not inspect.isabstract(connection), connection.__abstractmethods__
    address = Address("play.example.com", 25565)
    assert (address.host, address.port) == ("play.example.com", 25565)


def test_every_private_import_lives_in_the_adapter() -> None:
    """No other module of the service imports mcstatus's private modules."""
    package = Path(inspect.getfile(mcstatus_protocol)).parent
    offenders = [
        path.name
        for path in package.glob("*.py")
        if path.name != "mcstatus_protocol.py" and "mcstatus._" in path.read_text()
    ]
    assert offenders == []
    assert mcstatus_protocol.__all__
    assert version("mcstatus").startswith("14.2."), version("mcstatus")  # the range pinned in pyproject
