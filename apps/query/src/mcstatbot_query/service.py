"""Answers status and player-list requests from the cache, or from one shared probe.

Cache keys (see docs/query-service.md), with `{hp}` the host and port (`[v6]:port` for IPv6):
- edition java: `mc:server:{hp}:status`, `mc:server:{hp}:players`, `mc:server:{hp}:error` (port 25565
  when none was given);
- edition bedrock: `mc:server:{hp}:bedrock:{status|players|error}` (port 19132 when none was given);
- edition auto: `mc:server:{host[:port]}:auto:{status|players|error}` (the port only when one was given:
  auto probes 25565 and 19132).
`:error` holds the offline ServerStatus for CACHE_TTL_OFFLINE seconds and answers both kinds.

Coalescing: concurrent requests for one key share one probe in this process (a shared task), and
replicas share one probe through a Redis lock `mc:lock:{base}:{kind}` (redis-py's Lock, LOCK_TTL,
renewed by its holder while it probes): a replica that does not get it polls the cache until the
holder's result appears, the lock goes (then it tries the lock again) or its own wait deadline passes
(then it probes by itself). A lock nobody renews is gone within LOCK_TTL.

A cache hit is cheap: each cached value is validated and rendered as the API's JSON once, then kept by
its bytes (`_DecodedValues`), so answering it again parses and serialises nothing; with the in-process
cache a hit is found without a task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from mcstatbot_common.addresses import BEDROCK_DEFAULT_PORT, JAVA_DEFAULT_PORT, format_host_port
from mcstatbot_common.models import Edition, PlayerList, ServerStatus
from opentelemetry import trace

from mcstatbot_query.cache import CacheUnavailableError, LockState, MemoryCache, open_envelope, pack
from mcstatbot_query.metrics import CACHE_REQUESTS, COALESCED_WAITS

if TYPE_CHECKING:
    from mcstatbot_common.addresses import ServerAddress
    from prometheus_client.metrics import Counter

    from mcstatbot_query.cache import Cache, ProbeLock
    from mcstatbot_query.probe import Prober
    from mcstatbot_query.settings import QuerySettings

log = logging.getLogger(__name__)
tracer = trace.get_tracer("mcstatbot.query")

Kind = Literal["status", "players"]
_WAIT_MARGIN = 1.0
"""A flight waits for another replica's answer MC_TIMEOUT plus this long at most, then probes itself."""


_CLOCK_SLACK = 1.0
"""Seconds a cached value may claim beyond the longest TTL (replicas' clocks differ a little)."""

_DECODED_MAX_BYTES = 16 * 1024 * 1024
"""Cached values kept decoded (and rendered) in memory, in bytes of their raw and rendered forms."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A status or player list, whether it came from the cache, and how many seconds it stays fresh."""

    body: ServerStatus | PlayerList
    hit: bool
    max_age: int
    payload: bytes
    """`body` as the JSON the API answers with."""


@dataclass(frozen=True, slots=True)
class _Decoded:
    body: ServerStatus | PlayerList
    payload: bytes
    expires: float
    """unix time"""


def render(body: ServerStatus | PlayerList) -> bytes:
    """The API's JSON of `body` (compact, UTF-8)."""
    return body.model_dump_json().encode()


