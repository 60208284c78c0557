"""The bot's small HTTP/1.1 client (mcstatbot_bot.http) against real sockets on loopback: keep-alive,
the pool's limits, every way a response can end or fail, TLS, spans and trace context, proxies; and PTB
on top of it (BotApiRequest) against the Bot API test server."""

from __future__ import annotations

import asyncio
import gzip
import shutil
import ssl
import subprocess
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest
from mcstatbot_bot.http import (
    HttpClient,
    HttpConnectError,
    HttpPoolTimeoutError,
    HttpProtocolError,
    HttpTimeoutError,
    HttpxRequester,
    uses_proxy,
)
from mcstatbot_bot.telegram_api import BotApiRequest, redact_bot_url
from mcstatbot_common.observability import setup_tracing
from mcstatbot_testkit.net import LOOPBACK, free_port
from mcstatbot_testkit.telegram import BotApiServer
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from telegram import Bot
from telegram.error import NetworkError, TimedOut

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from pathlib import Path

OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'


@dataclass
class Seen:
    connection: int
    head: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    """A loopback HTTP server whose answers the test scripts: `answer(seen, writer)` per request."""

    answer: Callable[[Seen, asyncio.StreamWriter], Awaitable[None]]
    requests: list[Seen] = field(default_factory=list)
    connections: int = 0
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                seen = Seen(number, lines[0], headers, body)
                self.requests.append(seen)
                await self.answer(seen, writer)
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def _ok(_: Seen, writer: asyncio.StreamWriter) -> None:
    writer.write(OK)
    await writer.drain()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    servers: list[asyncio.Server] = []

    async def start(
        answer: Callable[[Seen, asyncio.StreamWriter], Awaitable[None]] = _ok,
        ssl_context: ssl.SSLContext | None = None,
    ) -> Server:
        server = Server(answer)
        listening = await asyncio.start_server(server.handle, LOOPBACK, 0, ssl=ssl_context)
        servers.append(listening)
        port = listening.sockets[0].getsockname()[1]
        server.url = f"{'https' if ssl_context else 'http'}://{LOOPBACK}:{port}"
        return server

    try:
        yield start
    finally:
        for listening in servers:
            listening.close()
            await listening.wait_closed()


@pytest.fixture
async def clients() -> AsyncIterator[Callable[..., HttpClient]]:
    made: list[HttpClient] = []

    def make(base_url: str = "", **options: object) -> HttpClient:
        client = HttpClient(base_url, **options)  # type: ignore[arg-type]
        made.append(client)
        return client

    try:
        yield make
    finally:
        for client in made:
            await client.aclose()
        await asyncio.sleep(0.01)  # let the closed transports go


async def test_keep_alive_reuses_one_connection(
    serve: Callable[..., Awaitable[Server]], clients: Callable[..., HttpClient]
) -> None:
    server = await serve()
    client = clients(server.url)
    first = await client.request("POST", "/api/x", body=b'{"a":1}', content_type="application/json")
    second = await client.post_json("/api/y?z=1", {"b": "é"})
    assert (first.status, first.json()) == (200, {"ok": True})
    assert first.headers["content-type"] == "application/json"
    assert second.json() == {"ok": True}
    assert server.connections == 1
    one, two = server.requests
    assert one.head == "POST /api/x HTTP/1.1"
    assert one.headers["host"] == server.url.removeprefix("http://")
    assert one.headers["content-length"] == "7"
    assert one.body == b'{"a":1}'
    assert two.head == "POST /api/y?z=1 HTTP/1.1"
    assert two.body == '{"b":"é"}'.encode()


async def test_absolute_urls_and_concurrency_within_the_limit(
    serve: Callable[..., Awaitable[Server]], clients: Callable[..., HttpClient]
) -> None:
    async def slow(_: Seen, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.05)
        await _ok(_, writer)

    server = await serve(slow)
    client = clients(max_connections=2)
    answers = await asyncio.gather(*(client.request("GET", f"{server.url}/n{i}") for i in range(6)))
    assert [a.status for a in answers] == [200] * 6
    assert server.connections == 2
    assert server.requests[0].head.startswith("GET /n")
    assert "content-length" not in server.requests[0].headers


