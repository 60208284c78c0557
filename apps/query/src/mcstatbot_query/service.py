"""Answers status and player-list requests from the cache, or from one shared probe.

Cache keys (see docs/query-service.md), with `{hp}` the host and port (`[v6]:port` for IPv6). Every key of
one server starts with the same hash tag (the part in braces), so on a Redis Cluster they share one slot:
- edition java: `{mc:{hp}:java}:status`, `...:players`, `...:error` (port 25565 when none was given);
- edition bedrock: `{mc:{hp}:bedrock}:{status|players|error}` (port 19132 when none was given);
- edition auto: `{mc:{host[:port]}:auto}:{status|players|error}` (the port only when one was given:
  auto probes 25565 and 19132);
- the probe locks: `{base}:lock:{status|players}`.
`:error` holds the offline ServerStatus for CACHE_TTL_OFFLINE seconds and answers both kinds. (Before the
hash tags the keys were `mc:server:...` and `mc:lock:mc:server:...`: a replica of the older layout and one
of this one simply miss each other's entries during a rolling upgrade.)

Coalescing, in two steps:
1. In this process, one flight per key (`{base}:{kind}`): a shared task that every concurrent request for
   the key awaits (a caller that goes away does not cancel it).
2. Across replicas, the flight's cache look-up, then on a miss the key's Redis lock
   `{base}:lock:{kind}` (cache.ProbeLock): ACQUIRED, it probes and stores for everybody; HELD_ELSEWHERE,
   it polls the cache for the holder's answer (trying the lock again when it goes without one);
   UNSHARED (no Redis), it probes alone. Every wait ends MC_TIMEOUT + _WAIT_MARGIN after the flight
   began, and the flight then probes by itself.

Stale-while-revalidate: entries stay in the cache CACHE_STALE_SECONDS beyond their TTL. A flight that
finds only an expired one (within that window) answers it at once, marked `stale`, and starts one
background refresh of the key (one per key in this process, at most `max_refreshes` at once; across
replicas the key's lock: a replica that finds it held leaves the refresh to its holder).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from mcstatbot_common.addresses import BEDROCK_DEFAULT_PORT, JAVA_DEFAULT_PORT, format_host_port
from mcstatbot_common.models import DebugCache, DebugInfo, Edition, PlayerList, ServerStatus
from opentelemetry import trace
from pydantic import ValidationError

from mcstatbot_query.cache import CacheUnavailableError, LockState, open_envelope, pack
from mcstatbot_query.debug import TRACE, ProbeTrace
from mcstatbot_query.errors import ForbiddenAddressError
from mcstatbot_query.metrics import BACKGROUND_REFRESHES, CACHE_REQUESTS, COALESCED_WAITS

if TYPE_CHECKING:
    from mcstatbot_common.addresses import ServerAddress

    from mcstatbot_query.cache import Cache, ProbeLock
    from mcstatbot_query.probe import Prober
    from mcstatbot_query.settings import QuerySettings

tracer = trace.get_tracer("mcstatbot.query")
log = logging.getLogger(__name__)

Kind = Literal["status", "players"]
_WAIT_MARGIN = 1.0
"""A flight waits for another replica's answer MC_TIMEOUT plus this long at most, then probes itself."""
_CLOCK_SLACK = 1.0
"""Seconds a cached value may claim beyond the longest TTL (replicas' clocks differ a little)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A status or player list, whether it came from the cache, and how many seconds it stays fresh."""

    body: ServerStatus | PlayerList
    hit: bool
    max_age: int
    stale_for: int = 0
    """Seconds it may still be answered stale once `max_age` is over (`stale-while-revalidate`)."""
    tier: Literal["memory", "redis", "probe", "stale"] = "probe"
    key: str = ""
    """The cache key that answered, or that the probe was stored under."""
    ttl_left: float = 0.0

    def with_debug(self, trace: ProbeTrace, *, shared: bool) -> Answer:
        """This answer with the `debug` block in its body (a copy: the cached body never has one)."""
        info = DebugInfo(
            cache=DebugCache(
                tier=self.tier,
                key=self.key,
                ttl_left=round(self.ttl_left, 3),
                lock=trace.lock,
                shared=shared,
            ),
            steps=list(trace.steps),
        )
        return replace(self, body=self.body.model_copy(update={"debug": info}))

    @property
    def cache_control(self) -> str:
        """The `Cache-Control` header (RFC 5861's `stale-while-revalidate` when a stale window is set)."""
        if self.stale_for > 0:
            return f"max-age={self.max_age}, stale-while-revalidate={self.stale_for}"
        return f"max-age={self.max_age}"

    @property
    def outcome(self) -> str:
        """`online`, or the error code of the offline answer."""
        if self.body.online:
            return "online"
        return self.body.error.code.value if self.body.error is not None else "offline"


