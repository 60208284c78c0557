"""A small HTTP/1.1 client with keep-alive pools for the bot's hot path: Bot API calls and query requests.

Why not httpx there: on the benchmark machine httpx costs about 1.3 ms of CPU per request (its request
and response models, the httpcore pool scanning every pooled connection twice per request, h11 in pure
Python, anyio's stream layer), and a `/status` makes two requests, so httpx alone held one core under
~250 updates/s. This client does what the bot needs in ~0.1 ms:

- HTTP/1.1 with keep-alive connections per origin (at most `max_connections`; idle ones are closed after
  `keepalive_expiry`, and at once when the server closes them), responses parsed by httptools (the C
  parser uvicorn uses), Content-Length, chunked and close-delimited bodies, gzip/deflate;
- TLS with httpx's own certificate settings (`httpx.create_ssl_context()`: certifi, `SSL_CERT_FILE`,
  `SSL_CERT_DIR`);
- a connect timeout, a pool timeout (waiting for a free connection) and one timeout for sending the
  request and reading the whole response; a connection that timed out or was cancelled is dropped;
- a CLIENT span per request named and attributed like the OpenTelemetry httpx instrumentation's
  (`POST`, `http.method`, `http.url`, `http.status_code`, error status for 4xx/5xx), with the URL passed
  through `span_url` first (the Bot API's URLs carry the token), and the trace context injected into
  the request headers when `inject_trace_context` is set.

Left to httpx: proxies (`uses_proxy(url)`; callers keep httpx when `HTTP(S)_PROXY`/`ALL_PROXY` applies),
redirects, cookies, HTTP/2, streaming and multipart uploads.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import urlsplit

import httptools
import httpx
from opentelemetry import propagate, trace

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, Mapping

tracer = trace.get_tracer("mcstatbot.bot.http")

_USER_AGENT = "mcstatbot-bot"
_URL_CACHE_SIZE = 256
_HTTP_ERROR_STATUS = 400
_FORBIDDEN_IN_HEAD = ("\r", "\n")


class HttpError(Exception):
    """No usable response: the connection failed, the response was malformed, or time ran out."""


class HttpConnectError(HttpError):
    """The connection could not be opened (refused, unreachable, name not resolved, TLS failed)."""


class HttpTimeoutError(HttpError):
    """Connecting, or sending the request and reading the whole response, took too long."""


class HttpPoolTimeoutError(HttpTimeoutError):
    """Every connection to the origin stayed busy for the whole pool timeout; nothing was sent."""


class HttpProtocolError(HttpError):
    """The server closed the connection early or answered something that is not HTTP/1.1."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    headers: dict[str, str]
    """Lower-case names; the last value of a repeated header."""

    def json(self) -> Any:
        return json.loads(self.body)


class Requester(Protocol):
    """What QueryClient needs of an HTTP client: `HttpClient`, or `HttpxRequester` behind a proxy."""

    async def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the request's own deadline, passed on to the client
    ) -> Response: ...

    async def aclose(self) -> None: ...


def uses_proxy(url: str) -> bool:
    """Whether the environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY) sends `url` through a proxy,
    as httpx would (its default trust_env=True honours those variables)."""
    proxies = urllib.request.getproxies_environment()
    if not proxies:
        return False
    parts = urlsplit(url)
    if parts.scheme not in proxies and "all" not in proxies:
        return False
    bypass: Callable[[str, dict[str, str]], bool] = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]  # untyped in typeshed
    return not bypass(parts.hostname or "", proxies)


@dataclass(frozen=True, slots=True)
class _Target:
    origin: tuple[str, str, int]
    """(scheme, host, port): the pool key."""
    host_header: str
    path: str
    span_url: str
    """The URL as spans show it (`span_url(url)` when given)."""


def _parse_url(url: str, span_url: Callable[[str], str] | None = None) -> _Target:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    default_port = 443 if parts.scheme == "https" else 80
    port = parts.port or default_port
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == default_port else f"{shown}:{port}"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if any(c in path for c in (" ", *_FORBIDDEN_IN_HEAD)):
        raise ValueError("the URL's path contains whitespace")
    return _Target((parts.scheme, host, port), host_header, path, span_url(url) if span_url else url)


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Response] | None = None
        self._headers: dict[str, str] = {}
        self._chunks: list[bytes] = []
        self._headers_done = False
        self._reusable = False

    # ---------------------------------------------------------------- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's transports are no subclasses

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self._fail(HttpProtocolError("data from the server while no request was waiting"))
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HttpProtocolError(f"malformed response: {exc}"))

    def eof_received(self) -> bool:
        return False  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        delimited_by_close = (
            self._headers_done
            and "content-length" not in self._headers
            and "chunked" not in self._headers.get("transfer-encoding", "").lower()
        )
        if delimited_by_close:
            self._reusable = False
            self._complete()
            return
        reason = f": {exc}" if exc else ""
        waiter.set_exception(HttpProtocolError(f"the server closed the connection before answering{reason}"))

    # ---------------------------------------------------------------- httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        self._reusable = self._parser.should_keep_alive()
        self._complete()

    # ---------------------------------------------------------------- use
    def send(self, request: bytes) -> asyncio.Future[Response]:
        if self.transport is None or self.closed:
            raise HttpProtocolError("the connection is closed")
        self._waiter = asyncio.get_running_loop().create_future()
        self._headers = {}
        self._chunks = []
        self._headers_done = False
        self._reusable = False
        self.transport.write(request)
        return self._waiter

    @property
    def reusable(self) -> bool:
        return self._reusable and not self.closed and self.transport is not None

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _complete(self) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        body = b"".join(self._chunks)
        self._chunks = []
        encoding = self._headers.get("content-encoding", "identity").lower()
        try:
            body = _decode(body, encoding)
        except zlib.error as exc:
            waiter.set_exception(HttpProtocolError(f"undecodable {encoding} body: {exc}"))
            return
        waiter.set_result(Response(self._parser.get_status_code(), body, self._headers))

    def _fail(self, error: HttpError) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(error)
        self.abort()


