"""History samples in the three state-store backends (DynamoDB against DynamoDB Local): round trip,
windows, one-day items, retention."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING

from aiobotocore.session import get_session
from mcstatbot_bot.history import Window, parse_window, sample_of, summarise
from mcstatbot_bot.state import ServerRef
from mcstatbot_bot.state.base import Sample
from mcstatbot_bot.state.dynamodb import DAY, DynamoDBStore, decode_sample, encode_sample, history_key
from mcstatbot_common.models import Edition, ServerStatus

if TYPE_CHECKING:
    import pytest
    from mcstatbot_bot.state import StateStore
    from mcstatbot_testkit.dynamodb import DynamoDBLocal

TABLE = "user_sessions"
KEEP = timedelta(days=30)


def _server() -> ServerRef:
    return ServerRef(f"mc-{uuid.uuid4().hex[:8]}.example.com", Edition.JAVA)


async def test_samples_round_trip_in_order_within_the_window(store: StateStore) -> None:
    server, other = _server(), _server()
    now = int(time.time())
    written = [
        Sample(now - 7200, online=True, players=3, max_players=20, latency_ms=12.5),
        Sample(now - 3600, online=False),
        Sample(now - 60, online=True, players=None, max_players=None, latency_ms=None),
        Sample(now, online=True, players=0, max_players=100, latency_ms=250.0),
    ]
    for sample in reversed(written):  # stored out of order, read back in order
        await store.add_sample(server, sample, KEEP)
    await store.add_sample(other, Sample(now, online=False), KEEP)
    assert await store.samples(server, now - 86400, now) == written
    assert await store.samples(server, now - 3600, now - 60) == written[1:3]
    assert await store.samples(other, now - 86400, now) == [Sample(now, online=False)]
    assert await store.samples(_server(), now - 86400, now) == []


async def test_a_month_of_samples_spans_days(store: StateStore) -> None:
    server = _server()
    now = int(time.time())
    at = [now - day * DAY - 17 for day in range(29, -1, -1)]
    for moment in at:
        await store.add_sample(server, Sample(moment, online=True, players=1, max_players=2), KEEP)
    found = await store.samples(server, now - Window.MONTH.seconds, now)
    assert [sample.at for sample in found] == at


async def test_old_samples_expire(store: StateStore) -> None:
    server = _server()
    now = int(time.time())
    old = Sample(now - 3 * DAY, online=True, players=1, max_players=2)
    recent = Sample(now - 60, online=False)
    keep = timedelta(days=2)
    await store.add_sample(server, old, keep)
    await store.add_sample(server, recent, keep)
    assert await store.samples(server, now - 10 * DAY, now) == [recent]


async def test_dynamodb_one_item_per_server_and_day_with_ttl(
    dynamodb: DynamoDBLocal, monkeypatch: pytest.MonkeyPatch
) -> None:
    dynamodb.apply_env(monkeypatch)
    store = DynamoDBStore(TABLE)
    await store.open()
    server = _server()
    day = int(time.time()) // DAY
    try:
        for second in (5, 65, 125):
            await store.add_sample(server, Sample(day * DAY + second, online=True, players=2), KEEP)
    finally:
        await store.close()
    async with get_session().create_client("dynamodb") as client:
        item = (await client.get_item(TableName=TABLE, Key={"chat_id": {"S": history_key(server, day)}}))[
            "Item"
        ]
    assert item["chat_id"]["S"].startswith(f"history#java|{server.address}#")
    assert [value["S"] for value in item["s"]["L"]] == ["5,2,,", "65,2,,", "125,2,,"]
    assert int(item["ttl"]["N"]) == (day + 1) * DAY + int(KEEP.total_seconds())


def test_sample_encoding_is_compact_and_exact() -> None:
    day = 20_000
    for sample in [
        Sample(day * DAY, online=False),
        Sample(day * DAY + 86_399, online=True, players=12, max_players=100, latency_ms=42.3),
        Sample(day * DAY + 60, online=True, players=None, max_players=20, latency_ms=None),
    ]:
        text = encode_sample(sample)
        assert len(text) <= 20, text
        assert decode_sample(day, text) == sample


def test_windows_and_summary() -> None:
    assert parse_window(None) is Window.DAY
    assert parse_window("7D") is Window.WEEK
    assert parse_window("30d") is Window.MONTH
    assert parse_window("1y") is None
    summary = summarise(
        [
            Sample(1, online=True, players=3, latency_ms=10.0),
            Sample(2, online=False),
            Sample(3, online=True, players=7, latency_ms=30.0),
            Sample(4, online=True),
        ]
    )
    assert (summary.checks, summary.online, summary.peak_players) == (4, 3, 7)
    assert summary.uptime == 0.75
    assert summary.mean_latency_ms == 20.0
    assert summarise([]).uptime is None


def test_a_placeholder_answer_is_an_offline_sample() -> None:
    base = {"address": "a.example.com:25565", "host": "a.example.com", "port": 25565, "edition": "java"}
    online = ServerStatus.model_validate(
        {**base, "online": True, "players": {"online": 3, "max": 20}, "latency_ms": 12.34}
    )
    assert sample_of(online, 100.7) == Sample(100, True, 3, 20, 12.3)
    placeholder = ServerStatus.model_validate(
        {
            **base,
            "online": True,
            "players": {"online": 0, "max": 1},
            "error": {"code": "placeholder", "message": "Aternos"},
        }
    )
    assert sample_of(placeholder, 5) == Sample(5, online=False)
