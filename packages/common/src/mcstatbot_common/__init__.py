"""Code shared by the mcstatbot services: the query API's models, address parsing and settings."""

from mcstatbot_common.addresses import (
    BEDROCK_DEFAULT_PORT,
    JAVA_DEFAULT_PORT,
    InvalidAddressError,
    ServerAddress,
    parse_address,
)
from mcstatbot_common.models import (
    Edition,
    ErrorCode,
    ErrorDetail,
    PlayerList,
    ProbeError,
    ServerStatus,
    StatusRequest,
)

__all__ = [
    "BEDROCK_DEFAULT_PORT",
    "JAVA_DEFAULT_PORT",
    "Edition",
    "ErrorCode",
    "ErrorDetail",
    "InvalidAddressError",
    "PlayerList",
    "ProbeError",
    "ServerAddress",
    "ServerStatus",
    "StatusRequest",
    "parse_address",
]
