"""Every private piece of mcstatus the probes use, in one place.

mcstatus's public `JavaServer` / `BedrockServer` resolve names and open their own sockets; a probe must
connect to an IP that was already checked (no second DNS look-up) through a connection that bounds what a
server may send, so it drives mcstatus's protocol clients itself. They live in private modules
(`mcstatus._protocol`, `mcstatus._net`) that any release may change: apps/query/pyproject.toml pins
mcstatus to the range this module was checked against, and apps/query/tests/test_mcstatus_protocol.py
fails, naming what moved, when a name or a signature used here changes.
"""

from mcstatus._net.address import Address
from mcstatus._protocol.bedrock_client import BedrockClient
from mcstatus._protocol.io.connection import (
    BaseAsyncConnection,
    TCPAsyncSocketConnection,
    UDPAsyncSocketConnection,
)
from mcstatus._protocol.java_client import AsyncJavaClient
from mcstatus._protocol.legacy_client import AsyncLegacyClient
from mcstatus._protocol.query_client import AsyncQueryClient

__all__ = [
    "Address",
    "AsyncJavaClient",
    "AsyncLegacyClient",
    "AsyncQueryClient",
    "BaseAsyncConnection",
    "BedrockClient",
    "TCPAsyncSocketConnection",
    "UDPAsyncSocketConnection",
]
