"""The query service's Prometheus metrics (default registry; a dashboard is built on these names).

prometheus_client adds `_total` to counter names: `mcstatbot_probes` is exported as
`mcstatbot_probes_total`, and so on. No label carries an address or anything else unbounded.
"""

from __future__ import annotations

from mcstatbot_common.observability import ERRORS as SHARED_ERRORS
from prometheus_client import Counter, Gauge, Histogram

PROBES = Counter(
    "mcstatbot_probes",
    "Probes of Minecraft servers, by edition (java|bedrock) and outcome (online or an error code)",
    ["edition", "outcome"],
)
PROBE_DURATION = Histogram(
    "mcstatbot_probe_duration_seconds",
    "Time one probe of one edition took, whatever its outcome",
    ["edition"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13),
)
CACHE_REQUESTS = Counter(
    "mcstatbot_cache_requests",
    "Cache look-ups by kind (status|players) and result (hit|miss; a stale answer is a hit)",
    ["kind", "result"],
)
COALESCED_WAITS = Counter(
    "mcstatbot_coalesced_waits",
    "Requests that waited for another request's probe instead of probing (this process or another replica)",
    ["scope"],
)
BACKGROUND_REFRESHES = Counter(
    "mcstatbot_background_refreshes",
    "Stale-while-revalidate refreshes by outcome: probed (this replica refreshed the entry), elsewhere "
    "(another replica holds the lock), fresh (already refreshed), skipped (too many at once), failed",
    ["outcome"],
)
CACHE_BACKEND_UP = Gauge("mcstatbot_cache_backend_up", "1 when the cache backend answers, 0 in degraded mode")
CACHE_BACKEND_ERRORS = Counter("mcstatbot_cache_backend_errors", "Failed calls to the cache backend (Redis)")
# `mcstatbot_errors_total{service,type}` is shared with the bot: one definition, in mcstatbot_common.
ERRORS = SHARED_ERRORS
