"""Per-chat flood control: at most `max_probes` probes per `window_seconds` (sliding window).

A chat over the limit is told to slow down ONCE (`Verdict.LIMITED_NOTIFY`); further probes in the same
burst are dropped silently (`Verdict.LIMITED_SILENT`) until the chat is allowed again. Per replica, in
memory: a burst reaches one replica mostly, and the limit only protects the query service and Telegram.
"""

from __future__ import annotations

import time
from collections import deque
from enum import Enum
from typing import TYPE_CHECKING

from mcstatbot_bot import metrics

if TYPE_CHECKING:
    from collections.abc import Callable

_MAX_CHATS = 50_000


class Verdict(Enum):
    ALLOWED = "allowed"
    LIMITED_NOTIFY = "limited_notify"
    LIMITED_SILENT = "limited_silent"


class FloodControl:
    def __init__(
        self, max_probes: int = 5, window_seconds: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_probes = max_probes
        self.window = window_seconds
        self._clock = clock
        self._hits: dict[int, deque[float]] = {}
        self._notified: set[int] = set()

    def check(self, chat_id: int) -> Verdict:
        now = self._clock()
        hits = self._hits.setdefault(chat_id, deque())
        while hits and now - hits[0] >= self.window:
            hits.popleft()
        if len(hits) < self.max_probes:
            hits.append(now)
            self._notified.discard(chat_id)
            self._prune(now)
            return Verdict.ALLOWED
        metrics.FLOOD_LIMITED.inc()
        if chat_id in self._notified:
            return Verdict.LIMITED_SILENT
        self._notified.add(chat_id)
        return Verdict.LIMITED_NOTIFY

    def _prune(self, now: float) -> None:
        if len(self._hits) <= _MAX_CHATS:
            return
        for chat_id in [c for c, h in self._hits.items() if not h or now - h[-1] >= self.window]:
            del self._hits[chat_id]
            self._notified.discard(chat_id)