def _decode(body: bytes, encoding: str) -> bytes:
    if encoding in {"identity", ""}:
        return body
    if encoding in {"gzip", "x-gzip"}:
        return zlib.decompress(body, wbits=zlib.MAX_WBITS | 16)
    if encoding == "deflate":
        try:
            return zlib.decompress(body)
        except zlib.error:
            return zlib.decompress(body, wbits=-zlib.MAX_WBITS)
    raise zlib.error(f"content encoding {encoding!r} is not supported")


class _Pool:
    """The connections to one origin: at most `limit` open, idle ones reused newest first."""

    def __init__(self, limit: int) -> None:
        self.slots = asyncio.Semaphore(limit)
        self.idle: list[_Connection] = []

    def take_idle(self, now: float, expiry: float) -> _Connection | None:
        while self.idle:
            connection = self.idle.pop()
            if connection.reusable and now - connection.idle_since < expiry:
                return connection
            connection.close()
        return None

    def close(self) -> None:
        for connection in self.idle:
            connection.close()
        self.idle.clear()


class HttpClient:
    """HTTP/1.1 requests with keep-alive pools per origin. `url`s may be absolute or relative to `base_url`.

    `timeout` bounds sending the request and reading the whole response; `connect_timeout` opening a
    connection; `pool_timeout` waiting for a free one. None means no limit.
    """

    def __init__(
        self,
        base_url: str = "",
        *,
        timeout: float | None = 10.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 5.0,
        max_connections: int = 100,
        keepalive_expiry: float = 4.0,
        headers: Mapping[str, str] | None = None,
        inject_trace_context: bool = False,
        span_url: Callable[[str], str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.pool_timeout = pool_timeout
        self._max_connections = max_connections
        self._expiry = keepalive_expiry
        extra = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity", **(headers or {})}
        self._default_head = _header_lines(extra)
        self._inject = inject_trace_context
        self._span_url = span_url
        self._ssl_context = ssl_context
        self._pools: dict[tuple[str, str, int], _Pool] = {}
        self._targets: dict[str, _Target] = {}
        self._closed = False

    async def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the request's deadline, also for the connection state
        connect_timeout: float | None = None,
        pool_timeout: float | None = None,
    ) -> Response:
        """Send one request and read the whole response (any status); raises an HttpError subclass."""
        if self._closed:
            raise RuntimeError("the HTTP client is closed")
        target = self._target(url)
        with tracer.start_as_current_span(
            method,
            kind=trace.SpanKind.CLIENT,
            attributes={"http.method": method, "http.url": target.span_url},
        ) as span:
            extra = dict(headers) if headers else {}
            if self._inject:
                propagate.inject(extra)
            head = self._head(method, target, body, content_type, extra)
            response = await self._exchange(
                target,
                head + body,
                self.timeout if timeout is None else timeout,
                self.connect_timeout if connect_timeout is None else connect_timeout,
                self.pool_timeout if pool_timeout is None else pool_timeout,
            )
            span.set_attribute("http.status_code", response.status)
            if response.status >= _HTTP_ERROR_STATUS:
                span.set_status(trace.StatusCode.ERROR)
            return response

    async def post_json(
        self,
        url: str,
        payload: Any,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - passed on to request()
    ) -> Response:
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        return await self.request("POST", url, body=body, content_type="application/json", timeout=timeout)

    async def aclose(self) -> None:
        self._closed = True
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()

    # ---------------------------------------------------------------- internals
    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is None:
            absolute = url if url.startswith(("http://", "https://")) else f"{self.base_url}{url}"
            target = _parse_url(absolute, self._span_url)
            if len(self._targets) >= _URL_CACHE_SIZE:
                self._targets.clear()
            self._targets[url] = target
        return target

    def _head(
        self, method: str, target: _Target, body: bytes, content_type: str | None, headers: Mapping[str, str]
    ) -> bytes:
        lines = [f"{method} {target.path} HTTP/1.1\r\nHost: {target.host_header}\r\n", self._default_head]
        if headers:
            lines.append(_header_lines(headers))
        if content_type is not None:
            lines.append(f"Content-Type: {content_type}\r\n")
        if body or method in {"POST", "PUT", "PATCH"}:
            lines.append(f"Content-Length: {len(body)}\r\n")
        lines.append("\r\n")
        return "".join(lines).encode("latin-1")

    async def _exchange(
        self,
        target: _Target,
        request: bytes,
        timeout: float | None,  # noqa: ASYNC109 - a timed-out connection must be dropped, not just left
        connect_timeout: float | None,
        pool_timeout: float | None,
    ) -> Response:
        pool = self._pools.get(target.origin)
        if pool is None:
            pool = self._pools[target.origin] = _Pool(self._max_connections)
        await _acquire(pool.slots, pool_timeout)
        connection: _Connection | None = None
        try:
            loop = asyncio.get_running_loop()
            connection = pool.take_idle(loop.time(), self._expiry)
            if connection is None:
                connection = await self._connect(target, connect_timeout)
            waiter = connection.send(request)
            expiry = None if timeout is None else loop.call_later(timeout, _expire, waiter, timeout)
            try:
                response = await waiter
            finally:
                if expiry is not None:
                    expiry.cancel()
        except BaseException:
            if connection is not None:
                connection.abort()
            raise
        else:
            if connection.reusable and not self._closed:
                connection.idle_since = loop.time()
                pool.idle.append(connection)
            else:
                connection.close()
            return response
        finally:
            pool.slots.release()

    async def _connect(self, target: _Target, connect_timeout: float | None) -> _Connection:
        scheme, host, port = target.origin
        ssl_context = None
        if scheme == "https":
            if self._ssl_context is None:
                self._ssl_context = httpx.create_ssl_context()
            ssl_context = self._ssl_context
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(connect_timeout):
                _, connection = await loop.create_connection(
                    _Connection, host, port, ssl=ssl_context, server_hostname=host if ssl_context else None
                )
        except TimeoutError:
            raise HttpTimeoutError(f"connecting to {host}:{port} took over {connect_timeout} s") from None
        except OSError as exc:
            raise HttpConnectError(f"cannot connect to {host}:{port}: {exc}") from exc
        return connection


def _header_lines(headers: Mapping[str, str]) -> str:
    lines = []
    for name, value in headers.items():
        if any(c in name or c in value for c in _FORBIDDEN_IN_HEAD):
            raise ValueError(f"header {name!r} contains a line break")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines)


