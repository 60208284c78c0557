"""Fixtures for the watcher's tests: a real query service, Java peers, the Bot API test server, and
`stack`, which starts bot and watcher processes sharing one SQLite state file (stopped after the test).

Intervals are short (WATCH_INTERVAL_SECONDS=1) and the query service caches for 1 s, its minimum.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from mcstatbot_testkit.minecraft import JavaPeer
from mcstatbot_testkit.net import LOOPBACK, free_port
from mcstatbot_testkit.services import ServiceProcess, bot_service, query_service, watcher_service
from mcstatbot_testkit.telegram import BotApiServer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture(scope="session")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("watcher-logs")


def _query_env(*, allow_private: bool) -> dict[str, str]:
    return {
        "DNS_NAMESERVERS": f"{LOOPBACK}:{free_port()}",  # nothing answers: no lookup leaves the machine
        "MC_TIMEOUT": "1",
        "CACHE_TTL_STATUS": "1",
        "CACHE_TTL_PLAYERS": "1",
        "CACHE_TTL_OFFLINE": "1",
        "ALLOW_PRIVATE_ADDRESSES": "true" if allow_private else "false",
    }


@pytest.fixture(scope="session")
def query(logs: Path) -> Iterator[ServiceProcess]:
    with query_service(logs / "query.log", _query_env(allow_private=True)) as service:
        yield service


@pytest.fixture(scope="session")
def strict_query(logs: Path) -> Iterator[ServiceProcess]:
    """A query service with the default rule: loopback and private addresses are refused (403)."""
    with query_service(logs / "query-strict.log", _query_env(allow_private=False)) as service:
        yield service


@pytest.fixture
def peer(logs: Path, tmp_path: Path) -> Iterator[JavaPeer]:
    """A Java peer of this test's own: tests stop, start and reconfigure it."""
    with JavaPeer(logs / f"java-{tmp_path.name}.log", online=2) as java:
        yield java


@pytest.fixture
def api() -> Iterator[BotApiServer]:
    with BotApiServer(redelivery_delay=0.2) as server:
        yield server


class Stack:
    """Bot and watcher processes against one Bot API test server, query service and SQLite file."""

    def __init__(self, logs: Path, api: BotApiServer, query: ServiceProcess, tmp_path: Path) -> None:
        self.logs = logs
        self.api = api
        self.query = query
        self.tmp_path = tmp_path
        self.started: list[ServiceProcess] = []

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "TELEGRAM_BOT_TOKEN": self.api.token,
            "TELEGRAM_API_BASE_URL": self.api.base_url,
            "QUERY_SERVICE_URL": self.query.url,
            "BOT_MODE": "polling",
            "STATE_BACKEND": "sqlite",
            "SQLITE_PATH": str(self.tmp_path / "state.db"),
            "LOG_LEVEL": "INFO",
            "WATCH_INTERVAL_SECONDS": "1",
            "WATCH_DOWN_AFTER": "3",
            "WATCH_FLAP_SECONDS": "600",
            **extra,
        }

    def _start(self, kind: str, env: dict[str, str]) -> ServiceProcess:
        name = f"{kind}-{len(self.started) + 1}-{self.tmp_path.name}.log"
        factory = bot_service if kind == "bot" else watcher_service
        service = factory(self.logs / name, env)
        self.started.append(service)
        service.start()
        return service

    def bot(self, **extra: str) -> ServiceProcess:
        return self._start("bot", self.env(**extra))

    def watcher(self, **extra: str) -> ServiceProcess:
        return self._start("watcher", self.env(**extra))

    def stop_all(self) -> None:
        for service in self.started:
            service.stop()


@pytest.fixture
def stack(logs: Path, api: BotApiServer, query: ServiceProcess, tmp_path: Path) -> Iterator[Stack]:
    manager = Stack(logs, api, query, tmp_path)
    try:
        yield manager
    finally:
        manager.stop_all()
