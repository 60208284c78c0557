"""Observability of the running system: metrics after a user's session, one trace from Telegram to the
Minecraft server, JSON logs tied to their spans, and the bot token in no log line and no span.

The whole system runs as real processes (test kit harness: bot in webhook mode, two query replicas,
Redis, DynamoDB Local, Java and Bedrock peers, the Bot API test server), exporting traces over OTLP/HTTP
to a real receiver on loopback (conftest.py).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from mcstatbot_testkit.harness import System, TelegramUser, run_session
from mcstatbot_testkit.hostile import Behaviour, HostileServer
from opentelemetry.instrumentation.utils import suppress_http_instrumentation
from prometheus_client.parser import text_string_to_metric_families

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.observability.conftest import OtlpReceiver, ReceivedSpan

pytestmark = pytest.mark.e2e

SERVER, CLIENT = 2, 3  # OTLP span kinds


def url_of(span: ReceivedSpan) -> str:
    """A client span's URL: `url.full` (stable HTTP semantic conventions) or `http.url` (the older name)."""
    return str(span.attributes.get("url.full") or span.attributes.get("http.url") or "")


BOT_FAMILIES = (
    "mcstatbot_commands_total",
    "mcstatbot_callbacks_total",
    "mcstatbot_updates_total",
    "mcstatbot_query_requests_total",
    "mcstatbot_circuit_breaker_state",
    "mcstatbot_circuit_breaker_transitions_total",
    "mcstatbot_fallback_replies_total",
    "mcstatbot_state_store_operations_total",
    "mcstatbot_state_store_retries_total",
    "mcstatbot_telegram_api_errors_total",
    "mcstatbot_flood_limited_total",
    "mcstatbot_errors_total",
)
QUERY_FAMILIES = (
    "mcstatbot_probes_total",
    "mcstatbot_probe_duration_seconds",
    "mcstatbot_cache_requests_total",
    "mcstatbot_coalesced_waits_total",
    "mcstatbot_cache_backend_up",
    "mcstatbot_cache_backend_errors_total",
    "mcstatbot_errors_total",
)
SHARED_FAMILIES = (
    "mcstatbot_http_requests_total",
    "mcstatbot_http_request_duration_seconds",
    "mcstatbot_build_info",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
)


class Metrics:
    """One scrape of GET /metrics."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [
            sample for family in text_string_to_metric_families(text) for sample in family.samples
        ]
        self.families = set(re.findall(r"^# TYPE (\S+) ", text, flags=re.MULTILINE))

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples of `name` whose labels include `labels` (0 when there are none)."""
        return sum(
            sample.value
            for sample in self.samples
            if sample.name == name and all(sample.labels.get(key) == value for key, value in labels.items())
        )


def scrape(url: str) -> Metrics:
    response = httpx.get(f"{url}/metrics", timeout=10)
    response.raise_for_status()
    return Metrics(response.text)


@dataclass
class Session:
    system: System
    receiver: OtlpReceiver
    bot_before: Metrics
    bot_after: Metrics
    query_before: Metrics
    query_after: Metrics

    def bot_delta(self, name: str, **labels: str) -> float:
        return self.bot_after.value(name, **labels) - self.bot_before.value(name, **labels)

    def query_delta(self, name: str, **labels: str) -> float:
        return self.query_after.value(name, **labels) - self.query_before.value(name, **labels)


def all_parts_up(system: System) -> bool:
    """Every process still runs a moment after start (a peer whose port was taken meanwhile has died)."""
    time.sleep(1.0)
    expected = {"bot", "java-peer", "bedrock-peer", "redis", "dynamodb"}
    running = system.processes()
    return expected <= set(running) and all(replica.running for replica in system.query)


