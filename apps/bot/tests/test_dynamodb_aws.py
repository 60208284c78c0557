"""The DynamoDB store's AWS side (state/aws.py) on real peers: DynamoDB Local, and moto's STS in server
mode for IRSA's AssumeRoleWithWebIdentity. EKS Pod Identity's agent has no stand-in to be had here, so a
small HTTP server in this file answers as it does (the token it expects, the credentials it gives), and
says so. Each call's span, the retries on the SDKs' standard schedule, and a missing region."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from aiodynamo.errors import TableNotFound
from aiodynamo.http.httpx import HTTPX
from mcstatbot_bot.state import ResilientStore, ServerRef, StoredServer
from mcstatbot_bot.state.aws import (
    NoRegionError,
    PodIdentityCredentials,
    StandardRetry,
    WebIdentityCredentials,
    credentials,
)
from mcstatbot_bot.state.dynamodb import DynamoDBStore
from mcstatbot_common.models import Edition, ServerStatus
from mcstatbot_common.observability import setup_tracing
from mcstatbot_testkit.net import LOOPBACK
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from mcstatbot_testkit.dynamodb import DynamoDBLocal

TABLE = "user_sessions"  # made by the conftest's `dynamodb` fixture (`mcstatbot-bot create-table`)
RETRIES = "mcstatbot_state_store_retries_total"
SERVER = ServerRef("play.example.com", Edition.JAVA)
STATUS = ServerStatus(
    address="play.example.com:25565",
    host="play.example.com",
    port=25565,
    edition=Edition.JAVA,
    online=True,
    latency_ms=8.5,
)


def _no_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Nothing of this machine's: no keys, no ~/.aws files, no instance metadata."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def sts() -> Iterator[str]:
    from moto.server import ThreadedMotoServer  # noqa: PLC0415 - a test-only peer

    server = ThreadedMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


async def test_irsa_credentials_come_from_sts_and_the_store_works_with_them(
    dynamodb: DynamoDBLocal, sts: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE (what the EKS webhook sets for an annotated
    ServiceAccount), no keys: the projected token goes to STS, whose session credentials sign the calls."""
    dynamodb.apply_env(monkeypatch)
    _no_aws_credentials(monkeypatch, tmp_path)
    token = tmp_path / "token"
    token.write_text("eyJhbGciOiJSUzI1NiJ9.projected-service-account-token.sig\n")
    monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/mcstatbot-bot")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", sts)
    web_identity = WebIdentityCredentials()
    assert not web_identity.is_disabled()
    async with httpx.AsyncClient() as client:
        key = await web_identity.get_key(HTTPX(client))
        assert key is not None
        assert key.id.startswith("ASIA")  # a session (temporary) key, as STS hands out
        assert key.token
        chained = await credentials().get_key(HTTPX(client))
    assert chained is not None
    assert chained.id.startswith("ASIA")  # the chain chose IRSA: there are no keys in the environment
    store = DynamoDBStore(TABLE)
    await store.open()
    try:
        # DynamoDB Local keeps each access key's tables apart, and STS hands out a new key per session:
        # the conftest's table (made with the dummy key) is not this key's, so the store makes its own
        with pytest.raises(TableNotFound):
            await store.get_server(SERVER)
        await store.send(
            "CreateTable",
            {
                "TableName": TABLE,
                "KeySchema": [{"AttributeName": "chat_id", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "chat_id", "AttributeType": "S"}],
                "BillingMode": "PAY_PER_REQUEST",
            },
        )
        await store.save_server(SERVER, STATUS)
        found = await store.get_server(SERVER)
    finally:
        await store.close()
    assert isinstance(found, StoredServer)
    assert found.status == STATUS