def key_base(address: ServerAddress, edition: Edition) -> str:
    """`{mc:<host>:<port>:<edition>}`: the hash tag every key of the server starts with (one slot)."""
    if edition is Edition.JAVA:
        return f"{{mc:{format_host_port(address.host, address.port or JAVA_DEFAULT_PORT)}:java}}"
    if edition is Edition.BEDROCK:
        return f"{{mc:{format_host_port(address.host, address.port or BEDROCK_DEFAULT_PORT)}:bedrock}}"
    return f"{{mc:{address}:auto}}"


def lock_key(base: str, kind: Kind) -> str:
    """The probe lock of `{base}:{kind}`, in the same slot as the values."""
    return f"{base}:lock:{kind}"


class QueryService:
    def __init__(self, settings: QuerySettings, cache: Cache, prober: Prober) -> None:
        self.settings = settings
        self.cache = cache
        self.prober = prober
        self._flights: dict[str, tuple[asyncio.Task[Answer], ProbeTrace]] = {}
        self._refreshes: dict[str, asyncio.Task[None]] = {}
        self.max_refreshes = settings.mc_max_concurrent_probes
        """Background refreshes at once in this process; a stale answer beyond that starts none."""
        self._longest_ttl = max(
            settings.cache_ttl_status, settings.cache_ttl_players, settings.cache_ttl_offline
        )

    async def status(self, address: ServerAddress, edition: Edition) -> Answer:
        return await self.answer(address, edition, "status")

    async def players(self, address: ServerAddress, edition: Edition) -> Answer:
        return await self.answer(address, edition, "players")

    async def answer(
        self, address: ServerAddress, edition: Edition, kind: Kind, *, debug: bool = False
    ) -> Answer:
        """The answer for `address`, shared with every concurrent request for the same key.

        With `debug`, its body carries the `debug` block of the flight it came from (the same look-up
        and probe as without: a debug request changes nothing for others).
        """
        base = key_base(address, edition)
        with tracer.start_as_current_span(f"mc.{kind}") as span:
            if span.is_recording():
                span.set_attributes({"mc.edition": edition.value, "server.address": address.host})
            key = f"{base}:{kind}"
            entry = self._flights.get(key)
            joined = entry is not None
            if entry is None:
                trace = ProbeTrace()
                task = asyncio.create_task(self._flight(address, edition, base, kind, trace))
                entry = self._flights[key] = (task, trace)
                task.add_done_callback(lambda _: self._flights.pop(key, None))
            flight, trace = entry
            answer = await asyncio.shield(flight)  # a caller that goes away does not cancel the work
            CACHE_REQUESTS.labels(kind, "hit" if answer.hit else "miss").inc()
            if joined and not answer.hit:
                COALESCED_WAITS.labels("process").inc()
            if span.is_recording():
                span.set_attributes({"mc.cache_hit": answer.hit, "mc.outcome": answer.outcome})
            return answer.with_debug(trace, shared=joined) if debug else answer

    async def _flight(
        self, address: ServerAddress, edition: Edition, base: str, kind: Kind, trace: ProbeTrace
    ) -> Answer:
        """One cache look-up and, on a miss, one probe for every replica (or a wait for the one probing)."""
        TRACE.set(trace)  # this task's own context: the probe records its steps here
        cached = await self._lookup(base, kind, stale_window=self.settings.cache_stale_seconds)
        if cached is not None:
            if cached.body.stale:
                self._refresh_in_background(address, edition, base, kind)
            return cached
        lock = self.cache.lock(lock_key(base, kind))
        give_up = time.monotonic() + self.settings.mc_timeout + _WAIT_MARGIN
        waited = False
        while True:
            state = await lock.acquire()
            trace.lock = state.value
            if state is LockState.UNSHARED:
                return await self._probe_and_store(address, edition, base, kind)
            if state is LockState.ACQUIRED:
                async with lock.holding():
                    # Another replica may have stored its answer between our look-up and our lock.
                    fresh = await self._lookup(base, kind)
                    return fresh or await self._probe_and_store(address, edition, base, kind)
            if not waited:
                COALESCED_WAITS.labels("cluster").inc()
                waited = True
            answer = await self._wait_for_other(base, kind, lock, give_up)
            if answer is not None:
                return answer
            if time.monotonic() >= give_up:
                return await self._probe_and_store(address, edition, base, kind)

    def _refresh_in_background(self, address: ServerAddress, edition: Edition, base: str, kind: Kind) -> None:
        """Start the one background refresh of `{base}:{kind}` unless it runs already (or too many do)."""
        key = f"{base}:{kind}"
        if key in self._refreshes:
            return
        if len(self._refreshes) >= self.max_refreshes:
            BACKGROUND_REFRESHES.labels("skipped").inc()
            return
        task = asyncio.create_task(self._guarded_refresh(address, edition, base, kind), name=f"refresh {key}")
        self._refreshes[key] = task  # the reference keeps the task alive until it is done
        task.add_done_callback(lambda _: self._refreshes.pop(key, None))

    async def _guarded_refresh(self, address: ServerAddress, edition: Edition, base: str, kind: Kind) -> None:
        """`_refresh`, bounded in time; it never raises (a failure is logged and counted)."""
        TRACE.set(None)  # not part of the flight that started it
        try:
            async with asyncio.timeout(self.settings.mc_timeout + 2 * _WAIT_MARGIN):
                outcome = await self._refresh(address, edition, base, kind)
        except ForbiddenAddressError:
            outcome = "failed"  # the name resolves to a refused address now: its entry simply runs out
        except Exception:  # a background task must never raise into the event loop
            log.warning("background refresh of a stale entry failed", exc_info=True)
            outcome = "failed"
        BACKGROUND_REFRESHES.labels(outcome).inc()

    async def _refresh(self, address: ServerAddress, edition: Edition, base: str, kind: Kind) -> str:
        """Probe and store `{base}:{kind}` for everybody, unless another replica does it already."""
        lock = self.cache.lock(lock_key(base, kind))
        state = await lock.acquire()
        if state is LockState.HELD_ELSEWHERE:
            return "elsewhere"
        if state is LockState.ACQUIRED:
            async with lock.holding():
                if await self._lookup(base, kind) is not None:
                    return "fresh"
                await self._probe_and_store(address, edition, base, kind)
                return "probed"
        await self._probe_and_store(address, edition, base, kind)
        return "probed"

    async def close(self) -> None:
        """Cancel the background refreshes still running (at shutdown)."""
        tasks = list(self._refreshes.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _wait_for_other(self, base: str, kind: Kind, lock: ProbeLock, give_up: float) -> Answer | None:
        """Poll the cache while another replica holds the lock, until `give_up` at the latest.

        None when the lock went without a result (try it again) or the time is up (probe).
        """
        while time.monotonic() < give_up:
            await asyncio.sleep(self.settings.lock_poll_interval)
            answer = await self._lookup(base, kind)
            if answer is not None:
                return answer
            if not await lock.held_elsewhere():
                # Released without a result in the cache (it may have just been written: look once more).
                return await self._lookup(base, kind)
        return None

    async def _lookup(self, base: str, kind: Kind, stale_window: int = 0) -> Answer | None:
        """The first readable, fresh answer of `{base}:{kind}` and `{base}:error`; None: a miss.

        With a `stale_window`, an entry expired less than that many seconds ago answers (marked stale)
        when no fresh one does; of two stale ones, the one retrieved last.
        """
        try:
            values = await self.cache.get_many([f"{base}:{kind}", f"{base}:error"])
        except CacheUnavailableError:
            return None
        now = time.time()
        stale: tuple[ServerStatus | PlayerList, float, str] | None = None
        for raw, offline in zip(values, (False, True), strict=True):
            opened = None if raw is None else open_envelope(raw)
            if opened is None:
                continue
            data, expires = opened
            left = expires - now
            if not -stale_window < left <= self._longest_ttl + _CLOCK_SLACK:
                continue  # expired (beyond the stale window), or an expiry no replica writes
            try:
                body = _from_cache(data, kind, offline=offline, now=now, stale=left <= 0)
            except ValidationError:
                continue  # written by an incompatible version
            key = f"{base}:error" if offline else f"{base}:{kind}"
            if left > 0:
                return Answer(
                    body=body,
                    hit=True,
                    max_age=math.ceil(min(left, self._longest_ttl)),
                    stale_for=self.settings.cache_stale_seconds,
                    tier="redis" if self.cache.kind == "redis" else "memory",
                    key=key,
                    ttl_left=left,
                )
            if stale is None or body.retrieved_at > stale[0].retrieved_at:
                stale = (body, left, key)
        if stale is None:
            return None
        body, left, key = stale
        return Answer(
            body=body,
            hit=True,
            max_age=0,
            stale_for=max(math.floor(stale_window + left), 1),
            tier="stale",
            key=key,
        )

    async def _probe_and_store(
        self, address: ServerAddress, edition: Edition, base: str, kind: Kind
    ) -> Answer:
        settings = self.settings
        body: ServerStatus | PlayerList
        if kind == "status":
            status = body = await self.prober.status(address, edition)
        else:
            body, status = await self.prober.players(address, edition)
        stale = settings.cache_stale_seconds
        items: list[tuple[str, bytes, float]] = []  # kept `stale` seconds beyond their TTL
        delete: list[str] = []
        if status.online:
            ttl = settings.cache_ttl_status
            items.append((f"{base}:status", pack(status.model_dump(mode="json"), ttl), ttl + stale))
            if kind == "players":
                ttl = settings.cache_ttl_players
                items.append((f"{base}:players", pack(body.model_dump(mode="json"), ttl), ttl + stale))
            delete.append(f"{base}:error")
        else:
            ttl = settings.cache_ttl_offline
            items.append((f"{base}:error", pack(status.model_dump(mode="json"), ttl), ttl + stale))
        with contextlib.suppress(CacheUnavailableError):  # degraded mode: answer anyway
            await self.cache.write(items, delete)
        key = f"{base}:{kind}" if status.online else f"{base}:error"
        return Answer(body=body, hit=False, max_age=ttl, stale_for=stale, key=key, ttl_left=ttl)


def _from_cache(
    data: dict[str, object], kind: Kind, *, offline: bool, now: float, stale: bool
) -> ServerStatus | PlayerList:
    marks = {"cached": True, "stale": stale}
    if kind == "status":
        status = ServerStatus.model_validate({**data, **marks})
        return status.model_copy(update={"age_seconds": _age(status.retrieved_at.timestamp(), now)})
    if offline:
        status = ServerStatus.model_validate(data)
        return PlayerList(
            address=status.address,
            online=False,
            error=status.error,
            retrieved_at=status.retrieved_at,
            age_seconds=_age(status.retrieved_at.timestamp(), now),
            **marks,
        )
    players = PlayerList.model_validate({**data, **marks})
    return players.model_copy(update={"age_seconds": _age(players.retrieved_at.timestamp(), now)})


def _age(retrieved: float, now: float) -> int:
    return max(math.floor(now - retrieved), 0)
