"""The servers due in one tick go to the query service as one batch call, and two replicas on one Redis
check a server once per interval also when one of them was held up past the due time.

Real parts, in this process: the query service app (its lifespan running) behind httpx's ASGI transport,
Minecraft servers answered by the test kit's ping farm (one loopback port each), the memory state store,
and for the replicas a real `redis-server`. Each watcher's requests to the query service are recorded by
an httpx request hook on its own client. No Telegram call is made: a server's first state is taken
silently. DynamoDB Local (the real jar) for the requests a tick costs the state store."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import TYPE_CHECKING, Any

import httpx
from mcstatbot_bot.breaker import CircuitBreaker
from mcstatbot_bot.query_client import QueryClient
from mcstatbot_bot.state import build_store
from mcstatbot_bot.state.base import ServerRef
from mcstatbot_bot.state.dynamodb import DynamoDBStore, create_table
from mcstatbot_bot.state.watches import add_watch, check_key
from mcstatbot_bot.telegram_api import build_application
from mcstatbot_common.models import Edition
from mcstatbot_query.app import create_app
from mcstatbot_query.settings import QuerySettings
from mcstatbot_testkit.dynamodb import DynamoDBLocal
from mcstatbot_testkit.ping_farm import PingFarm
from mcstatbot_testkit.redis import RedisServer
from mcstatbot_watcher.service import Watcher, offset
from mcstatbot_watcher.settings import WatcherSettings
from mcstatbot_watcher.slots import LocalSlots, RedisSlots, Slots

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping
    from pathlib import Path

    import pytest
    from fastapi import FastAPI
    from mcstatbot_bot.state import ResilientStore

TOKEN = "123:never-sent"  # noqa: S105 - no Bot API is called
BATCH = "/api/v1/status/batch"


class Recorded:
    """The requests one watcher sent to the query service: (path, servers asked)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, list[str]]] = []

    async def __call__(self, request: httpx.Request) -> None:
        body: dict[str, Any] = json.loads(request.content) if request.content else {}
        asked = [s["server_url"] for s in body.get("servers", [])] or [body.get("server_url", "")]
        self.requests.append((request.url.path, asked))

    def asked(self, address: str) -> int:
        return sum(servers.count(address) for _, servers in self.requests)