async def test_the_shared_credentials_file_follows_the_sdk_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _no_aws_credentials(monkeypatch, tmp_path)
    shared = tmp_path / "credentials"
    shared.write_text(
        "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = s1\n"
        "[ops]\naws_access_key_id = AKIAOPS\naws_secret_access_key = s2\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(shared))
    monkeypatch.setenv("AWS_PROFILE", "ops")
    async with httpx.AsyncClient() as client:
        key = await credentials().get_key(HTTPX(client))
    assert key is not None
    assert key.id == "AKIAOPS"


async def test_irsa_with_sts_refusing_is_no_credentials_not_a_crash(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An STS that answers 403 (a trust policy that does not name the ServiceAccount): no key, so the
    store's call fails (and ResilientStore turns that into "the store is down"), the process goes on."""
    _no_aws_credentials(monkeypatch, tmp_path)
    token = tmp_path / "token"
    token.write_text("token")
    monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/other")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
    with _http_server(
        lambda _request: (403, b"<ErrorResponse><Error><Code>AccessDenied</Code></Error></ErrorResponse>")
    ) as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", url)
        async with httpx.AsyncClient() as client:
            assert await credentials().get_key(HTTPX(client)) is None


class _Handler(BaseHTTPRequestHandler):
    answer: Any

    def do_GET(self) -> None:
        self._reply()

    def do_POST(self) -> None:
        self._reply()

    def _reply(self) -> None:
        status, body = type(self).answer(self)
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


class _http_server:  # noqa: N801 - used as a context manager, like a function
    def __init__(self, answer: Any) -> None:
        handler = type("Handler", (_Handler,), {"answer": staticmethod(answer)})
        self.server = ThreadingHTTPServer((LOOPBACK, 0), handler)
        self.seen: list[dict[str, str]] = []

    def __enter__(self) -> str:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://{LOOPBACK}:{self.server.server_address[1]}"

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


async def test_pod_identity_reads_its_token_file_at_each_fetch(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A stand-in for the EKS Pod Identity agent (no real one can run here): it answers credentials only
    to the token in AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, which the kubelet rotates, so the file is read
    again at each refresh."""
    _no_aws_credentials(monkeypatch, tmp_path)
    token = tmp_path / "eks-pod-identity-token"
    token.write_text("first\n")
    seen: list[str | None] = []

    def agent(request: BaseHTTPRequestHandler) -> tuple[int, bytes]:
        seen.append(request.headers.get("Authorization"))
        if request.headers.get("Authorization") != token.read_text().strip():
            return 401, b"{}"
        body = {
            "AccessKeyId": "ASIAPODIDENTITY",
            "SecretAccessKey": "secret",
            "Token": "session",
            "Expiration": "2099-01-01T00:00:00Z",
        }
        return 200, json.dumps(body).encode()

    with _http_server(agent) as url:
        monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", f"{url}/v1/credentials")
        monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(token))
        async with httpx.AsyncClient() as client:
            chained = await credentials().get_key(HTTPX(client))
            assert chained is not None
            assert chained.id == "ASIAPODIDENTITY"
            token.write_text("second\n")  # rotated
            pod = PodIdentityCredentials()
            key = await pod.get_key(HTTPX(client))
    assert key is not None
    assert key.id == "ASIAPODIDENTITY"
    assert seen == ["first", "second"]


async def test_retries_follow_the_standard_schedule_are_counted_and_end_with_the_real_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DynamoDB answering 500 every time: `retries + 1` attempts in all, each retry counted under the
    operation, then the last error itself (not a retry-budget error) reaches ResilientStore."""
    calls: list[str] = []

    def failing(request: BaseHTTPRequestHandler) -> tuple[int, bytes]:
        calls.append(request.headers.get("X-Amz-Target", ""))
        return 500, b'{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError"}'

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setattr(StandardRetry, "max_delay_secs", 0.01)  # the schedule's shape, without its waits
    with _http_server(failing) as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", url)
        store = DynamoDBStore(TABLE, retries=2)
        resilient = ResilientStore(store, retries=0)
        await resilient.open()
        labels = {"backend": "dynamodb", "operation": "get_server"}
        before = REGISTRY.get_sample_value(RETRIES, labels) or 0.0
        try:
            assert await resilient.get_server(SERVER) is None  # the store is down: no stored answer
        finally:
            await resilient.close()
    assert calls == ["DynamoDB_20120810.GetItem"] * 3
    assert (REGISTRY.get_sample_value(RETRIES, labels) or 0.0) - before == 2
    delays = list(StandardRetry(retries=5, max_delay_secs=20).delays())
    assert len(delays) == 5
    assert all(0 <= delay <= min(2**n, 20) for n, delay in enumerate(delays))


async def test_a_missing_region_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    with pytest.raises(NoRegionError, match="set AWS_REGION"):
        await DynamoDBStore(TABLE).open()


async def test_each_call_is_a_client_span_over_the_httpx_span(
    dynamodb: DynamoDBLocal, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporter = InMemorySpanExporter()
    setup_tracing("bot-tests", span_processors=[SimpleSpanProcessor(exporter)])
    dynamodb.apply_env(monkeypatch)
    store = DynamoDBStore(TABLE)
    await store.open()
    try:
        with trace.get_tracer("mcstatbot.tests").start_as_current_span("update") as parent:
            await store.get_server(SERVER)
    finally:
        await store.close()
        spans = exporter.get_finished_spans()
        exporter.shutdown()
    [call] = [span for span in spans if span.name == "DynamoDB.GetItem"]
    assert call.kind is trace.SpanKind.CLIENT
    assert call.parent is not None
    assert call.parent.span_id == parent.get_span_context().span_id
    assert dict(call.attributes or {}) == {
        "rpc.system": "aws-api",
        "rpc.service": "DynamoDB",
        "rpc.method": "GetItem",
        "aws.dynamodb.table_names": (TABLE,),
    }
    [request] = [
        span for span in spans if span.parent is not None and span.parent.span_id == call.context.span_id
    ]
    assert request.kind is trace.SpanKind.CLIENT  # httpx's: the POST itself
