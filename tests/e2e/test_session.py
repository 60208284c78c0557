"""A user's session through every real part: Telegram -> bot -> query service -> Minecraft peers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import pytest
from mcstatbot_testkit.harness import System, TelegramUser, run_session

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.e2e


def test_a_users_session(
    system: System,
    new_user: Callable[[], TelegramUser],
    state_item: Callable[[int], dict[str, Any] | None],
) -> None:
    system.flush_cache()
    system.java.reset_counts()
    user = new_user()

    report = run_session(system, user)

    assert report.steps == 7
    # The first /status reached the Java peer; the Status button later was answered from the cache.
    assert report.java_connections_before_cached_press >= 1
    assert report.java_connections_after_cached_press == report.java_connections_before_cached_press
    # /status without an argument answered for the chat's last server (Java, asked by the Status button).
    assert system.java.address in report.replies["/status (last server)"]
    assert system.bedrock.address not in report.replies["/status (last server)"]
    # The chat's state is in DynamoDB: the last server and the last answer.
    item = state_item(user.chat_id)
    assert item is not None
    assert item["last_url"]["S"] == system.java.address
    assert item["server_data"]["M"]["online"]["BOOL"] is True


def test_replicas_share_one_cache(system: System, new_user: Callable[[], TelegramUser]) -> None:
    """The bot's answer went through the first replica; the second answers from the same Redis."""
    system.flush_cache()
    system.java.reset_counts()
    user = new_user()
    user.send(f"/status {system.java.address}")
    probes = system.java.status_requests
    assert probes >= 1

    response = system.query_status(system.query_other, system.java.address)

    assert response.status_code == httpx.codes.OK
    assert response.headers["X-Cache"] == "HIT"
    assert response.json()["online"] is True
    assert system.java.status_requests == probes