async def _acquire(slots: asyncio.Semaphore, pool_timeout: float | None) -> None:
    if not slots.locked():
        await slots.acquire()
        return
    try:
        async with asyncio.timeout(pool_timeout):
            await slots.acquire()
    except TimeoutError:
        raise HttpPoolTimeoutError(f"no free connection within {pool_timeout} s") from None


def _expire(waiter: asyncio.Future[Response], timeout: float) -> None:
    if not waiter.done():
        waiter.set_exception(HttpTimeoutError(f"no complete response within {timeout} s"))


class HttpxRequester:
    """The `Requester` interface on httpx, for destinations behind a proxy (httpx honours the proxy
    variables; its instrumentation makes the spans)."""

    def __init__(
        self, base_url: str = "", *, timeout: float | None = 10.0, max_connections: int = 100
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=20),
        )

    async def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - httpx's own per-request timeout
    ) -> Response:
        sent = dict(headers or {})
        if content_type is not None:
            sent["Content-Type"] = content_type
        try:
            response = await self._client.request(
                method,
                url,
                content=body,
                headers=sent,
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else httpx.Timeout(timeout),
            )
        except httpx.TimeoutException as exc:
            raise HttpTimeoutError(str(exc) or type(exc).__name__) from exc
        except httpx.ConnectError as exc:
            raise HttpConnectError(str(exc) or type(exc).__name__) from exc
        except httpx.HTTPError as exc:
            raise HttpProtocolError(str(exc) or type(exc).__name__) from exc
        return Response(
            response.status_code, response.content, {k.lower(): v for k, v in response.headers.items()}
        )

    async def aclose(self) -> None:
        await self._client.aclose()


def requester(base_url: str, *, timeout: float, max_connections: int = 100) -> Requester:
    """An HttpClient for `base_url` (trace context injected), or httpx when a proxy applies to it."""
    if uses_proxy(base_url):
        return HttpxRequester(base_url, timeout=timeout, max_connections=max_connections)
    return HttpClient(base_url, timeout=timeout, max_connections=max_connections, inject_trace_context=True)


__all__ = [
    "HttpClient",
    "HttpConnectError",
    "HttpError",
    "HttpPoolTimeoutError",
    "HttpProtocolError",
    "HttpTimeoutError",
    "HttpxRequester",
    "Requester",
    "Response",
    "requester",
    "uses_proxy",
]
