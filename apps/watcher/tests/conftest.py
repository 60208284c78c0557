"""Fixtures for the watcher's tests: a real query service, Java peers, the Bot API test server, and
`stack`, which starts bot and watcher processes sharing one SQLite state file (stopped after the test).

Intervals are short (WATCH_INTERVAL_SECONDS=1) and the query service caches for 1 s, its minimum.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from mcstatbot_testkit.minecraft import JavaPeer
from mcstatbot_testkit.net import LOOPBACK, free_port
from mcstatbot_testkit.services import ServiceProcess, query_service
from mcstatbot_testkit.telegram import BotApiServer
from mcstatbot_testkit.watching import WatchStack

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


@pytest.fixture
def stack(logs: Path, api: BotApiServer, query: ServiceProcess, tmp_path: Path) -> Iterator[WatchStack]:
    """Bot and watcher processes (`stack.bot(**ENV)`, `stack.watcher(**ENV)`), all stopped afterwards."""
    manager = WatchStack(logs, api, query, tmp_path)
    try:
        yield manager
    finally:
        manager.stop_all()
