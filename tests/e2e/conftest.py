"""Fixtures for the end-to-end tests: the whole system started once per test session.

`system` is the running `mcstatbot_testkit.harness.System` (bot in webhook mode, two query-service
replicas sharing one Redis, DynamoDB Local, Java and Bedrock peers, the Bot API test server). Each test
gets it healed first: anything an earlier test stopped is back. `new_user()` gives a chat of its own.

Logs go to test-logs/e2e/<time>/ (one file per process). When a test fails, the last lines of every log
are added to its report; the folder is kept when anything failed (or E2E_KEEP_LOGS is set) and removed
otherwise.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiobotocore.session import get_session
from mcstatbot_testkit.harness import TABLE, System, TelegramUser

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterator

REPO_ROOT = Path(__file__).resolve().parents[2]
_chat_ids = itertools.count(700_000_001)
_failed: list[str] = []


@pytest.fixture(scope="session")
def e2e_log_dir() -> Path:
    return REPO_ROOT / "test-logs" / "e2e" / time.strftime("%Y%m%d-%H%M%S")


@pytest.fixture(scope="session")
def running_system(e2e_log_dir: Path) -> Iterator[System]:
    system = System(e2e_log_dir)
    system.start()
    try:
        yield system
    finally:
        system.stop()
        if not _failed and not os.environ.get("E2E_KEEP_LOGS"):
            shutil.rmtree(e2e_log_dir, ignore_errors=True)
        else:
            print(f"\ne2e logs kept in {e2e_log_dir} (failed: {', '.join(_failed)})")  # noqa: T201


@pytest.fixture
def system(running_system: System, request: pytest.FixtureRequest) -> System:
    running_system.heal()
    request.node.stash[_SYSTEM_KEY] = running_system
    return running_system


@pytest.fixture
def new_user(system: System) -> Callable[[], TelegramUser]:
    def make() -> TelegramUser:
        return TelegramUser(system.api, next(_chat_ids))

    return make


_SYSTEM_KEY = pytest.StashKey[System]()


@pytest.fixture
def state_item(system: System) -> Callable[[int], dict[str, Any] | None]:
    """Read a chat's item from the DynamoDB table the bot writes (None: no item), with a real client."""

    async def read(chat_id: int) -> dict[str, Any] | None:
        env = system.dynamodb.env()
        async with get_session().create_client(
            "dynamodb",
            endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"],
            region_name=env["AWS_REGION"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        ) as client:
            answer = await client.get_item(
                TableName=TABLE, Key={"chat_id": {"S": str(chat_id)}}, ConsistentRead=True
            )
            return dict(answer["Item"]) if "Item" in answer else None

    return lambda chat_id: asyncio.run(read(chat_id))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and _SYSTEM_KEY in item.stash:
        _failed.append(item.name)
        report.sections.append(("e2e process logs", item.stash[_SYSTEM_KEY].log_tails()))
    return report
