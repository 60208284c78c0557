"""The bot's HTTP clients, both on httpx: the query service's (`query_http_client`) and the Bot API's
(python-telegram-bot's own `HTTPXRequest`, `bot_api_request`).

httpx keeps connections alive, speaks TLS with certifi (or `SSL_CERT_FILE`), honours `HTTP(S)_PROXY` /
`NO_PROXY`, and the OpenTelemetry httpx instrumentation that `setup_tracing("bot")` installs makes one
CLIENT span per request, with the trace context in its headers and the token redacted from Bot API URLs.
What httpx lacks is a bound on the size of a response: `bound_response` (a response event hook) refuses a
response whose Content-Length says more than the bound before its body is read, and stops reading one
whose body grows past it (`ResponseTooLargeError`, an `httpx.HTTPError`, which PTB reports as a
NetworkError).

Every client of the process shares one TLS context (`tls_context`): httpx would load the CA bundle into a
new one for each client, about 0.8 MiB apiece at rest (docs/benchmarks.md, footprint).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from ssl import SSLContext

    from telegram.request import HTTPXRequest

MAX_QUERY_RESPONSE_BYTES = 2 * 1024 * 1024
"""A ServerStatus with a 64 KB icon and a long player sample is well under this."""
MAX_BOT_API_RESPONSE_BYTES = 16 * 1024 * 1024
"""getUpdates answers up to 100 updates; Telegram keeps each far smaller than this in all."""


@functools.cache
def tls_context() -> SSLContext:
    """httpx's default TLS context (certifi, or SSL_CERT_FILE / SSL_CERT_DIR), made once per process for
    every client: an SSLContext is meant to be shared."""
    return httpx.create_ssl_context()


class ResponseTooLargeError(httpx.HTTPError):
    """The response is (or says it is) larger than the client's bound; it was not read further."""


class _BoundedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, limit: int) -> None:
        self._inner = inner
        self._limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        received = 0
        async for chunk in self._inner:
            received += len(chunk)
            if received > self._limit:
                raise ResponseTooLargeError(f"the response is larger than {self._limit} bytes")
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


def bound_response(limit: int) -> Callable[[httpx.Response], Awaitable[None]]:
    """An httpx response hook: at most `limit` bytes of body (as received, before any decoding)."""

    async def hook(response: httpx.Response) -> None:
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            await response.aclose()
            raise ResponseTooLargeError(f"the response says it has {length} bytes, more than {limit}")
        if isinstance(response.stream, httpx.AsyncByteStream):
            response.stream = _BoundedStream(response.stream, limit)

    return hook


def query_http_client(
    base_url: str,
    *,
    timeout: float | httpx.Timeout,
    max_connections: int = 100,
    keepalive_expiry: float = 5.0,
    max_response_bytes: int = MAX_QUERY_RESPONSE_BYTES,
    **options: Any,
) -> httpx.AsyncClient:
    """The pooled client for the query service (made once, in the app's lifespan); `options` go to
    httpx.AsyncClient (e.g. `verify`, else the shared `tls_context()`)."""
    options.setdefault("verify", tls_context())
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=keepalive_expiry,
        ),
        event_hooks={"response": [bound_response(max_response_bytes)]},
        **options,
    )


def bot_api_request(
    *,
    connection_pool_size: int,
    connect_timeout: float,
    read_timeout: float,
    pool_timeout: float = 1.0,
    max_response_bytes: int = MAX_BOT_API_RESPONSE_BYTES,
    **httpx_options: Any,
) -> HTTPXRequest:
    """PTB's HTTPXRequest with the response bound and the shared `tls_context()` (unless `httpx_options`
    says `verify`)."""
    from telegram.request import HTTPXRequest  # noqa: PLC0415 - PTB loads only where the bot is built

    httpx_options.setdefault("verify", tls_context())

    return HTTPXRequest(
        connection_pool_size=connection_pool_size,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        pool_timeout=pool_timeout,
        httpx_kwargs={"event_hooks": {"response": [bound_response(max_response_bytes)]}, **httpx_options},
    )
