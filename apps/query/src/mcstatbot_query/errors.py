"""Typed probe failures: every exception a probe can meet maps to exactly one ErrorCode."""

from __future__ import annotations

import asyncio
import errno
import json
import socket
import struct

import dns.exception
import dns.resolver
from mcstatbot_common.models import ErrorCode, ProbeError

_MESSAGES = {
    ErrorCode.TIMEOUT: "the server did not answer in time",
    ErrorCode.REFUSED: "the server refused the connection (nothing listens on that port)",
    ErrorCode.DNS: "the name could not be resolved",
    ErrorCode.UNREACHABLE: "the server cannot be reached from here",
    ErrorCode.PROTOCOL: "the server answered something that is not a Minecraft status",
    ErrorCode.PLACEHOLDER: "the host answered with a placeholder: the server itself is not running",
}

_UNREACHABLE_ERRNOS = frozenset(
    {
        errno.ENETUNREACH,
        errno.EHOSTUNREACH,
        errno.EHOSTDOWN,
        errno.ENETDOWN,
        errno.EADDRNOTAVAIL,
        errno.EAFNOSUPPORT,
    }
)


class ProbeFailedError(Exception):
    """A probe ended without a status; `code` says why in one word."""

    def __init__(self, code: ErrorCode, message: str | None = None) -> None:
        super().__init__(message or _MESSAGES[code])
        self.code = code
        self.message = message or _MESSAGES[code]

    def to_model(self) -> ProbeError:
        return ProbeError(code=self.code, message=self.message)


class ForbiddenAddressError(Exception):
    """The address resolves to an IP the private-address rule refuses."""


def classify(exc: BaseException) -> ProbeFailedError:  # noqa: PLR0911 - one branch per family of errors
    """Map any exception met while probing to one typed failure."""
    if isinstance(exc, ProbeFailedError):
        return exc
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError, dns.exception.Timeout, socket.timeout)):
        return ProbeFailedError(ErrorCode.TIMEOUT)
    if isinstance(
        exc, (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers, socket.gaierror)
    ):
        return ProbeFailedError(ErrorCode.DNS)
    if isinstance(exc, dns.exception.DNSException):
        return ProbeFailedError(ErrorCode.DNS)
    if isinstance(exc, ConnectionRefusedError):
        return ProbeFailedError(ErrorCode.REFUSED)
    if isinstance(exc, OSError) and exc.errno in _UNREACHABLE_ERRNOS:
        return ProbeFailedError(ErrorCode.UNREACHABLE)
    if isinstance(exc, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, EOFError)):
        return ProbeFailedError(ErrorCode.PROTOCOL, "the server closed the connection without a valid answer")
    if isinstance(
        exc,
        (
            OSError,
            ValueError,  # includes json.JSONDecodeError and UnicodeDecodeError
            json.JSONDecodeError,
            struct.error,
            KeyError,
            IndexError,
            TypeError,
            AttributeError,
            RecursionError,
            OverflowError,
        ),
    ):
        return ProbeFailedError(ErrorCode.PROTOCOL)
    return ProbeFailedError(ErrorCode.PROTOCOL)
