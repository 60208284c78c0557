"""The bot's HTTP clients (mcstatbot_bot.clients: httpx for the query service, PTB's HTTPXRequest for
the Bot API) against real sockets on loopback: keep-alive, the pool's limits, timeouts and cancellation,
every way a response can end or fail, the bound on a response's size, TLS, proxies, spans (the token
redacted) and trace context; and PTB on its request layer against the Bot API test server."""

from __future__ import annotations

import asyncio
import gzip
import shutil
import ssl
import subprocess
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx
import pytest
from mcstatbot_bot.clients import ResponseTooLargeError, bot_api_request, query_http_client
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
async def clients() -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    made: list[httpx.AsyncClient] = []

    def make(base_url: str = "", **options: object) -> httpx.AsyncClient:
        options.setdefault("timeout", 5.0)
        client = query_http_client(base_url, **options)  # type: ignore[arg-type]
        made.append(client)
        return client

    try:
        yield make
    finally:
        for client in made:
            await client.aclose()
        await asyncio.sleep(0.01)  # let the closed transports go


async def test_keep_alive_reuses_one_connection(
    serve: Callable[..., Awaitable[Server]], clients: Callable[..., httpx.AsyncClient]
) -> None:
    server = await serve()
    client = clients(server.url)
    first = await client.post("/api/x", content=b'{"a":1}', headers={"Content-Type": "application/json"})
    second = await client.post("/api/y?z=1", json={"b": "é"})
    assert (first.status_code, first.json()) == (200, {"ok": True})
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
    serve: Callable[..., Awaitable[Server]], clients: Callable[..., httpx.AsyncClient]
) -> None:
    async def slow(_: Seen, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.05)
        await _ok(_, writer)

    server = await serve(slow)
    client = clients(max_connections=2)
    answers = await asyncio.gather(*(client.request("GET", f"{server.url}/n{i}") for i in range(6)))
    assert [a.status_code for a in answers] == [200] * 6
    assert server.connections == 2
    assert server.requests[0].head.startswith("GET /n")
    assert "content-length" not in server.requests[0].headers


async def test_pool_timeout(
    serve: Callable[..., Awaitable[Server]], clients: Callable[..., httpx.AsyncClient]
) -> None:
    async def hang(_: Seen, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(1)
        await _ok(_, writer)

    server = await serve(hang)
    client = clients(server.url, max_connections=1, timeout=httpx.Timeout(5.0, pool=0.1))
    busy = asyncio.create_task(client.get("/"))
    await asyncio.sleep(0.05)
    with pytest.raises(httpx.PoolTimeout):
        await client.get("/")
    assert len(server.requests) == 1  # nothing was sent
    assert (await busy).status_code == 200


def _hang_once() -> Callable[[Seen, asyncio.StreamWriter], Awaitable[None]]:
    """A handler that lets its first request hang for a second and answers the others at once."""
    answers = ["hang", "ok"]

    async def scripted(seen: Seen, writer: asyncio.StreamWriter) -> None:
        if answers.pop(0) == "hang":
            await asyncio.sleep(1)
        await _ok(seen, writer)

    return scripted


async def test_a_timed_out_connection_is_dropped(
    serve: Callable[..., Awaitable[Server]], clients: Callable[..., httpx.AsyncClient]
) -> None:
    server = await serve(_hang_once())
    client = clients(server.url, timeout=0.2)
    with pytest.raises(httpx.ReadTimeout):
        await client.get("/")
    assert (await client.get("/")).status_code == 200
    assert server.connections == 2


async def test_cancelling_a_request_frees_its_connection_slot(
    serve: Callable[..., Awaitable[Server]], clients: Callable[..., httpx.AsyncClient]
) -> None:
    server = await serve(_hang_once())
    client = clients(server.url, max_connections=1, timeout=httpx.Timeout(5.0, pool=0.5))
    task = asyncio.create_task(client.get("/"))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await client.get("/")).status_code == 200