async def test_pool_timeout(
    serve: Callable[..., Awaitable[Server]], clients: Callable[..., HttpClient]
) -> None:
    async def hang(_: Seen, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(1)
        await _ok(_, writer)

    server = await serve(hang)
    client = clients(server.url, max_connections=1, pool_timeout=0.1)
    busy = asyncio.create_task(client.request("GET", "/"))
    await asyncio.sleep(0.05)
    with pytest.raises(HttpPoolTimeoutError):
        await client.request("GET", "/")
    assert len(server.requests) == 1  # nothing was sent
    assert (await busy).status == 200


def _hang_once() -> Callable[[Seen, asyncio.StreamWriter], Awaitable[None]]:
    """A handler that lets its first request hang for a second and answers the others at once."""
    answers = ["hang", "ok"]

    async def scripted(seen: Seen, writer: asyncio.StreamWriter) -> None:
        if answers.pop(0) == "hang":
            await asyncio.sleep(1)
        await _ok(seen, writer)

    return scripted


async def test_a_timed_out_connection_is_dropped(
    serve: Callable[..., Awaitable[Server]], clients: Callable[..., HttpClient]
) -> None:
    server = await serve(_hang_once())
    client = clients(server.url, timeout=0.2)
    with pytest.raises(HttpTimeoutError):
        await client.request("GET", "/")
    assert (await client.request("GET", "/")).status == 200
    assert server.connections == 2


async def test_cancelling_a_request_frees_its_connection_slot(
    serve: Callable[..., Awaitable[Server]], clients: Callable[..., HttpClient]
) -> None:
    server = await serve(_hang_once())
    client = clients(server.url, max_connections=1, pool_timeout=0.5)
    task = asyncio.create_task(client.request("GET", "/"))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await client.request("GET", "/")).status == 200


async def test_chunked_gzip_and_close_delimited_bodies(
    serve: Callable[..., Awaitable[Server]], clients: Callable[..., HttpClient]
) -> None:
    async def varied(seen: Seen, writer: asyncio.StreamWriter) -> None:
        if seen.head.startswith("GET /chunked"):
            writer.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            )
        elif seen.head.startswith("GET /gzip"):
            packed = gzip.compress(b'{"packed":true}')
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
                % (len(packed), packed)
            )
        else:  # no length: the body ends when the server closes the connection
            writer.write(b"HTTP/1.1 503 Service Unavailable\r\n\r\nuntil the end")
            await writer.drain()
            writer.close()
            return
        await writer.drain()

    server = await serve(varied)
    client = clients(server.url)
    assert (await client.request("GET", "/chunked")).body == b"hello world"
    assert (await client.request("GET", "/gzip")).json() == {"packed": True}
    closed = await client.request("GET", "/close")
    assert (closed.status, closed.body) == (503, b"until the end")
    assert server.connections == 1
    assert (await client.request("GET", "/chunked")).status == 200
    assert server.connections == 2  # the close-delimited one was not reused


async def test_idle_connections_closed_by_the_server_or_expired_are_not_reused(
    serve: Callable[..., Awaitable[Server]], clients: Callable[..., HttpClient]
) -> None:
    async def once(seen: Seen, writer: asyncio.StreamWriter) -> None:
        await _ok(seen, writer)
        if seen.head.startswith("GET /last"):
            await asyncio.sleep(0.01)
            writer.close()  # an idle keep-alive connection the server closes

    server = await serve(once)
    client = clients(server.url, keepalive_expiry=0.2)
    await client.request("GET", "/last")
    await asyncio.sleep(0.1)
    assert (await client.request("GET", "/")).status == 200
    assert server.connections == 2
    await asyncio.sleep(0.3)  # past the client's own keep-alive expiry
    assert (await client.request("GET", "/")).status == 200
    assert server.connections == 3


