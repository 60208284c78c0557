"""The watcher's Prometheus metrics (default registry, GET /metrics); no label names a chat or a server."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

CHECKS = Counter(
    "mcstatbot_watcher_checks",
    "Checks by outcome: up, failed (down, refused, placeholder, ...), query_unavailable (no verdict), "
    "rejected (the query service refused the address), other_replica (another replica had the slot), "
    "same_slot (this replica had taken up the slot already), store_failed (the state store could not read "
    "the server's watches: the check skipped)",
    ["outcome"],
)
ALERTS = Counter(
    "mcstatbot_watcher_alerts",
    "Alert sends by kind (down, up, players) and outcome (sent, delayed: kept for a retry, chat_gone: the "
    "watch ended, refused: dropped)",
    ["kind", "outcome"],
)
WATCHED_SERVERS = Gauge("mcstatbot_watcher_watched_servers", "Servers in the index of watched servers")
LIVE_EDITS = Counter(
    "mcstatbot_watcher_live_edits",
    "Live card edits by outcome: edited, gone (the message was deleted: the card stops), failed (retried)",
    ["outcome"],
)