async def test_chunked_gzip_and_close_delimited_bodies(
    serve: Callable[..., Awaitable[Server]], clients: Callable[..., httpx.AsyncClient]
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
    assert (await client.get("/chunked")).content == b"hello world"
    assert (await client.get("/gzip")).json() == {"packed": True}
    closed = await client.get("/close")
    assert (closed.status_code, closed.content) == (503, b"until the end")
    assert server.connections == 1
    assert (await client.get("/chunked")).status_code == 200
    assert server.connections == 2  # the close-delimited one was not reused


async def test_idle_connections_closed_by_the_server_or_expired_are_not_reused(
    serve: Callable[..., Awaitable[Server]], clients: Callable[..., httpx.AsyncClient]
) -> None:
    async def once(seen: Seen, writer: asyncio.StreamWriter) -> None:
        await _ok(seen, writer)
        if seen.head.startswith("GET /last"):
            await asyncio.sleep(0.01)
            writer.close()  # an idle keep-alive connection the server closes

    server = await serve(once)
    client = clients(server.url, keepalive_expiry=0.2)
    await client.get("/last")
    await asyncio.sleep(0.1)
    assert (await client.get("/")).status_code == 200
    assert server.connections == 2
    await asyncio.sleep(0.3)  # past the client's own keep-alive expiry
    assert (await client.get("/")).status_code == 200
    assert server.connections == 3


@pytest.mark.parametrize(
    "reply", [b"", b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort", b"SMTP ready\r\n\r\n"]
)
async def test_no_answer_half_an_answer_or_garbage_is_a_protocol_error(
    serve: Callable[..., Awaitable[Server]], clients: Callable[..., httpx.AsyncClient], reply: bytes
) -> None:
    async def broken(_: Seen, writer: asyncio.StreamWriter) -> None:
        writer.write(reply)
        await writer.drain()
        writer.close()

    server = await serve(broken)
    with pytest.raises(httpx.RemoteProtocolError):
        await clients(server.url).get("/")


async def test_refused_and_bad_input(
    serve: Callable[..., Awaitable[Server]], clients: Callable[..., httpx.AsyncClient]
) -> None:
    client = clients(f"http://{LOOPBACK}:{free_port()}")
    with pytest.raises(httpx.ConnectError):
        await client.get("/")
    server = await serve()
    client = clients(server.url)
    with pytest.raises(httpx.LocalProtocolError):
        await client.get("/", headers={"X-Evil": "a\r\nInjected: 1"})
    assert (await client.get("/a b")).status_code == 200
    assert [seen.head for seen in server.requests] == ["GET /a%20b HTTP/1.1"]  # quoted, never split
    with pytest.raises(httpx.UnsupportedProtocol):
        await clients().get("ftp://example.com/")


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
    serve: Callable[..., Awaitable[Server]],
    clients: Callable[..., httpx.AsyncClient],
    tls_cert: tuple[Path, Path],
) -> None:
    cert, key = tls_cert
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    server = await serve(ssl_context=server_context)
    trusting = ssl.create_default_context(cafile=str(cert))
    client = clients(server.url, verify=trusting)
    assert (await client.get("/")).json() == {"ok": True}
    assert (await client.get("/")).status_code == 200
    assert server.connections == 1
    with pytest.raises(httpx.ConnectError):  # the default trust store does not know this certificate
        await clients(server.url).get("/")


async def test_client_spans_and_trace_context(
    serve: Callable[..., Awaitable[Server]], clients: Callable[..., httpx.AsyncClient]
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
    query = clients(server.url)
    bot_api = bot_api_request(connection_pool_size=1, connect_timeout=2, read_timeout=2)
    await bot_api.initialize()
    try:
        with trace.get_tracer("test").start_as_current_span("parent") as parent:
            await query.post("/api/v1/status", content=b"{}")
            status, _ = await bot_api.do_request(
                f"{server.url}/bot123456:ABCdefGHIjklMNOpqrSTUvwxYZ012345678/missing", "POST"
            )
    finally:
        await bot_api.shutdown()
    assert status == 404
    spans = [s for s in exporter.get_finished_spans() if s.kind is trace.SpanKind.CLIENT]
    assert [s.name for s in spans] == ["POST", "POST"]
    first, second = spans
    assert first.attributes is not None
    assert second.attributes is not None
    assert first.attributes["url.full"] == f"{server.url}/api/v1/status"
    assert first.attributes["http.response.status_code"] == 200
    assert first.parent is not None
    assert first.parent.span_id == parent.get_span_context().span_id
    assert second.attributes["url.full"] == f"{server.url}/bot<redacted>/missing"
    assert "ABCdefGHI" not in str(second.attributes)
    assert second.status.status_code is trace.StatusCode.ERROR
    sent = server.requests[0]
    trace_id = format(first.context.trace_id, "032x")
    assert trace_id in sent.headers["traceparent"]
    assert format(first.context.span_id, "016x") in sent.headers["traceparent"]


async def test_the_size_of_a_response_is_bounded(
    serve: Callable[..., Awaitable[Server]], clients: Callable[..., httpx.AsyncClient]
) -> None:
    async def big(seen: Seen, writer: asyncio.StreamWriter) -> None:
        if " /declared " in seen.head:  # says 10 MB, sends a little
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10485760\r\n\r\n" + b"x" * 1024)
        elif " /endless " in seen.head:  # chunked, no length: 64 KB chunks until cut off
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(100):
                writer.write(b"10000\r\n" + b"y" * 65536 + b"\r\n")
                await writer.drain()
            writer.write(b"0\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"z" * 1000)
        await writer.drain()

    server = await serve(big)
    client = clients(server.url, max_response_bytes=256 * 1024)
    with pytest.raises(ResponseTooLargeError, match="10485760"):
        await client.get("/declared")
    with pytest.raises(ResponseTooLargeError, match="larger than 262144"):
        await client.get("/endless")
    assert (await client.get("/small")).content == b"z" * 1000  # within the bound: served as usual
    request = bot_api_request(
        connection_pool_size=1, connect_timeout=2, read_timeout=2, max_response_bytes=256 * 1024
    )
    await request.initialize()
    try:
        with pytest.raises(NetworkError, match="larger than"):
            await request.post(f"{server.url}/endless")
    finally:
        await request.shutdown()


async def test_proxies_from_the_environment(
    serve: Callable[..., Awaitable[Server]],
    clients: Callable[..., httpx.AsyncClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy = await serve()  # a forward proxy sees the request in absolute form
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    target = f"http://query.internal:{free_port()}"
    assert (await clients(target).get("/api")).json() == {"ok": True}
    assert proxy.requests[0].head == f"GET {target}/api HTTP/1.1"
    monkeypatch.setenv("NO_PROXY", "query.internal")
    with pytest.raises(httpx.ConnectError):  # exempt: straight to a host that does not resolve
        await clients(target).get("/api")
    assert len(proxy.requests) == 1


async def test_ptb_on_its_request_layer() -> None:
    with BotApiServer() as api:
        request = bot_api_request(connection_pool_size=4, connect_timeout=2, read_timeout=5)
        bot = Bot(api.token, base_url=f"{api.base_url}/bot", request=request)
        async with bot:
            assert (await bot.get_me()).username == api.bot_username
            sent = await bot.send_message(42, "<b>hi</b> &amp; bye", parse_mode="HTML")
            assert sent.chat.id == 42
            call = api.calls_to("sendMessage", 42)[0]
            assert call.params["text"] == "<b>hi</b> &amp; bye"
            assert call.params["parse_mode"] == "HTML"
        async with bot:  # initialised again after a shutdown
            assert (await bot.get_me()).id == api.bot_user["id"]


async def test_ptb_errors_on_its_request_layer(serve: Callable[..., Awaitable[Server]]) -> None:
    async def hang(_: Seen, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(1)
        await _ok(_, writer)

    server = await serve(hang)
    request = bot_api_request(connection_pool_size=1, connect_timeout=2, read_timeout=0.2)
    await request.initialize()
    try:
        with pytest.raises(TimedOut):
            await request.post(f"{server.url}/botX/getMe")
        refused = f"http://{LOOPBACK}:{free_port()}/botX/getMe"
        with pytest.raises(NetworkError, match="ConnectError"):
            await request.post(refused)
    finally:
        await request.shutdown()