@contextlib.asynccontextmanager
async def query_app() -> AsyncIterator[FastAPI]:
    settings = QuerySettings(
        allow_private_addresses=True, mc_timeout=2.0, dns_srv=False, redis_url=None, cache_ttl_status=1
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@contextlib.asynccontextmanager
async def watcher(
    app: FastAPI, store: ResilientStore, slots: Slots, interval: float
) -> AsyncIterator[tuple[Watcher, Recorded]]:
    recorded = Recorded()
    settings = WatcherSettings(
        telegram_bot_token=TOKEN, state_backend="memory", watch_interval_seconds=interval
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://query.test",
        event_hooks={"request": [recorded]},
    ) as http:
        query = QueryClient(http, CircuitBreaker(3, 1.0), timeout=5.0, retries=0)
        made = Watcher(settings, store, query, build_application(settings, webhook=True).bot, slots)
        try:
            yield made, recorded
        finally:
            made.halt()
            await made.stop()
            await slots.close()


async def watched(ports: list[int], *, watch: bool = True) -> tuple[ResilientStore, list[ServerRef]]:
    """A memory store and a server per port, each watched by a chat of its own (`watch`)."""
    store = build_store(WatcherSettings(telegram_bot_token=TOKEN, state_backend="memory"))
    await store.open()
    servers = [ServerRef(f"127.0.0.1:{port}", Edition.JAVA) for port in ports]
    if watch:
        for index, server in enumerate(servers):
            await add_watch(store, 100 + index, server, players=False, limit=10)
    return store, servers


async def until(condition: Callable[[], bool], seconds: float) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - what it waits for sets no event
            await asyncio.sleep(0.05)


async def checked_at_farm(farm: PingFarm) -> dict[int, int]:
    """Status requests the farm saw, by port (asked off the event loop: it is a socket exchange)."""
    times = await asyncio.to_thread(farm.request_times)
    return {port: len(times.get(port, [])) for port in farm.ports}


async def run_until_checked(made: Watcher, farm: PingFarm, checks: int, *, within: float) -> None:
    """Run the watcher until the farm saw at least `checks` status requests on every port, then halt it."""
    running = asyncio.create_task(made.run())
    async with asyncio.timeout(within):
        while min((await checked_at_farm(farm)).values()) < checks:  # noqa: ASYNC110 - another process
            await asyncio.sleep(0.1)
    made.halt()
    await running


async def test_servers_due_together_go_out_as_one_batch_call(tmp_path: Path) -> None:
    interval = 3.0
    with PingFarm(tmp_path / "farm.log", 6) as farm:
        store, servers = await watched(farm.ports, watch=False)
        async with query_app() as app, watcher(app, store, LocalSlots(), interval) as (made, recorded):
            # a watch added once the watcher runs is checked at once: six at once here, in one tick
            await made.refresh()  # the first read: nothing watched yet
            for index, server in enumerate(servers):
                await add_watch(store, 100 + index, server, players=False, limit=10)
            await made.refresh()
            await run_until_checked(made, farm, 3, within=4 * interval)
        records = [await store.get_doc(check_key(server)) for server in servers]
        await store.close()
    paths = {path for path, _ in recorded.requests}
    assert paths == {BATCH}, recorded.requests  # never one status request per server
    first = recorded.requests[0][1]
    assert sorted(first) == sorted(server.address for server in servers)
    checks = sum(len(asked) for _, asked in recorded.requests)
    assert checks >= 3 * len(servers)
    assert len(recorded.requests) < checks  # fewer calls than checks
    for record in records:
        assert record is not None
        assert record.doc["state"] == "up"
        assert record.doc["outbox"] == []


async def test_a_fresh_start_checks_each_server_at_its_offset_not_all_at_once(tmp_path: Path) -> None:
    """The servers watched before the watcher started (a restart of every replica) are checked first at
    their own offsets in the interval, never all in the first tick: a fresh start of a replica with
    thousands of watches used to ask for all of them at once, a burst past the query service's Redis pool.
    With the old schedule every first check here falls in the first second; now each comes at its offset
    (at most two seconds late on a busy machine, never early)."""
    interval = 8.0
    with PingFarm(tmp_path / "farm.log", 12) as farm:
        store, servers = await watched(farm.ports)
        async with query_app() as app, watcher(app, store, LocalSlots(), interval) as (made, recorded):
            await made.refresh()  # the first read: what `run` finds already there stays scheduled
            due = {made.servers[key].address: at for key, at in made._next_due.items()}
            await run_until_checked(made, farm, 1, within=3 * interval)
        times = await asyncio.to_thread(farm.request_times)
        await store.close()
    first = {f"127.0.0.1:{port}": min(asked) for port, asked in times.items()}
    assert set(first) == set(due) == {server.address for server in servers}
    for address, at in first.items():
        assert due[address] - 0.05 <= at <= due[address] + 2.0, (address, at, due[address])
    spread = max(due.values()) - min(due.values())
    assert spread > interval / 4  # twelve offsets do spread (the test means something)
    assert len(recorded.requests) > 1  # more than one tick's call


async def test_a_watch_added_while_running_is_checked_at_once(tmp_path: Path) -> None:
    """A new watch is not left waiting for its offset: the check comes in the next tick, seconds before
    its due time (the server chosen is the one of twelve whose offset is furthest from now)."""
    interval = 60.0
    with PingFarm(tmp_path / "farm.log", 12) as farm:
        store, servers = await watched(farm.ports, watch=False)
        async with query_app() as app, watcher(app, store, LocalSlots(), interval) as (made, recorded):
            await made.refresh()  # the first read: nothing watched yet
            now = time.time()
            server = max(servers, key=lambda s: made._due_after(s, now))
            assert made._due_after(server, now) - now > 20  # nearly sure with twelve offsets
            await add_watch(store, 300, server, players=False, limit=10)
            running = asyncio.create_task(made.run())
            await until(lambda: recorded.asked(server.address) >= 1, 10.0)
            made.halt()
            await running
        at_farm = await checked_at_farm(farm)
        await store.close()
    assert at_farm[int(server.address.rsplit(":", 1)[1])] == 1
    assert made._due_after(server, now) - time.time() > 5  # checked well before its offset


async def test_a_replica_held_up_past_the_due_time_does_not_check_what_the_other_checked(
    tmp_path: Path,
) -> None:
    """Replica B checks the server in the current interval; replica A, whose loop was held up for three
    intervals (a busy machine), comes to the server's due time from three intervals ago. It claims the
    slot the check would fall in now, the one B took, and so does not check the server a second time in
    this interval (it used to claim the slot that went by, free, and check)."""
    interval = 30.0
    with PingFarm(tmp_path / "farm.log", 1) as farm, RedisServer(tmp_path / "redis.log") as redis:
        store, (server,) = await watched(farm.ports)
        into = (time.time() - offset(server, interval)) % interval
        if interval - into < 10:  # the test's few seconds all in one interval of the server's
            await asyncio.sleep(interval - into + 0.1)
        async with (
            query_app() as app,
            watcher(app, store, RedisSlots(redis.url, "replica-b"), interval) as (b, b_sent),
            watcher(app, store, RedisSlots(redis.url, "replica-a"), interval) as (a, a_sent),
        ):
            await b.refresh()
            b._next_due[server.key] = time.time()  # due now, as a watch added while B runs
            b_running = asyncio.create_task(b.run())
            await until(lambda: b_sent.asked(server.address) == 1, 5.0)
            await a.refresh()
            a._next_due[server.key] = time.time() - 3 * interval  # held up three intervals
            a_running = asyncio.create_task(a.run())
            await until(lambda: a._next_due[server.key] > time.time(), 5.0)  # its tick came
            await asyncio.sleep(1.0)  # A's group, had it claimed the server, would have asked by now
            a.halt()
            b.halt()
            await asyncio.gather(a_running, b_running)
        at_farm = await checked_at_farm(farm)
        await store.close()
    assert a_sent.asked(server.address) == 0, a_sent.requests
    assert b_sent.asked(server.address) == 1
    assert at_farm == {farm.ports[0]: 1}


def _keys(operation: str, params: Mapping[str, Any]) -> list[str]:
    """The item keys a DynamoDB request names."""
    if operation == "BatchGetItem":
        return [key["chat_id"]["S"] for table in params["RequestItems"].values() for key in table["Keys"]]
    item = params.get("Key") or params.get("Item") or {}
    return [item["chat_id"]["S"]] if "chat_id" in item else []


async def test_on_dynamodb_a_tick_reads_in_one_batch_and_a_check_that_changes_nothing_writes_no_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DynamoDB Local (the real jar), every request the store sends seen by a wrapper around its `send`: the
    watches and check records of the servers due in a tick are read in one BatchGetItem (no GetItem of
    them), each check appends its history sample, and the record, once written by the first check, is
    not written again while the servers stay up (nothing in it changed)."""
    interval = 3.0
    table = "user_sessions"
    with PingFarm(tmp_path / "farm.log", 6) as farm, DynamoDBLocal(tmp_path / "dynamodb.log") as ddb:
        ddb.apply_env(monkeypatch)
        await create_table(table)
        settings = WatcherSettings(telegram_bot_token=TOKEN, state_backend="dynamodb", dynamodb_table=table)
        store = build_store(settings)
        await store.open()
        servers = [ServerRef(f"127.0.0.1:{port}", Edition.JAVA) for port in farm.ports]
        for index, server in enumerate(servers):
            await add_watch(store, 100 + index, server, players=False, limit=10)
        sent: list[tuple[str, list[str]]] = []

        inner = store.inner
        assert isinstance(inner, DynamoDBStore)
        send = inner.send

        async def seen(action: str, payload: Mapping[str, Any]) -> dict[str, Any]:
            sent.append((action, _keys(action, payload)))
            return await send(action, payload)

        monkeypatch.setattr(inner, "send", seen)
        async with query_app() as app, watcher(app, store, LocalSlots(), interval) as (made, recorded):
            await run_until_checked(made, farm, 3, within=5 * interval)
        monkeypatch.setattr(inner, "send", send)
        records = await store.get_docs([check_key(server) for server in servers])
        await store.close()
    checks = sum(len(asked) for _, asked in recorded.requests)
    assert checks >= 3 * len(servers)
    batches = [keys for operation, keys in sent if operation == "BatchGetItem"]
    assert 0 < len(batches) < checks
    for keys in batches:  # each server's watches and record together
        assert {key.split("#", 1)[1] for key in keys if key.startswith("watch#")} == {
            key.split("#", 1)[1] for key in keys if key.startswith("check#")
        }
    by_server = [(operation, key) for operation, keys in sent for key in keys if operation != "BatchGetItem"]
    for server in servers:
        one = [(operation, key) for operation, key in by_server if server.key in key]
        assert ("GetItem", check_key(server)) not in one
        assert ("GetItem", f"watch#{server.key}") not in one
        assert one.count(("PutItem", check_key(server))) == 1, one  # the first check's, and no other
        history = [key for operation, key in one if operation == "UpdateItem" and key.startswith("history#")]
        assert len(history) >= 3  # one sample per check
        assert records[check_key(server)].version == 1
        assert records[check_key(server)].doc["state"] == "up"
