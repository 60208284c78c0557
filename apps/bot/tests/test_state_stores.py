"""The three chat-state backends behind one interface; DynamoDB against DynamoDB Local (the real jar)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from aiobotocore.session import get_session
from mcstatbot_bot.state import ChatSettings, ClaimResult, ResilientStore, ServerRef
from mcstatbot_bot.state.dynamodb import DynamoDBStore, from_attribute
from mcstatbot_bot.state.memory import MemoryStore
from mcstatbot_bot.state.sqlite import SqliteStore
from mcstatbot_common.models import Edition, ServerStatus
from mcstatbot_testkit.net import LOOPBACK, free_port
from prometheus_client import REGISTRY

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping
    from pathlib import Path

    from mcstatbot_bot.state import StateStore
    from mcstatbot_testkit.dynamodb import DynamoDBLocal

TABLE = "user_sessions"
RETRIES = "mcstatbot_state_store_retries_total"
STATUS = ServerStatus.model_validate(
    {
        "address": "play.example.com:25565",
        "host": "play.example.com",
        "port": 25565,
        "edition": "java",
        "online": True,
        "version": {"name": "1.21.1", "protocol": 767},
        "motd": {"raw": "§aHi", "clean": "Hi", "html": "<span>Hi</span>"},
        "players": {"online": 2, "max": 20, "sample": [{"name": "Steve", "id": "x"}]},
        "latency_ms": 12.25,
        "retrieved_at": "2026-11-28T09:00:00Z",
    }
)
SERVER = ServerRef("play.example.com", Edition.AUTO)


def _chat() -> int:
    return uuid.uuid4().int % 10**12


async def test_chat_state_round_trip(store: StateStore) -> None:
    chat = _chat()
    assert await store.get_chat(chat) is None
    await store.save_chat(chat, SERVER, STATUS)
    state = await store.get_chat(chat)
    assert state is not None
    assert state.server == SERVER
    assert state.server_data == STATUS
    assert abs(time.time() - state.last_query_time.timestamp()) < 60
    await store.save_chat(chat, ServerRef("other.example:1", Edition.BEDROCK), None)
    state = await store.get_chat(chat)
    assert state is not None
    assert state.server == ServerRef("other.example:1", Edition.BEDROCK)


async def test_server_and_refs(store: StateStore) -> None:
    server = ServerRef(f"{uuid.uuid4().hex}.example", Edition.JAVA)
    assert await store.get_server(server) is None
    await store.save_server(server, STATUS)
    stored = await store.get_server(server)
    assert stored is not None
    assert stored.status == STATUS
    assert await store.get_server(ServerRef(server.address, Edition.BEDROCK)) is None
    ref = uuid.uuid4().hex[:12]
    assert await store.get_ref(ref) is None
    await store.put_ref(ref, server)
    assert await store.get_ref(ref) == server


async def test_save_status_writes_the_server_and_the_chat_at_once(store: StateStore) -> None:
    chat = _chat()
    server = ServerRef(f"{uuid.uuid4().hex}.example", Edition.JAVA)
    await store.save_status(chat, server, STATUS)
    state = await store.get_chat(chat)
    stored = await store.get_server(server)
    assert state is not None
    assert stored is not None
    assert (state.server, state.server_data) == (server, STATUS)
    assert stored.status == STATUS
    assert abs(stored.stored_at.timestamp() - state.last_query_time.timestamp()) < 2


async def test_update_claims(store: StateStore) -> None:
    update_id = _chat()
    assert await store.claim_update(update_id, 60, "a") is ClaimResult.CLAIMED
    assert await store.claim_update(update_id, 60, "b") is ClaimResult.BUSY  # another replica, meanwhile
    assert await store.claim_update(update_id, 60, "a") is ClaimResult.CLAIMED  # a retry of the same claim
    await store.finish_update(update_id)
    assert await store.claim_update(update_id, 60, "c") is ClaimResult.DUPLICATE
    assert await store.claim_update(update_id, 60, "a") is ClaimResult.DUPLICATE
    failed = update_id + 1
    assert await store.claim_update(failed, 60, "a") is ClaimResult.CLAIMED
    await store.release_update(failed)
    assert await store.claim_update(failed, 60, "b") is ClaimResult.CLAIMED
    expired = update_id + 2
    assert await store.claim_update(expired, 0.0, "a") is ClaimResult.CLAIMED  # a replica that died at once
    assert await store.claim_update(expired, 60, "b") is ClaimResult.CLAIMED  # its lease ran out: taken over


async def test_chat_settings_round_trip(store: StateStore) -> None:
    chat = _chat()
    assert await store.get_settings(chat) is None
    await store.save_settings(chat, ChatSettings(language="pt_BR"))
    assert await store.get_settings(chat) == ChatSettings(language="pt_BR")
    default = ServerRef("play.example.com:25566", Edition.BEDROCK)
    await store.save_settings(chat, ChatSettings(language="pt_BR", default_server=default))
    assert await store.get_settings(chat) == ChatSettings("pt_BR", default)
    await store.save_settings(chat, ChatSettings(default_server=default))  # back to the user's language
    assert await store.get_settings(chat) == ChatSettings(None, default)
    await store.save_settings(chat, ChatSettings())
    assert await store.get_settings(chat) == ChatSettings()
    assert await store.get_chat(chat) is None  # settings are an item of their own, not the chat's state


async def test_dynamodb_settings_item(dynamodb: DynamoDBLocal, monkeypatch: pytest.MonkeyPatch) -> None:
    dynamodb.apply_env(monkeypatch)
    store = DynamoDBStore(TABLE)
    await store.open()
    chat = _chat()
    try:
        await store.save_settings(chat, ChatSettings("uk", SERVER))
        key = {"chat_id": {"S": f"settings#{chat}"}}
        item = (await store.send("GetItem", {"TableName": TABLE, "Key": key}))["Item"]
    finally:
        await store.close()
    assert item == {
        "chat_id": {"S": f"settings#{chat}"},
        "language": {"S": "uk"},
        "default_url": {"S": SERVER.address},
        "default_edition": {"S": SERVER.edition.value},
    }  # no ttl: kept until changed


async def test_dynamodb_items_have_the_spec_shape(
    dynamodb: DynamoDBLocal, monkeypatch: pytest.MonkeyPatch
) -> None:
    dynamodb.apply_env(monkeypatch)
    store = DynamoDBStore(TABLE)
    await store.open()
    chat = _chat()
    try:
        await store.save_chat(chat, SERVER, STATUS)
        await store.save_server(SERVER, STATUS)
        item = (await store.send("GetItem", {"TableName": TABLE, "Key": {"chat_id": {"S": str(chat)}}}))[
            "Item"
        ]
        ttl_description = await store.send("DescribeTimeToLive", {"TableName": TABLE})
    finally:
        await store.close()
    assert item["chat_id"] == {"S": str(chat)}
    assert item["last_url"] == {"S": "play.example.com"}
    last = item["last_query_time"]["S"]
    assert last.endswith("Z")
    assert len(last) == len("2026-11-28T09:00:00Z")
    ttl = int(item["ttl"]["N"])
    assert abs(ttl - (time.time() + 7 * 86400)) < 120
    assert "M" in item["server_data"]
    assert item["server_data"]["M"]["latency_ms"] == {"N": "12.25"}
    assert ServerStatus.model_validate(from_attribute(item["server_data"])) == STATUS
    assert ttl_description["TimeToLiveDescription"]["AttributeName"] == "ttl"
    assert ttl_description["TimeToLiveDescription"]["TimeToLiveStatus"] == "ENABLED"


async def test_create_table_is_idempotent(
    dynamodb: DynamoDBLocal, run_create_table: Callable[[DynamoDBLocal], str]
) -> None:
    assert "already exists" in run_create_table(dynamodb)
    session = get_session()
    async with session.create_client(
        "dynamodb",
        endpoint_url=dynamodb.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - DynamoDB Local accepts any credentials
    ) as client:
        table = (await client.describe_table(TableName=TABLE))["Table"]
    assert table["KeySchema"] == [{"AttributeName": "chat_id", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "chat_id", "AttributeType": "S"}]


async def test_unreachable_dynamodb_degrades_to_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", f"http://{LOOPBACK}:{free_port()}")  # nothing listens
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    # as build_store makes it: the SDK retries (standard mode), ResilientStore does not retry on top
    store = ResilientStore(DynamoDBStore(TABLE, timeout=0.5, retries=2), retries=0)
    before = REGISTRY.get_sample_value(RETRIES, {"backend": "dynamodb", "operation": "get_chat"}) or 0.0
    await store.open()
    try:
        assert await store.get_chat(1) is None
        after = REGISTRY.get_sample_value(RETRIES, {"backend": "dynamodb", "operation": "get_chat"})
        assert after == before + 2  # the SDK's two retries, counted under the store's operation
        await store.save_chat(1, SERVER, STATUS)  # logged, not raised
        assert await store.claim_update(5, 60) is ClaimResult.CLAIMED  # handle rather than drop
        assert not await store.healthy()
    finally:
        await store.close()


class FlakyStore(MemoryStore):
    """A memory store whose next `failures` calls raise (an injected error, e.g. throttling)."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.calls = 0

    async def get_chat(self, chat_id: int):  # type: ignore[no-untyped-def]  # same signature as the parent
        self.calls += 1
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("ProvisionedThroughputExceededException")
        return await super().get_chat(chat_id)