class _DecodedValues:
    """Cache values already validated and rendered, by their raw bytes (least recently used go first).

    A value's bytes never change while it is cached, so equal bytes always mean the same answer; the
    seconds it has left are computed from its expiry on every use.
    """

    def __init__(self, max_bytes: int = _DECODED_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._items: OrderedDict[tuple[bytes, Kind, bool], _Decoded] = OrderedDict()

    def get(self, raw: bytes, kind: Kind, *, offline: bool) -> _Decoded | None:
        """The decoded value, or None when it is unreadable or written by an incompatible version."""
        key = (raw, kind, offline)
        decoded = self._items.get(key)
        if decoded is not None:
            self._items.move_to_end(key)
            return decoded
        opened = open_envelope(raw)
        if opened is None:
            return None
        data, expires = opened
        try:
            body = _from_cache(data, kind, offline=offline)
        except ValueError:
            return None
        decoded = _Decoded(body, render(body), expires)
        self._items[key] = decoded
        self.size += len(raw) + len(decoded.payload)
        while self.size > self.max_bytes and self._items:
            (old_raw, _, _), old = self._items.popitem(last=False)
            self.size -= len(old_raw) + len(old.payload)
        return decoded


def key_base(address: ServerAddress, edition: Edition) -> str:
    if edition is Edition.JAVA:
        return f"mc:server:{format_host_port(address.host, address.port or JAVA_DEFAULT_PORT)}"
    if edition is Edition.BEDROCK:
        return f"mc:server:{format_host_port(address.host, address.port or BEDROCK_DEFAULT_PORT)}:bedrock"
    return f"mc:server:{address}:auto"


class QueryService:
    def __init__(self, settings: QuerySettings, cache: Cache, prober: Prober) -> None:
        self.settings = settings
        self.cache = cache
        self.prober = prober
        self._inflight: dict[str, asyncio.Task[Answer]] = {}
        self._decoded = _DecodedValues()
        self._longest_ttl = max(
            settings.cache_ttl_status, settings.cache_ttl_players, settings.cache_ttl_offline
        )
        self._cache_requests: dict[tuple[Kind, bool], Counter] = {
            (kind, hit): CACHE_REQUESTS.labels(kind, "hit" if hit else "miss")
            for kind in ("status", "players")
            for hit in (True, False)
        }

    async def status(self, address: ServerAddress, edition: Edition) -> Answer:
        return await self._answer(address, edition, "status")

    async def players(self, address: ServerAddress, edition: Edition) -> Answer:
        return await self._answer(address, edition, "players")

    # -- the flow -----------------------------------------------------------------------------------

    async def _answer(self, address: ServerAddress, edition: Edition, kind: Kind) -> Answer:
        base = key_base(address, edition)
        with tracer.start_as_current_span(f"mc.{kind}") as span:
            if span.is_recording():
                span.set_attributes({"mc.edition": edition.value, "server.address": address.host})
            joined = False
            answer = self._peek(base, kind)
            if answer is None:
                flight_key = f"{base}:{kind}"
                task = self._inflight.get(flight_key)
                joined = task is not None
                if task is None:
                    # One flight per key in this process: one cache look-up, and on a miss one probe (or
                    # one wait for the replica that holds the cluster lock), shared by every request.
                    task = asyncio.create_task(self._flight(address, edition, base, kind))
                    self._inflight[flight_key] = task
                    task.add_done_callback(lambda _: self._inflight.pop(flight_key, None))
                answer = await asyncio.shield(task)  # a caller that goes away does not cancel the work
            self._cache_requests[kind, answer.hit].inc()
            if joined and not answer.hit:
                COALESCED_WAITS.labels("process").inc()
            if span.is_recording():
                span.set_attributes({"mc.cache_hit": answer.hit, "mc.outcome": _outcome(answer.body)})
            return answer

    def _peek(self, base: str, kind: Kind) -> Answer | None:
        """A hit in the in-process cache, found without awaiting anything; None otherwise (and for Redis)."""
        if not isinstance(self.cache, MemoryCache):
            return None
        return self._hit(self.cache.peek_many([f"{base}:{kind}", f"{base}:error"]), kind)

    async def _flight(self, address: ServerAddress, edition: Edition, base: str, kind: Kind) -> Answer:
        """One cache look-up and, on a miss, one probe for every replica (or a wait for the one probing).

        Every wait ends by `give_up` (MC_TIMEOUT plus a margin): a lock nobody answers under (a stray
        key, a holder gone quiet) costs that much at most, then this flight probes by itself.
        """
        cached = await self._lookup(base, kind)
        if cached is not None:
            return cached
        lock = self.cache.lock(f"mc:lock:{base}:{kind}")
        give_up = time.monotonic() + self.settings.mc_timeout + _WAIT_MARGIN
        waited = False
        while True:
            state = await lock.acquire()
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

    async def _lookup(self, base: str, kind: Kind) -> Answer | None:
        try:
            values = await self.cache.get_many([f"{base}:{kind}", f"{base}:error"])
        except CacheUnavailableError:
            return None
        return self._hit(values, kind)

    def _hit(self, values: list[bytes | None], kind: Kind) -> Answer | None:
        """The answer from the `[main, error]` cache values: the first that is readable and fresh."""
        now = time.time()
        for raw, offline in zip(values, (False, True), strict=True):
            if raw is None:
                continue
            # None: unreadable, or written by an incompatible version: treated as a miss.
            decoded = self._decoded.get(raw, kind, offline=offline)
            if decoded is None:
                continue
            left = decoded.expires - now
            if not 0 < left <= self._longest_ttl + _CLOCK_SLACK:
                continue  # expired, or an expiry no replica writes: a miss
            max_age = math.ceil(min(left, self._longest_ttl))
            return Answer(body=decoded.body, hit=True, max_age=max_age, payload=decoded.payload)
        return None

    async def _probe_and_store(
        self,
        address: ServerAddress,
        edition: Edition,
        base: str,
        kind: Kind,
    ) -> Answer:
        """Probe and store the result."""
        settings = self.settings
        status: ServerStatus
        body: ServerStatus | PlayerList
        if kind == "status":
            status = await self.prober.status(address, edition)
            body = status
        else:
            body, status = await self.prober.players(address, edition)
        items: list[tuple[str, bytes, float]] = []
        delete: list[str] = []
        if status.online:
            items.append(
                (
                    f"{base}:status",
                    pack(status.model_dump(mode="json"), settings.cache_ttl_status),
                    settings.cache_ttl_status,
                )
            )
            ttl = settings.cache_ttl_status
            if kind == "players":
                ttl = settings.cache_ttl_players
                items.append((f"{base}:players", pack(body.model_dump(mode="json"), ttl), ttl))
            delete.append(f"{base}:error")
        else:
            ttl = settings.cache_ttl_offline
            items.append((f"{base}:error", pack(status.model_dump(mode="json"), ttl), ttl))
        with contextlib.suppress(CacheUnavailableError):  # degraded mode: answer anyway
            await self.cache.write(items, delete)
        return Answer(body=body, hit=False, max_age=ttl, payload=render(body))


def _from_cache(data: dict[str, object], kind: Kind, *, offline: bool) -> ServerStatus | PlayerList:
    if kind == "status":
        return ServerStatus.model_validate({**data, "cached": True})
    if offline:
        status = ServerStatus.model_validate(data)
        return PlayerList(
            address=status.address,
            online=False,
            error=status.error,
            retrieved_at=status.retrieved_at,
            cached=True,
        )
    return PlayerList.model_validate({**data, "cached": True})


def _outcome(body: ServerStatus | PlayerList) -> str:
    if body.online:
        return "online"
    return body.error.code.value if body.error is not None else "offline"