@pytest.fixture(scope="module")
def system(otlp_receiver: OtlpReceiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """The whole system exporting traces to the receiver; started again on new ports if a part died at once.

    Ports are picked free and bound a moment later by each process; another system running at the same
    time (the e2e suite's) can take one in between, so a part may die right after start.
    """
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    for attempt in range(3):
        running = System(tmp_path_factory.mktemp("observed-system"), query_env=otel, bot_env=otel)
        try:
            running.start()  # stops whatever it started when it fails
        except (RuntimeError, TimeoutError):
            if attempt == 2:
                raise
            continue
        if all_parts_up(running) or attempt == 2:
            break
        running.stop()
    try:
        assert all_parts_up(running), running.log_tails()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def session(system: System, otlp_receiver: OtlpReceiver) -> Session:
    """The user's session scenario once (7 updates), with /metrics of the bot and its query replica."""
    system.flush_cache()
    bot_before, query_before = scrape(system.bot.url), scrape(system.query_for_bot.url)
    report = run_session(system, TelegramUser(system.api, 810_000_001))
    assert report.steps == 7
    # The last reply reaches the chat before the bot answers that update's webhook POST (the update is
    # counted, and its claim written, after the reply went out): scrape once every update is acknowledged.
    deadline = time.monotonic() + 30
    while system.api.pending_update_ids and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not system.api.pending_update_ids, "the bot never answered some webhook POSTs"
    return Session(
        system,
        otlp_receiver,
        bot_before,
        scrape(system.bot.url),
        query_before,
        scrape(system.query_for_bot.url),
    )


def test_every_metric_family_is_exported(session: Session) -> None:
    assert set(BOT_FAMILIES + SHARED_FAMILIES) <= session.bot_after.families
    assert set(QUERY_FAMILIES + SHARED_FAMILIES) <= session.query_after.families


def test_bot_metrics_moved_by_the_sessions_amounts(session: Session) -> None:
    # /start, /status <java>, /status <bedrock>, then the Java card's Players, About, Status, then /status.
    assert session.bot_delta("mcstatbot_commands_total", command="start") == 1
    assert session.bot_delta("mcstatbot_commands_total", command="status") == 3
    assert session.bot_delta("mcstatbot_commands_total") == 4
    for action in ("players", "about", "status"):
        assert session.bot_delta("mcstatbot_callbacks_total", action=action) == 1
    assert session.bot_delta("mcstatbot_updates_total", outcome="handled") == 7
    assert session.bot_delta("mcstatbot_updates_total", outcome="failed") == 0
    webhook = {"service": "bot", "route": "/telegram/webhook"}
    assert session.bot_delta("mcstatbot_http_requests_total", status="200", **webhook) >= 7
    assert session.bot_delta("mcstatbot_http_request_duration_seconds_count", **webhook) >= 7
    assert session.bot_delta("mcstatbot_query_requests_total", endpoint="status", outcome="ok") >= 3
    assert session.bot_delta("mcstatbot_query_requests_total", endpoint="players", outcome="ok") >= 1
    assert session.bot_delta("mcstatbot_query_requests_total", outcome="unavailable") == 0
    assert session.bot_delta("mcstatbot_state_store_operations_total", backend="dynamodb", outcome="ok") >= 7
    assert session.bot_delta("mcstatbot_fallback_replies_total") == 0
    assert session.bot_delta("mcstatbot_errors_total") == 0
    assert session.bot_after.value("mcstatbot_circuit_breaker_state") == 0
    assert session.bot_after.value("mcstatbot_build_info", service="bot") == 1
    assert session.bot_after.value("process_resident_memory_bytes") > 10_000_000
    assert session.bot_delta("process_cpu_seconds_total") > 0


def test_query_metrics_moved_by_the_sessions_amounts(session: Session) -> None:
    assert session.query_delta("mcstatbot_probes_total", edition="java", outcome="online") >= 1
    assert session.query_delta("mcstatbot_probes_total", edition="bedrock", outcome="online") >= 1
    assert session.query_delta("mcstatbot_probe_duration_seconds_count", edition="java") >= 1
    # The Status button and the last /status were answered from the cache: the Java peer saw no probe.
    assert session.query_delta("mcstatbot_cache_requests_total", kind="status", result="hit") >= 1
    assert session.query_delta("mcstatbot_cache_requests_total", kind="status", result="miss") >= 2
    assert session.query_delta("mcstatbot_cache_requests_total", kind="players") >= 1
    route = {"service": "query", "route": "/api/v1/status", "status": "200"}
    assert session.query_delta("mcstatbot_http_requests_total", **route) >= 3
    assert session.query_after.value("mcstatbot_cache_backend_up") == 1
    assert session.query_delta("mcstatbot_cache_backend_errors_total") == 0
    assert session.query_after.value("mcstatbot_build_info", service="query") == 1


def test_bad_input_and_telegram_429_are_counted(session: Session) -> None:
    system = session.system
    query_before, bot_before = scrape(system.query_for_bot.url), scrape(system.bot.url)
    answer = httpx.post(
        f"{system.query_for_bot.url}/api/v1/status", json={"server_url": "bad host name!"}, timeout=10
    )
    assert 400 <= answer.status_code < 500
    query_after = scrape(system.query_for_bot.url)
    errors = query_after.value("mcstatbot_errors_total", service="query")
    assert errors - query_before.value("mcstatbot_errors_total", service="query") == 1
    client_errors = {"service": "query", "route": "/api/v1/status", "status": str(answer.status_code)}
    assert query_after.value("mcstatbot_http_requests_total", **client_errors) >= 1

    system.api.fail_next("sendMessage", 429, retry_after=1)
    system.api.send_text(810_000_002, "/help")
    deadline = time.monotonic() + 15
    while True:
        after = scrape(system.bot.url)
        moved = after.value("mcstatbot_telegram_api_errors_total", kind="rate_limited") - bot_before.value(
            "mcstatbot_telegram_api_errors_total", kind="rate_limited"
        )
        if moved >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert moved == 1


async def test_probe_outcomes_and_coalesced_waits_are_counted(system: System, session: Session) -> None:
    """A silent server (timeout) asked 4 times at once: one probe, 3 coalesced waits; bad JSON: protocol."""
    del session
    query = system.query_other  # the bot's replica keeps its counters for the session test
    before = scrape(query.url)
    async with (
        HostileServer(Behaviour.SILENT) as silent,
        HostileServer(Behaviour.BAD_JSON) as garbled,
        httpx.AsyncClient(base_url=query.url, timeout=20) as client,
    ):
        body = {"server_url": f"127.0.0.1:{silent.port}", "edition": "java"}
        answers = await asyncio.gather(*(client.post("/api/v1/status", json=body) for _ in range(4)))
        garbled_answer = await client.post(
            "/api/v1/status", json={"server_url": f"127.0.0.1:{garbled.port}", "edition": "java"}
        )
    assert [a.json()["error"]["code"] for a in answers] == ["timeout"] * 4
    assert garbled_answer.json()["error"]["code"] == "protocol"
    after = scrape(query.url)

    def moved(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert moved("mcstatbot_probes_total", edition="java", outcome="timeout") == 1
    assert moved("mcstatbot_coalesced_waits_total") == 3
    assert moved("mcstatbot_probes_total", edition="java", outcome="protocol") == 1
    assert moved("mcstatbot_probe_duration_seconds_count", edition="java") == 2
    assert moved("mcstatbot_cache_requests_total", kind="status", result="miss") >= 2


def spans_by_id(spans: list[ReceivedSpan], trace_id: str) -> dict[str, ReceivedSpan]:
    return {span.span_id: span for span in spans if span.trace_id == trace_id}


def ancestry(span: ReceivedSpan, by_id: dict[str, ReceivedSpan]) -> list[ReceivedSpan]:
    """`span`, its parent, ... up to the first span whose parent was not exported by the services.

    That last one is the bot's webhook span: its parent is nothing, or the caller's span when the caller
    is traced too (Telegram is not; this test process is when an earlier test file set up tracing in it).
    """
    chain = [span]
    while (parent := by_id.get(chain[-1].parent_span_id)) is not None:
        chain.append(parent)
    return chain


def test_one_status_is_one_trace_from_the_webhook_to_the_minecraft_probe(
    system: System, otlp_receiver: OtlpReceiver, session: Session
) -> None:
    del session  # runs after the session (shares the system)
    system.flush_cache()
    seen = {span.span_id for span in otlp_receiver.snapshot()}  # earlier spans stay for the log test
    java_port = int(system.java.address.rsplit(":", 1)[1])
    user = TelegramUser(system.api, 810_000_003)
    reply = user.send(f"/status {system.java.address}")
    assert system.java.address in reply.text

    def java_probes(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
        return [
            s
            for s in spans
            if s.span_id not in seen
            and s.name == "mc.probe"
            and s.attributes.get("mc.edition") == "java"
            and s.attributes.get("server.port") == java_port
        ]

    [probe] = java_probes(otlp_receiver.wait_for(lambda got: bool(java_probes(got))))
    assert probe.service == "query"
    assert probe.attributes["mc.cache_hit"] is False
    assert probe.attributes["mc.outcome"] == "online"
    assert system.java.address not in probe.name  # the address is an attribute, never the span name
    # Wait for the bot's side of that trace (its spans end after the query service's).
    spans = otlp_receiver.wait_for(
        lambda got: any(
            s.trace_id == probe.trace_id and s.service == "bot" and s.name == "POST /telegram/webhook"
            for s in got
        )
    )
    chain = ancestry(probe, spans_by_id(spans, probe.trace_id))
    described = [(s.service, s.name, s.kind) for s in chain]
    # probe -> ... -> query server span -> bot httpx client span -> ... -> telegram.update -> webhook.
    query_server = next(i for i, s in enumerate(chain) if s.service == "query" and s.kind == SERVER)
    assert chain[query_server].name == "POST /api/v1/status", described
    bot_client = chain[query_server + 1]
    assert (bot_client.service, bot_client.kind) == ("bot", CLIENT), described
    assert url_of(bot_client).endswith("/api/v1/status"), described
    assert any(s.service == "bot" and s.name == "telegram.update" for s in chain[query_server:]), described
    root = chain[-1]
    assert (root.service, root.name, root.kind) == ("bot", "POST /telegram/webhook", SERVER), described
    assert all(s.trace_id == probe.trace_id for s in chain)
    # An X-Ray trace id: the first 8 hex digits are the epoch seconds when the trace began.
    assert abs(int(probe.trace_id[:8], 16) - time.time()) < 600


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"{path.name}:{number} is not JSON: {line[:200]!r}")
        assert isinstance(entry, dict)
        assert {"time", "level", "logger", "message"} <= set(entry), line
        entries.append(entry)
    return entries


def test_log_lines_are_json_and_carry_the_trace_of_their_span(
    system: System, otlp_receiver: OtlpReceiver, session: Session
) -> None:
    del session
    bot_lines = read_json_lines(system.bot.log_path)
    traced = [entry for entry in bot_lines if "span_id" in entry]
    assert len(traced) >= 7  # at least one line per update of the session (the webhook's access line)
    for entry in traced:
        assert entry["service"] == "bot"
        assert entry["xray_trace_id"] == f"1-{entry['trace_id'][:8]}-{entry['trace_id'][8:]}"

    def all_exported(spans: list[ReceivedSpan]) -> bool:
        exported = {(span.trace_id, span.span_id) for span in spans}
        return all((entry["trace_id"], entry["span_id"]) in exported for entry in traced)

    # Every (trace_id, span_id) a line names is a span the bot exported, in that trace.
    otlp_receiver.wait_for(all_exported)
    updates = [entry for entry in bot_lines if "update_id" in entry]
    assert all("trace_id" in entry for entry in updates)
    for replica in system.query:
        read_json_lines(replica.log_path)


def test_a_redis_outage_shows_in_metrics_and_in_a_traced_warning(
    system: System, otlp_receiver: OtlpReceiver, session: Session
) -> None:
    del session
    query = system.query_other  # the bot's replica keeps its cache for the other tests
    before = scrape(query.url)
    trace_id, parent_id = "6b0aed4a00112233445566778899aabb", "00f067aa0ba902b7"
    system.redis.kill()
    try:
        # Our own traceparent, sent as it is (not replaced, should this process have httpx instrumented).
        with suppress_http_instrumentation():
            answer = httpx.post(
                f"{query.url}/api/v1/status",
                json={"server_url": system.java.address},
                headers={"traceparent": f"00-{trace_id}-{parent_id}-01"},
                timeout=15,
            )
        assert answer.status_code == 200
        assert answer.json()["online"] is True
        after = scrape(query.url)
    finally:
        system.redis.start()
    assert after.value("mcstatbot_cache_backend_up") == 0
    assert after.value("mcstatbot_cache_backend_errors_total") > before.value(
        "mcstatbot_cache_backend_errors_total"
    )
    warnings = [
        entry
        for entry in read_json_lines(query.log_path)
        if entry["level"] == "WARNING" and entry.get("trace_id") == trace_id
    ]
    assert warnings, "the degraded-mode warning carries the trace id of the request that hit it"
    spans = otlp_receiver.wait_for(lambda got: any(s.trace_id == trace_id and s.kind == SERVER for s in got))
    server = [s for s in spans if s.trace_id == trace_id and s.kind == SERVER]
    assert [s.parent_span_id for s in server] == [parent_id]


def test_a_query_outage_moves_the_breaker_and_fallback_metrics(system: System, session: Session) -> None:
    """Query service down: failed calls, the breaker opening (state 2), fallback replies; then it closes."""
    del session
    before = scrape(system.bot.url)
    user = TelegramUser(system.api, 810_000_004)
    card = user.send(f"/status {system.java.address}")
    assert "1.21.1" in card.text
    system.query_for_bot.kill()
    try:
        for _ in range(6):  # the breaker opens after 3 consecutive failed calls
            user.send(f"/status {system.java.address}")
            if scrape(system.bot.url).value("mcstatbot_circuit_breaker_state") == 2:
                break
        down = scrape(system.bot.url)
    finally:
        system.query_for_bot.start()
    assert down.value("mcstatbot_circuit_breaker_state") == 2

    def moved(after: Metrics, name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert moved(down, "mcstatbot_circuit_breaker_transitions_total", state="open") == 1
    assert moved(down, "mcstatbot_query_requests_total", endpoint="status", outcome="unavailable") >= 3
    # This chat asked before: every reply during the outage was its stored answer.
    assert moved(down, "mcstatbot_fallback_replies_total", kind="stored") >= 3
    assert moved(down, "mcstatbot_fallback_replies_total", kind="stored") == moved(
        down, "mcstatbot_fallback_replies_total"
    )
    # Back: after the cool-down (3 s here) one trial call closes the breaker again.
    deadline = time.monotonic() + 30
    while scrape(system.bot.url).value("mcstatbot_circuit_breaker_state") != 0:
        assert time.monotonic() < deadline, "the breaker did not close after the query service came back"
        user.send(f"/status {system.java.address}")
        time.sleep(0.5)
    after = scrape(system.bot.url)
    assert moved(after, "mcstatbot_circuit_breaker_transitions_total", state="half-open") >= 1
    assert moved(after, "mcstatbot_circuit_breaker_transitions_total", state="closed") >= 1


def test_the_bot_token_is_in_no_log_line_and_no_span(
    system: System, otlp_receiver: OtlpReceiver, session: Session
) -> None:
    """Every request the bot made to the Bot API had the token in its URL; none of it got out."""
    del session
    token = system.api.token
    secret_half = token.split(":", 1)[1]
    calls = system.api.calls
    assert calls  # the traffic happened (the test server saw the bot's calls)
    for path in sorted(system.log_dir.glob("*.log")):
        text = path.read_text(errors="replace")
        assert token not in text, path.name
        assert secret_half not in text, path.name
        assert system.webhook_secret not in text, path.name
    spans = otlp_receiver.snapshot()
    bot_api = [s for s in spans if "/bot<redacted>/" in url_of(s)]
    assert bot_api, "the bot's Bot API calls are traced, with the token redacted"
    for span in spans:
        dumped = json.dumps([span.name, span.attributes, span.events], default=str)
        assert token not in dumped
        assert secret_half not in dumped