async def test_retries_three_times_then_gives_up() -> None:
    flaky = FlakyStore(failures=3)
    await flaky.save_chat(7, SERVER, STATUS)
    store = ResilientStore(flaky, retries=3, backoff_base=0.001)
    assert (await store.get_chat(7)) is not None  # 3 failures, the 4th attempt works
    assert flaky.calls == 4
    flaky.failures, flaky.calls = 10, 0
    assert await store.get_chat(7) is None
    assert flaky.calls == 4


async def test_a_store_that_is_down_is_short_circuited() -> None:
    flaky = FlakyStore(failures=1000)
    store = ResilientStore(
        flaky, retries=1, backoff_base=0.001, breaker_threshold=2, breaker_reset_seconds=0.2
    )
    assert await store.get_chat(1) is None
    assert await store.get_chat(1) is None
    assert flaky.calls == 4  # two calls, each with one retry; the breaker is open now
    assert await store.get_chat(1) is None
    assert flaky.calls == 4  # failed at once, the store was not asked
    flaky.failures = 0
    await asyncio.sleep(0.25)
    await flaky.save_chat(1, SERVER, STATUS)
    assert await store.get_chat(1) is not None  # the trial call works and closes the breaker
    assert await store.get_chat(1) is not None


async def test_sqlite_forgets_day_old_claims_once_a_minute(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "state.db"))
    await store.open()

    async def old_claim(update_id: int) -> None:
        day_ago = time.time() - 2 * 86400
        await store.db.execute(
            "INSERT INTO updates (update_id, status, lease_until, updated_at) VALUES (?, 'done', 0, ?)",
            (str(update_id), day_ago),
        )
        await store.db.commit()

    async def claims() -> set[int]:
        async with store.db.execute("SELECT update_id FROM updates") as cursor:
            return {int(row[0]) for row in await cursor.fetchall()}

    try:
        await old_claim(1)
        await store.claim_update(10, 60, "a")
        await store.finish_update(10)
        assert await claims() == {10}  # the first finish pruned the day-old claim
        await old_claim(2)
        await store.claim_update(11, 60, "a")
        await store.finish_update(11)
        assert await claims() == {2, 10, 11}  # not another full-table scan within the minute
    finally:
        await store.close()


