"""Helpers for the watcher's tests: bot and watcher processes on one state file (`WatchStack`), a user's
command and the bot's answer (`ask`), the alerts a chat got, the watcher's check counters from /metrics.

Every helper talks to the real processes and the Bot API test server; nothing is mocked.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from mcstatbot_testkit.services import ServiceProcess, ServiceStack
from mcstatbot_testkit.telegram import parse_html

if TYPE_CHECKING:
    from collections.abc import Callable

    from mcstatbot_testkit.telegram import BotApiServer

T = TypeVar("T")

PLACEHOLDER = {"name": "§4● Offline", "protocol": 46}  # Aternos's answer for a stopped server


def ask(api: BotApiServer, chat_id: int, text: str, **kwargs: Any) -> str:
    """A user sends `text` in `chat_id` (`send_text` keywords: chat_type, user_id); the bot's answer as
    the user sees it (HTML parsed)."""
    since = api.last_seq
    api.send_text(chat_id, text, **kwargs)
    call = api.wait_for_call_sync(
        "sendMessage", lambda c: c.chat_id == chat_id and c.ok, timeout=15, since=since
    )
    return parse_html(call.text)


def checks(watcher: ServiceProcess, outcome: str) -> int:
    text = httpx.get(f"{watcher.url}/metrics", timeout=5).text
    found = re.search(
        rf'^mcstatbot_watcher_checks_total\{{outcome="{outcome}"\}} ([0-9.e+]+)$', text, re.MULTILINE
    )
    return int(float(found.group(1))) if found else 0


def alerts(api: BotApiServer, chat_id: int, word: str) -> list[str]:
    """The messages delivered to `chat_id` (calls the test server answered ok) that contain `word`."""
    texts = [parse_html(c.text) for c in api.calls_to("sendMessage", chat_id) if c.ok]
    return [text for text in texts if word in text]


def wait_until(condition: Callable[[], T], timeout: float = 30.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"{what} not met within {timeout} s")


def wait_checks(watcher: ServiceProcess, outcome: str, more: int = 1) -> None:
    start = checks(watcher, outcome)
    wait_until(lambda: checks(watcher, outcome) >= start + more, what=f"{more} more {outcome} checks")


class WatchStack(ServiceStack):
    """Bot and watcher processes with short watch intervals (WATCH_INTERVAL_SECONDS=1)."""

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(
            **{"WATCH_INTERVAL_SECONDS": "1", "WATCH_DOWN_AFTER": "3", "WATCH_FLAP_SECONDS": "600", **extra}
        )

    def bot(self, **extra: str) -> ServiceProcess:
        return self.launch("bot", self.env(**extra))

    def watcher(self, **extra: str) -> ServiceProcess:
        return self.launch("watcher", self.env(**extra))
