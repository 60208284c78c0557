"""Fixtures for the bot service's tests: real peers on loopback, started once per session.

- `java_peer`: the npm `minecraft-protocol` Java server (mcstatbot_testkit.minecraft);
- `query`: the real query service (`python -m mcstatbot_query`) allowed to probe loopback peers;
- `dynamodb`: DynamoDB Local (the jar) with the `user_sessions` table made by `mcstatbot-bot create-table`;
- `store`: each state store backend in turn (memory, SQLite, DynamoDB Local), opened;
- `api`: a fresh Bot API test server per test (mcstatbot_testkit.telegram);
- `bots`: starts bot service processes (`python -m mcstatbot_bot`) against those, stops them after the test.
"""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
from mcstatbot_testkit.dynamodb import DynamoDBLocal
from mcstatbot_testkit.minecraft import JavaPeer
from mcstatbot_testkit.net import LOOPBACK, free_port
from mcstatbot_testkit.services import ServiceProcess, ServiceStack, query_service
from mcstatbot_testkit.telegram import BotApiServer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator
    from pathlib import Path

    from mcstatbot_bot.state import StateStore

TABLE = "user_sessions"
WEBHOOK_PATH = "/telegram/webhook"


@pytest.fixture(scope="session")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bot-logs")


@pytest.fixture(scope="session")
def java_peer(logs: Path) -> Iterator[JavaPeer]:
    sample = [
        {"name": n, "id": f"00000000-0000-0000-0000-00000000000{i}"}
        for i, n in enumerate(["zed", "Alex", "<b>"])
    ]
    with JavaPeer(
        logs / "java.log", motd="§aHello & <welcome>", online=3, max_players=20, sample=sample
    ) as peer:
        yield peer


def _query_env(**extra: str) -> dict[str, str]:
    return {
        "DNS_NAMESERVERS": f"{LOOPBACK}:{free_port()}",  # nothing answers: no lookup leaves the machine
        "MC_TIMEOUT": "2",
        "CACHE_TTL_STATUS": "1",
        "CACHE_TTL_PLAYERS": "1",
        "CACHE_TTL_OFFLINE": "1",
        **extra,
    }


@pytest.fixture(scope="session")
def query(logs: Path) -> Iterator[ServiceProcess]:
    service = query_service(logs / "query.log", _query_env(ALLOW_PRIVATE_ADDRESSES="true"))
    with service:
        yield service


@pytest.fixture(scope="session")
def strict_query(logs: Path) -> Iterator[ServiceProcess]:
    """A query service with the default rule: loopback and private addresses are refused (403)."""
    service = query_service(logs / "query-strict.log", _query_env(ALLOW_PRIVATE_ADDRESSES="false"))
    with service:
        yield service


@pytest.fixture(scope="session")
def dynamodb(logs: Path) -> Iterator[DynamoDBLocal]:
    with DynamoDBLocal(logs / "dynamodb.log") as ddb:
        create_table(ddb)
        yield ddb


def create_table(ddb: DynamoDBLocal) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "mcstatbot_bot", "create-table"],
        env={**ddb.env(), "DYNAMODB_TABLE": TABLE, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


@pytest.fixture
def run_create_table() -> Callable[[DynamoDBLocal], str]:
    """`mcstatbot-bot create-table` against a DynamoDB Local; returns its output."""
    return create_table


@pytest.fixture
def api() -> Iterator[BotApiServer]:
    with BotApiServer(redelivery_delay=0.2) as server:
        yield server


class Bots(ServiceStack):
    """Starts bot service processes; every one is stopped when the test ends."""

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(**{"BREAKER_RESET_SECONDS": "2", **extra})

    def start(self, *, port: int = 0, webhook: bool = False, **extra: str) -> ServiceProcess:
        env = self.env(**extra)
        if webhook:  # the webhook's URL names the port: chosen here (else by the process, see ServiceProcess)
            port = port or free_port()
            env["BOT_MODE"] = "webhook"
            env.setdefault("WEBHOOK_URL", f"http://{LOOPBACK}:{port}{WEBHOOK_PATH}")
        return self.launch("bot", env, port=port)


@pytest.fixture
def bots(logs: Path, api: BotApiServer, query: ServiceProcess, tmp_path: Path) -> Iterator[Bots]:
    manager = Bots(logs, api, query, tmp_path)
    try:
        yield manager
    finally:
        manager.stop_all()


@pytest.fixture
def start_bot(bots: Bots) -> Callable[..., ServiceProcess]:
    """`start_bot(port=0, webhook=False, **ENV)`: a bot process (polling, SQLite in tmp_path by default)."""
    return bots.start


@pytest.fixture(params=["memory", "sqlite", "dynamodb"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[StateStore]:
    """Each state store backend in turn, opened (DynamoDB: DynamoDB Local's `user_sessions` table)."""
    from mcstatbot_bot.state.memory import MemoryStore  # noqa: PLC0415 - the stores load only where used
    from mcstatbot_bot.state.sqlite import SqliteStore  # noqa: PLC0415

    backend: StateStore
    if request.param == "memory":
        backend = MemoryStore()
    elif request.param == "sqlite":
        backend = SqliteStore(str(tmp_path / "state.db"))
    else:
        from mcstatbot_bot.state.dynamodb import DynamoDBStore  # noqa: PLC0415

        ddb: DynamoDBLocal = request.getfixturevalue("dynamodb")
        ddb.apply_env(monkeypatch)
        backend = DynamoDBStore(TABLE)
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()