async def test_update_ids_beyond_64_bits(store: StateStore) -> None:
    huge = 2**70 + _chat()  # beyond SQLite's INTEGER; DynamoDB and memory take it too
    assert await store.claim_update(huge, 60, "a") is ClaimResult.CLAIMED
    assert await store.claim_update(huge + 1, 60, "a") is ClaimResult.CLAIMED
    await store.finish_update(huge)
    assert await store.claim_update(huge, 60, "b") is ClaimResult.DUPLICATE
    await store.release_update(huge + 1)
    assert await store.claim_update(huge + 1, 60, "b") is ClaimResult.CLAIMED


@pytest.fixture(params=["sqlite", "dynamodb"])
async def two_bots(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[StateStore, StateStore]]:
    """Two bots (ids 111 and 222) on one state store: the same SQLite file, the same DynamoDB table."""
    stores: list[StateStore]
    if request.param == "sqlite":
        stores = [SqliteStore(str(tmp_path / "shared.db"), bot_id=bot) for bot in ("111", "222")]
    else:
        ddb: DynamoDBLocal = request.getfixturevalue("dynamodb")
        ddb.apply_env(monkeypatch)
        stores = [DynamoDBStore(TABLE, bot_id=bot) for bot in ("111", "222")]
    for store in stores:
        await store.open()
    try:
        yield stores[0], stores[1]
    finally:
        for store in stores:
            await store.close()