@pytest.mark.parametrize(
    "reply", [b"", b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort", b"SMTP ready\r\n\r\n"]
)
async def test_no_answer_half_an_answer_or_garbage_is_a_protocol_error(
    serve: Callable[..., Awaitable[Server]], clients: Callable[..., HttpClient], reply: bytes
) -> None:
    async def broken(_: Seen, writer: asyncio.StreamWriter) -> None:
        writer.write(reply)
        await writer.drain()
        writer.close()

    server = await serve(broken)
    with pytest.raises(HttpProtocolError):
        await clients(server.url).request("GET", "/")


async def test_refused_and_bad_input(clients: Callable[..., HttpClient]) -> None:
    client = clients(f"http://{LOOPBACK}:{free_port()}")
    with pytest.raises(HttpConnectError):
        await client.request("GET", "/")
    with pytest.raises(ValueError, match="line break"):
        await client.request("GET", "/", headers={"X-Evil": "a\r\nInjected: 1"})
    with pytest.raises(ValueError, match="whitespace"):
        await client.request("GET", "/a b")
    with pytest.raises(ValueError, match="not an http"):
        await clients().request("GET", "ftp://example.com/")


@pytest.fixture
def tls_cert(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (openssl)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    request = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"]
    subprocess.run(
        [
            openssl,
            *request,
            "-addext",
            f"subjectAltName=IP:{LOOPBACK}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


async def test_tls(
    serve: Callable[..., Awaitable[Server]], clients: Callable[..., HttpClient], tls_cert: tuple[Path, Path]
) -> None:
    cert, key = tls_cert
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    server = await serve(ssl_context=server_context)
    trusting = ssl.create_default_context(cafile=str(cert))
    client = clients(server.url, ssl_context=trusting)
    assert (await client.request("GET", "/")).json() == {"ok": True}
    assert (await client.request("GET", "/")).status == 200
    assert server.connections == 1
    with pytest.raises(HttpConnectError):  # the default trust store does not know this certificate
        await clients(server.url).request("GET", "/")


async def test_client_spans_and_trace_context(
    serve: Callable[..., Awaitable[Server]], clients: Callable[..., HttpClient]
) -> None:
    exporter = InMemorySpanExporter()
    assert setup_tracing("bot", span_processors=[SimpleSpanProcessor(exporter)]) is not None

    async def not_found(seen: Seen, writer: asyncio.StreamWriter) -> None:
        if "missing" in seen.head:
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        await _ok(seen, writer)

    server = await serve(not_found)
    traced = clients(server.url, inject_trace_context=True)
    quiet = clients(server.url, span_url=redact_bot_url)
    with trace.get_tracer("test").start_as_current_span("parent") as parent:
        await traced.request("POST", "/api/v1/status", body=b"{}")
        await quiet.request("POST", "/bot123456:ABCdefGHIjklMNOpqrSTUvwxYZ012345678/missing")
    spans = [s for s in exporter.get_finished_spans() if s.kind is trace.SpanKind.CLIENT]
    assert [s.name for s in spans] == ["POST", "POST"]
    first, second = spans
    assert first.attributes is not None
    assert second.attributes is not None
    assert first.attributes["http.url"] == f"{server.url}/api/v1/status"
    assert first.attributes["http.status_code"] == 200
    assert first.parent is not None
    assert first.parent.span_id == parent.get_span_context().span_id
    assert second.attributes["http.url"] == f"{server.url}/bot<redacted>/missing"
    assert second.status.status_code is trace.StatusCode.ERROR
    sent, unsent = server.requests
    trace_id = format(first.context.trace_id, "032x")
    assert trace_id in sent.headers["traceparent"]
    assert format(first.context.span_id, "016x") in sent.headers["traceparent"]
    assert "traceparent" not in unsent.headers


def test_uses_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    assert not uses_proxy("https://api.telegram.org")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert uses_proxy("https://api.telegram.org")
    assert not uses_proxy("http://query:8081")
    monkeypatch.setenv("NO_PROXY", "api.telegram.org")
    assert not uses_proxy("https://api.telegram.org")
    monkeypatch.setenv("ALL_PROXY", "http://proxy.internal:3128")
    assert uses_proxy("http://query:8081")


async def test_httpx_requester_gives_the_same_answers(serve: Callable[..., Awaitable[Server]]) -> None:
    server = await serve()
    client = HttpxRequester(server.url, timeout=2)
    try:
        answer = await client.request("POST", "/x", body=b"{}", content_type="application/json")
        assert (answer.status, answer.json()) == (200, {"ok": True})
        assert server.requests[0].headers["content-type"] == "application/json"
    finally:
        await client.aclose()
    refused = HttpxRequester(f"http://{LOOPBACK}:{free_port()}", timeout=2)
    try:
        with pytest.raises(HttpConnectError):
            await refused.request("GET", "/")
    finally:
        await refused.aclose()


async def test_ptb_on_the_small_client() -> None:
    with BotApiServer() as api:
        request = BotApiRequest(connection_pool_size=4, read_timeout=5)
        bot = Bot(api.token, base_url=f"{api.base_url}/bot", request=request)
        async with bot:
            assert (await bot.get_me()).username == api.bot_username
            sent = await bot.send_message(42, "<b>hi</b> & bye", parse_mode="HTML")
            assert sent.chat.id == 42
            call = api.calls_to("sendMessage", 42)[0]
            assert call.params["text"] == "<b>hi</b> & bye"
            assert call.params["parse_mode"] == "HTML"
        async with bot:  # initialised again after a shutdown
            assert (await bot.get_me()).id == api.bot_user["id"]


async def test_ptb_errors_on_the_small_client(serve: Callable[..., Awaitable[Server]]) -> None:
    async def hang(_: Seen, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(1)
        await _ok(_, writer)

    server = await serve(hang)
    request = BotApiRequest(read_timeout=0.2)
    try:
        with pytest.raises(TimedOut):
            await request.post(f"{server.url}/botX/getMe")
        refused = f"http://{LOOPBACK}:{free_port()}/botX/getMe"
        with pytest.raises(NetworkError, match="HttpConnectError"):
            await request.post(refused)
    finally:
        await request.shutdown()
