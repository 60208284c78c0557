"""The bot's Prometheus metrics (default registry, shown by GET /metrics).

The names are fixed: the Grafana dashboard is built against them. No label carries a chat id or a
server address (unbounded cardinality, and personal data).
"""

from __future__ import annotations

from mcstatbot_common.observability import ERRORS as SHARED_ERRORS
from prometheus_client import Counter, Gauge

COMMANDS = Counter("mcstatbot_commands", "Bot commands handled, by command", ["command"])
CALLBACKS = Counter("mcstatbot_callbacks", "Inline button presses handled, by action", ["action"])
UPDATES = Counter(
    "mcstatbot_updates",
    "Telegram updates by outcome: handled, duplicate (seen before), failed, rejected (bad request), "
    "refused (the Bot API refused the reply for good; acknowledged)",
    ["outcome"],
)
QUERY_REQUESTS = Counter(
    "mcstatbot_query_requests",
    "Calls to the query service by endpoint and outcome (ok, client_error, unavailable, short_circuited)",
    ["endpoint", "outcome"],
)
BREAKER_STATE = Gauge(
    "mcstatbot_circuit_breaker_state", "Query-service circuit breaker: 0 closed, 1 half-open, 2 open"
)
BREAKER_TRANSITIONS = Counter(
    "mcstatbot_circuit_breaker_transitions", "Circuit breaker state changes, by new state", ["state"]
)
FALLBACK_REPLIES = Counter(
    "mcstatbot_fallback_replies",
    "Replies given while the query service was unavailable: stored answer or 'unavailable'",
    ["kind"],
)
STATE_OPERATIONS = Counter(
    "mcstatbot_state_store_operations",
    "State-store calls by backend, operation and outcome (ok, error)",
    ["backend", "operation", "outcome"],
)
STATE_RETRIES = Counter(
    "mcstatbot_state_store_retries",
    "State-store call retries, by backend and operation",
    ["backend", "operation"],
)
TELEGRAM_API_ERRORS = Counter(
    "mcstatbot_telegram_api_errors",
    "Failed Bot API calls by kind: rate_limited, bad_request, network, other",
    ["kind"],
)
TELEGRAM_BUDGET_SHARED = Gauge(
    "mcstatbot_telegram_budget_shared",
    "Telegram send budget: 1 shared through Redis, 0 this process's own (no REDIS_URL, or Redis failed)",
)
TELEGRAM_BUDGET_FALLBACKS = Counter(
    "mcstatbot_telegram_budget_fallbacks",
    "Times the Telegram send budget fell back from Redis to this process's own (Redis failed)",
)
FLOOD_LIMITED = Counter("mcstatbot_flood_limited", "Probes refused because a chat asked too fast")
# `mcstatbot_errors_total{service,type}` is shared with the query service (defined in mcstatbot_common).
ERRORS = SHARED_ERRORS

BREAKER_STATE.set(0)
HISTORY_CHARTS = Counter(
    "mcstatbot_history_charts",
    "/history charts: sent, or failed to draw (timed out, out of memory, the worker died)",
    ["outcome"],
)