async def test_two_bots_on_one_store_keep_their_own_claims(two_bots: tuple[StateStore, StateStore]) -> None:
    first, second = two_bots
    update_id = _chat()
    assert await first.claim_update(update_id, 60, "a") is ClaimResult.CLAIMED
    assert await second.claim_update(update_id, 60, "b") is ClaimResult.CLAIMED  # not BUSY: another bot's
    await first.finish_update(update_id)
    assert await second.claim_update(update_id, 60, "c") is ClaimResult.BUSY  # its own claim, still held
    await second.release_update(update_id)
    assert await first.claim_update(update_id, 60, "d") is ClaimResult.DUPLICATE
    assert await second.claim_update(update_id, 60, "e") is ClaimResult.CLAIMED  # not a duplicate of 111's
    await second.finish_update(update_id)
    assert await second.claim_update(update_id, 60, "f") is ClaimResult.DUPLICATE


async def test_sqlite_file_from_before_claims_named_the_bot(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = SqliteStore(str(path))
    await old.open()
    await old.db.execute("DROP TABLE updates")
    await old.db.execute(
        "CREATE TABLE updates (update_id INTEGER PRIMARY KEY, status TEXT NOT NULL, "
        "lease_until REAL NOT NULL, updated_at REAL NOT NULL)"
    )
    await old.db.execute("INSERT INTO updates VALUES (7, 'done', 0, 0)")
    await old.db.commit()
    await old.close()
    store = SqliteStore(str(path), bot_id="111")
    await store.open()
    try:
        assert await store.claim_update(7, 60, "a") is ClaimResult.CLAIMED
        await store.finish_update(7)
        assert await store.claim_update(7, 60, "b") is ClaimResult.DUPLICATE
    finally:
        await store.close()


def test_the_dynamodb_client_is_loaded_only_for_dynamodb(tmp_path: Path) -> None:
    """The bot's own modules import the DynamoDB client (aiodynamo) only when STATE_BACKEND=dynamodb, and
    the AWS SDK (botocore and its kin) never (a fresh interpreter;
    tracing is not set up here, since mcstatbot_common's setup_tracing instruments what is installed)."""
    code = f"""
import os, sys
os.environ.update(TELEGRAM_BOT_TOKEN="1:x", SQLITE_PATH={str(tmp_path / "s.db")!r})
from mcstatbot_bot.app import create_app
from mcstatbot_bot.settings import BotSettings
from mcstatbot_bot.state import build_store
create_app(BotSettings())
for backend in ("sqlite", "memory"):
    build_store(BotSettings(state_backend=backend))
aws = ("aiodynamo", "yarl", "boto3", "botocore", "aioboto3", "aiobotocore")
assert not [m for m in sys.modules if m.split(".")[0] in aws], sorted(sys.modules)
build_store(BotSettings(state_backend="dynamodb"))
assert "aiodynamo.client" in sys.modules
assert not [m for m in sys.modules if m.split(".")[0] in aws[2:]], sorted(sys.modules)  # no AWS SDK at all
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


async def test_documents_compare_and_set(store: StateStore) -> None:
    key = f"test#{uuid.uuid4().hex}"
    assert await store.get_doc(key) is None
    assert await store.put_doc(key, {"a": [1, "x", None], "b": {"c": True}}, 0)
    assert not await store.put_doc(key, {"a": 2}, 0)  # it exists: a second "create" loses
    found = await store.get_doc(key)
    assert found is not None
    assert (found.doc, found.version) == ({"a": [1, "x", None], "b": {"c": True}}, 1)
    assert await store.put_doc(key, {"a": 2}, 1)
    assert not await store.put_doc(key, {"a": 3}, 1)  # a stale version loses
    assert not await store.delete_doc(key, 1)
    assert await store.delete_doc(key, 2)
    assert await store.get_doc(key) is None


async def test_concurrent_document_updates_all_land(store: StateStore) -> None:
    resilient = ResilientStore(store, retries=0)
    key = f"count#{uuid.uuid4().hex}"

    def bump(doc: dict[str, int] | None) -> dict[str, int]:
        return {"n": (doc or {"n": 0})["n"] + 1}

    await asyncio.gather(*(resilient.update_doc(key, bump) for _ in range(10)))
    found = await store.get_doc(key)
    assert found is not None
    assert found.doc == {"n": 10}


async def test_watch_records(store: StateStore) -> None:
    from mcstatbot_bot.state import watches  # noqa: PLC0415

    resilient = ResilientStore(store, retries=0)
    chat, other = _chat(), _chat()
    server = ServerRef(f"{uuid.uuid4().hex[:12]}.example:25565")
    add = watches.add_watch
    assert await add(resilient, chat, server, players=False, limit=2) is watches.AddResult.ADDED
    assert await add(resilient, chat, server, players=False, limit=2) is watches.AddResult.UNCHANGED
    assert await add(resilient, chat, server, players=True, limit=2) is watches.AddResult.CHANGED
    assert await add(resilient, other, server, players=False, limit=2) is watches.AddResult.ADDED
    second = ServerRef(f"{uuid.uuid4().hex[:12]}.example:25565")
    assert await add(resilient, chat, second, players=False, limit=2) is watches.AddResult.ADDED
    third = ServerRef("third.example:25565")
    assert await add(resilient, chat, third, players=False, limit=2) is watches.AddResult.LIMIT
    assert {w.server for w in await watches.chat_watches(resilient, chat)} == {server, second}
    assert await watches.watchers(resilient, server) == {chat: True, other: False}
    assert {server, second} <= set(await watches.watched_servers(resilient))
    assert third not in await watches.watched_servers(resilient)
    assert not await watches.prune_server(resilient, server)  # still watched
    assert await watches.remove_watch(resilient, chat, server)
    assert not await watches.remove_watch(resilient, chat, server)
    await watches.drop_chat_watch(resilient, other, server)
    assert await watches.prune_server(resilient, server)
    assert server not in await watches.watched_servers(resilient)
    assert await store.get_doc(watches.server_key(server)) is None


async def test_recent_servers(store: StateStore) -> None:
    """/servers' recent servers in every backend: the most recent first, each once, at most RECENT_MAX,
    and none older than RECENT_DAYS; asking again about the first one writes nothing."""
    from mcstatbot_bot.state import recent  # noqa: PLC0415

    resilient = ResilientStore(store, retries=0)
    chat = _chat()
    assert await recent.recent_servers(resilient, chat) == []
    servers = [ServerRef(f"s{i}.example.com", Edition.AUTO) for i in range(recent.RECENT_MAX + 2)]
    for server in servers:
        await recent.remember(resilient, chat, server)
    await recent.remember(resilient, chat, servers[3])
    expected = [servers[3], *reversed(servers[4:]), servers[2]]  # s0 and s1 fell out
    assert len(expected) == recent.RECENT_MAX
    assert await recent.recent_servers(resilient, chat) == expected
    before = await store.get_doc(recent.recent_key(chat))
    await recent.remember(resilient, chat, servers[3])
    after = await store.get_doc(recent.recent_key(chat))
    assert before is not None
    assert after is not None
    assert after.version == before.version  # already first, just now: no write
    # an entry older than RECENT_DAYS is forgotten
    doc = after.doc
    doc["servers"][0]["at"] = "2000-01-01T00:00:00Z"
    assert await store.put_doc(recent.recent_key(chat), doc, after.version)
    assert await recent.recent_servers(resilient, chat) == expected[1:]


OPERATIONS = "mcstatbot_state_store_operations_total"


def _count(backend: str, operation: str) -> float:
    labels = {"backend": backend, "operation": operation, "outcome": "ok"}
    return REGISTRY.get_sample_value(OPERATIONS, labels) or 0.0


async def test_a_batch_read_answers_what_reads_one_by_one_answer(store: StateStore) -> None:
    """More keys than one BatchGetItem (100) or one SQLite SELECT (500) takes, present and missing
    ones, repeats, a document written twice: `get_docs` and `get_doc` per key agree."""
    prefix = f"batch#{uuid.uuid4().hex}"
    present = [f"{prefix}#{n}" for n in range(130)]
    await asyncio.gather(
        *(store.put_doc(key, {"n": n, "tags": ["x", None]}, 0) for n, key in enumerate(present))
    )
    assert await store.put_doc(present[7], {"n": "seven"}, 1)
    missing = [f"{prefix}#missing#{n}" for n in range(420)]
    keys = [*missing[:50], *present, *missing[50:], present[0], missing[0], present[7]]
    one_by_one = {key: await store.get_doc(key) for key in dict.fromkeys(keys)}
    resilient = ResilientStore(store, retries=0)
    counted = _count(store.backend, "get_docs")
    found = await resilient.get_docs(keys)
    assert found == {key: doc for key, doc in one_by_one.items() if doc is not None}
    assert len(found) == len(present)
    assert (found[present[7]].doc, found[present[7]].version) == ({"n": "seven"}, 2)
    assert (found[present[3]].doc, found[present[3]].version) == ({"n": 3, "tags": ["x", None]}, 1)
    assert _count(store.backend, "get_docs") == counted + 1  # one operation, counted like the others
    assert await resilient.get_docs([]) == {}
    assert await resilient.get_docs(missing[:3]) == {}


async def test_dynamodb_batch_read_asks_again_for_unprocessed_keys(
    dynamodb: DynamoDBLocal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An answer past BatchGetItem's 16 MB comes back with UnprocessedKeys (DynamoDB Local does this
    too): the store asks again for those, counted as retries, until it has every document."""
    dynamodb.apply_env(monkeypatch)
    store = DynamoDBStore(TABLE)
    await store.open()
    try:
        prefix = f"big#{uuid.uuid4().hex}"
        keys = [f"{prefix}#{n}" for n in range(48)]
        filler = "x" * 360_000  # 48 items of ~360 KB: about 17 MB, past one answer's 16 MB
        for n, key in enumerate(keys):
            assert await store.put_doc(key, {"n": n, "filler": filler}, 0)
        answers: list[bool] = []

        send = store.send

        async def seen(action: str, payload: Mapping[str, Any]) -> dict[str, Any]:
            answer = await send(action, payload)
            if action == "BatchGetItem":
                answers.append(bool(answer.get("UnprocessedKeys")))
            return answer

        monkeypatch.setattr(store, "send", seen)
        labels = {"backend": "dynamodb", "operation": "get_docs"}
        before = REGISTRY.get_sample_value(RETRIES, labels) or 0.0
        found = await ResilientStore(store, retries=0).get_docs(keys)
        assert sorted(found) == sorted(keys)
        assert all(found[key].doc == {"n": n, "filler": filler} for n, key in enumerate(keys))
        assert answers[0] is True  # the first answer left keys out
        assert answers[-1] is False
        assert (REGISTRY.get_sample_value(RETRIES, labels) or 0.0) - before == len(answers) - 1
    finally:
        await store.close()


async def test_an_update_from_a_stale_read_still_compares_and_sets(store: StateStore) -> None:
    """`update_doc(read=...)`: a read taken before another writer's write loses its compare-and-set
    and the change is made again on a fresh read (nothing of the other write is lost); an up-to-date
    read costs no read at all."""
    resilient = ResilientStore(store, retries=0)
    key = f"stale#{uuid.uuid4().hex}"
    assert await store.put_doc(key, {"n": 1, "by": []}, 0)
    read = (await resilient.get_docs([key]))[key]
    assert await store.put_doc(key, {"n": 2, "by": ["other"]}, 1)  # another writer comes first

    def bump(doc: dict[str, Any] | None) -> dict[str, Any]:
        assert doc is not None
        return {"n": doc["n"] + 1, "by": [*doc["by"], "me"]}

    assert await resilient.update_doc(key, bump, read=read) == {"n": 3, "by": ["other", "me"]}
    fresh = await store.get_doc(key)
    assert fresh is not None
    assert (fresh.doc, fresh.version) == ({"n": 3, "by": ["other", "me"]}, 3)
    reads = _count(store.backend, "get_doc")
    assert await resilient.update_doc(key, bump, read=fresh) == {"n": 4, "by": ["other", "me", "me"]}
    assert _count(store.backend, "get_doc") == reads  # the read given was current: no read
    gone = f"stale#{uuid.uuid4().hex}"
    assert await resilient.update_doc(gone, lambda doc: {"new": doc is None}, read=None) == {"new": True}
    assert await resilient.update_doc(gone, lambda _: {"again": True}, read=None) == {"again": True}
    assert _count(store.backend, "get_doc") == reads + 1  # "not there" was out of date: read afresh
