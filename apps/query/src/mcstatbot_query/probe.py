"""Probing Minecraft servers with mcstatus's async protocol clients, within one deadline per probe.

- Java: Server List Ping over a connection to a checked IP, the handshake carrying the typed host
  name; latency from the status exchange; the legacy (pre-1.7) ping when the modern one gets a
  protocol error; the Query protocol (GameSpy4, UDP) for the full player list.
- Bedrock: the RakNet unconnected ping.
- auto: Java and Bedrock side by side; the first online answer wins.
A Java answer that matches a placeholder rule (placeholders.py: a host or proxy answering for a server
that is not running) is offline with the error code `placeholder`, its text, version and MOTD kept. An
online Java answer says what the server runs (software.py): software, mods, and with Query the plugins.
Every failure becomes a ProbeFailedError with one ErrorCode; ForbiddenAddressError passes through.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from mcstatbot_common.addresses import (
    BEDROCK_DEFAULT_PORT,
    JAVA_DEFAULT_PORT,
    ServerAddress,
    format_host_port,
)
from mcstatbot_common.models import (
    MAX_ITEM_NAME,
    MAX_ITEM_VERSION,
    MAX_ITEMS,
    MAX_PLACEHOLDER_TEXT,
    BedrockInfo,
    Edition,
    ErrorCode,
    NamedVersion,
    PlaceholderInfo,
    PlayerCount,
    PlayerEntry,
    PlayerList,
    Players,
    ServerStatus,
    SoftwareInfo,
    SrvRecord,
    Version,
)
from opentelemetry import trace

from mcstatbot_query.connection import BoundedTCPConnection, UDPConnection
from mcstatbot_query.debug import traced
from mcstatbot_query.errors import ForbiddenAddressError, ProbeFailedError, classify
from mcstatbot_query.mcstatus_protocol import (
    Address,
    AsyncJavaClient,
    AsyncLegacyClient,
    AsyncQueryClient,
    BedrockClient,
)
from mcstatbot_query.metrics import PROBE_DURATION, PROBES
from mcstatbot_query.motd import parse_motd, render_motd
from mcstatbot_query.placeholders import StatusFields
from mcstatbot_query.placeholders import classify as classify_placeholder
from mcstatbot_query.software import ServerSoftware, detect_from

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from contextlib import AbstractContextManager

    from mcstatus.responses import (
        BedrockStatusResponse,
        JavaStatusResponse,
        LegacyStatusResponse,
        QueryResponse,
    )

    from mcstatbot_query.mcstatus_protocol import TCPAsyncSocketConnection, UDPAsyncSocketConnection
    from mcstatbot_query.resolver import IPAddress, Resolver
    from mcstatbot_query.settings import QuerySettings
    from mcstatbot_query.software import Mod, Plugin

tracer = trace.get_tracer("mcstatbot.query")
T = TypeVar("T")

_HANDSHAKE_PROTOCOL = 47
"""Protocol version sent in the handshake (what mcstatus sends; servers answer status for any)."""
_MAX_PLAYER_NAMES = 1000
_LEGACY_BUDGET = 1.5
"""Seconds at most for the legacy-ping fallback (hostile servers must not turn it into a timeout)."""
_QUERY_MARGIN = 0.1
"""The Query exchange ends this long before the probe's deadline, so a status in hand is never lost."""


class Deadline:
    """The time left of one probe's budget."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return max(self.end - time.monotonic(), 0.001)


@dataclass(frozen=True, slots=True)
class JavaTarget:
    """Where a Java probe connects: checked IPs and the port, plus the SRV record followed (if any)."""

    ips: list[IPAddress]
    port: int
    srv: SrvRecord | None


@dataclass(frozen=True, slots=True)
class JavaResult:
    status: ServerStatus
    sample_names: list[str] | None
    response: JavaStatusResponse | None = None
    """The modern status answer it was made from (what the server runs is read from it with Query's)."""


class Prober:
    """Probes servers; one instance per app (created in the lifespan), safe for concurrent use."""

    def __init__(self, settings: QuerySettings, resolver: Resolver) -> None:
        self.settings = settings
        self.resolver = resolver
        self._slots = asyncio.Semaphore(settings.mc_max_concurrent_probes)

    # -- public -------------------------------------------------------------------------------------

    async def status(self, address: ServerAddress, edition: Edition) -> ServerStatus:
        """A ServerStatus, online or with an error; raises only ForbiddenAddressError."""
        if edition is Edition.JAVA:
            return (await self._java(address, with_query=False))[0].status
        if edition is Edition.BEDROCK:
            return await self._bedrock(address)
        return await self._auto(
            address,
            java=lambda: self._java_status_only(address),
            bedrock=lambda: self._bedrock(address),
            online=lambda s: s.online,
            offline_from_java=lambda s: s.model_copy(update={"edition": Edition.AUTO}),
        )

    async def players(self, address: ServerAddress, edition: Edition) -> tuple[PlayerList, ServerStatus]:
        """The player list (Query protocol, else the status sample) and the status it came with."""
        if edition is Edition.JAVA:
            result, query = await self._java(address, with_query=True)
            return _java_players(result, query), result.status
        if edition is Edition.BEDROCK:
            status = await self._bedrock(address)
            return _bedrock_players(status), status

        async def java() -> tuple[PlayerList, ServerStatus]:
            result, query = await self._java(address, with_query=True)
            return _java_players(result, query), result.status

        async def bedrock() -> tuple[PlayerList, ServerStatus]:
            status = await self._bedrock(address)
            return _bedrock_players(status), status

        return await self._auto(
            address,
            java=java,
            bedrock=bedrock,
            online=lambda r: r[1].online,
            offline_from_java=lambda r: (r[0], r[1].model_copy(update={"edition": Edition.AUTO})),
        )

    # -- auto ---------------------------------------------------------------------------------------

    async def _java_status_only(self, address: ServerAddress) -> ServerStatus:
        return (await self._java(address, with_query=False))[0].status

    async def _auto(
        self,
        address: ServerAddress,
        *,
        java: Callable[[], Awaitable[T]],
        bedrock: Callable[[], Awaitable[T]],
        online: Callable[[T], bool],
        offline_from_java: Callable[[T], T],
    ) -> T:
        del address
        java_task = asyncio.ensure_future(java())
        bedrock_task = asyncio.ensure_future(bedrock())
        pending: set[asyncio.Future[T]] = {java_task, bedrock_task}
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    result = task.result()  # ForbiddenAddressError propagates
                    if online(result):
                        return result
            return offline_from_java(java_task.result())
        finally:
            for task in (java_task, bedrock_task):
                if not task.done():
                    task.cancel()
            await asyncio.gather(java_task, bedrock_task, return_exceptions=True)

    # -- Java ---------------------------------------------------------------------------------------

    async def _java_target(self, address: ServerAddress, deadline: Deadline) -> JavaTarget:
        connect_host, port, srv = address.host, address.port, None
        if port is None:
            if self.settings.dns_srv:
                with traced("srv", f"_minecraft._tcp.{address.host}") as note:
                    found = await self.resolver.srv(address.host, deadline.left())
                    note.outcome = "ok" if found is not None else "none"
                    note.detail = None if found is None else format_host_port(found.target, found.port)
                if found is not None:
                    connect_host, port = found.target, found.port
                    srv = SrvRecord(target=found.target, port=found.port)
            if port is None:
                port = JAVA_DEFAULT_PORT
        ips = await self._resolve(connect_host, deadline)
        return JavaTarget(ips=ips, port=port, srv=srv)

    async def _resolve(self, host: str, deadline: Deadline) -> list[IPAddress]:
        with traced("resolve", host) as note:
            ips = await self.resolver.resolve(host, deadline.left())
            note.detail = ", ".join(str(ip) for ip in ips)
        return ips

    async def _java(
        self, address: ServerAddress, *, with_query: bool
    ) -> tuple[JavaResult, QueryResponse | None]:
        """Status (and, with `with_query`, the Query answer: players, plugins) of a Java server."""
        asked_port = address.port or JAVA_DEFAULT_PORT
        deadline = Deadline(self.settings.mc_timeout)
        started = time.perf_counter()
        with _probe_span(Edition.JAVA, address.host, asked_port) as span:
            query_task: asyncio.Task[QueryResponse | None] | None = None
            try:
                async with asyncio.timeout(self.settings.mc_timeout), self._slots:
                    target = await self._java_target(address, deadline)
                    if with_query:
                        query_task = asyncio.create_task(self._query(target, deadline))
                    status = await self._java_status(address, target, deadline)
                    query = await query_task if query_task is not None else None
            except ForbiddenAddressError:
                span.set_attribute("mc.outcome", "forbidden")
                raise
            except Exception as exc:  # noqa: BLE001 - every failure is mapped to one error code
                failure = classify(exc)
                if query_task is not None and not query_task.done():
                    query_task.cancel()
                    with contextlib.suppress(BaseException):
                        await query_task
                _probe_done(span, Edition.JAVA, failure.code.value, started)
                offline = _offline(address.host, asked_port, Edition.JAVA, failure)
                return JavaResult(offline, None), None
            if status.status.error is not None:  # a placeholder
                _probe_done(span, Edition.JAVA, status.status.error.code.value, started)
                return status, None
            if query is not None and status.response is not None:
                status = JavaResult(
                    status.status.model_copy(update=_software_fields(status.response, query)),
                    status.sample_names,
                    status.response,
                )
            _probe_done(span, Edition.JAVA, "online", started)
            return status, query

    async def _java_status(
        self, address: ServerAddress, target: JavaTarget, deadline: Deadline
    ) -> JavaResult:
        """Modern ping on the first IP that accepts a connection; the legacy ping on a protocol error."""
        asked_port = address.port or JAVA_DEFAULT_PORT
        last_error: ProbeFailedError | None = None
        for ip in target.ips:
            try:
                with traced("java_status", format_host_port(str(ip), target.port)):
                    response = await self._modern_ping(address.host, ip, target.port)
            except ProbeFailedError as exc:
                failure = exc
            except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
                failure = classify(exc)
            else:
                return _java_status_model(address, asked_port, target, response)
            if failure.code is ErrorCode.PROTOCOL:
                # A pre-1.7 server does not understand the modern handshake: try the legacy ping, briefly.
                try:
                    with traced("java_legacy", format_host_port(str(ip), target.port)):
                        async with asyncio.timeout(min(_LEGACY_BUDGET, deadline.left() * 0.9)):
                            legacy = await self._legacy_ping(ip, target.port)
                except (
                    ProbeFailedError,
                    OSError,
                    ValueError,
                    TypeError,
                    KeyError,
                    IndexError,
                    UnicodeError,
                    TimeoutError,
                ):
                    raise failure from None
                return _legacy_status_model(address, asked_port, target, legacy)
            if failure.code not in {ErrorCode.REFUSED, ErrorCode.UNREACHABLE}:
                raise failure
            last_error = failure
        raise last_error or ProbeFailedError(ErrorCode.DNS)

    async def _modern_ping(self, handshake_host: str, ip: IPAddress, port: int) -> JavaStatusResponse:
        connection = BoundedTCPConnection(ip, port, self.settings.mc_max_status_bytes)
        try:
            await connection.connect()
            client = AsyncJavaClient(
                cast("TCPAsyncSocketConnection", connection),
                address=Address(handshake_host, port),
                version=_HANDSHAKE_PROTOCOL,
            )
            await client.handshake()
            return await client.read_status()
        finally:
            await connection.close()

    async def _legacy_ping(self, ip: IPAddress, port: int) -> LegacyStatusResponse:
        connection = BoundedTCPConnection(ip, port, self.settings.mc_max_status_bytes)
        try:
            await connection.connect()
            return await AsyncLegacyClient(connection).read_status()
        finally:
            await connection.close()

    async def _query(self, target: JavaTarget, deadline: Deadline) -> QueryResponse | None:
        """The Query answer (full player list, plugins), or None when the server does not answer it."""
        budget = min(self.settings.mc_query_timeout, deadline.left() - _QUERY_MARGIN)
        end = time.monotonic() + budget
        tries = self.settings.mc_tries
        for attempt in range(tries):
            left = end - time.monotonic()
            if left <= 0:
                return None
            per_try = left / (tries - attempt)
            try:
                with traced("query", format_host_port(str(target.ips[0]), target.port)):
                    async with asyncio.timeout(per_try):
                        response = await self._query_once(target.ips[0], target.port)
            except (TimeoutError, OSError, ValueError, TypeError, KeyError, IndexError, AttributeError):
                continue
            return response
        return None

    async def _query_once(self, ip: IPAddress, port: int) -> QueryResponse:
        connection = await UDPConnection(ip, port).connect()
        try:
            client = AsyncQueryClient(cast("UDPAsyncSocketConnection", connection))
            await client.handshake()
            return await client.read_query()
        finally:
            await connection.close()

    # -- Bedrock ------------------------------------------------------------------------------------

    async def _bedrock(self, address: ServerAddress) -> ServerStatus:
        port = address.port or BEDROCK_DEFAULT_PORT
        deadline = Deadline(self.settings.mc_timeout)
        started = time.perf_counter()
        with _probe_span(Edition.BEDROCK, address.host, port) as span:
            try:
                async with asyncio.timeout(self.settings.mc_timeout), self._slots:
                    ips = await self._resolve(address.host, deadline)
                    status = await self._bedrock_ping(address, ips[0], port, deadline)
            except ForbiddenAddressError:
                span.set_attribute("mc.outcome", "forbidden")
                raise
            except Exception as exc:  # noqa: BLE001 - every failure is mapped to one error code
                failure = classify(exc)
                _probe_done(span, Edition.BEDROCK, failure.code.value, started)
                return _offline(address.host, port, Edition.BEDROCK, failure)
            _probe_done(span, Edition.BEDROCK, "online", started)
            return status

    async def _bedrock_ping_once(self, ip: IPAddress, port: int) -> BedrockStatusResponse:
        """One RakNet unconnected ping (mcstatus builds the request and parses the answer)."""
        connection = await UDPConnection(ip, port).connect()
        try:
            started = time.perf_counter()
            await connection.write(BedrockClient.request_status_data)
            data = await connection.read(UDPConnection.remaining)
            latency_ms = (time.perf_counter() - started) * 1000
        finally:
            await connection.close()
        return BedrockClient.parse_response(data, latency_ms)

    async def _bedrock_ping(
        self, address: ServerAddress, ip: IPAddress, port: int, deadline: Deadline
    ) -> ServerStatus:
        tries = self.settings.mc_tries
        last: BaseException | None = None
        for attempt in range(tries):
            per_try = deadline.left() / (tries - attempt)
            try:
                with traced("bedrock_ping", format_host_port(str(ip), port)):
                    async with asyncio.timeout(per_try):
                        response = await self._bedrock_ping_once(ip, port)
            except TimeoutError as exc:
                last = exc
                continue
            except ConnectionRefusedError as exc:
                raise ProbeFailedError(ErrorCode.REFUSED, "nothing answers on that UDP port") from exc
            return ServerStatus(
                address=format_host_port(address.host, port),
                host=address.host,
                port=port,
                edition=Edition.BEDROCK,
                online=True,
                version=Version(
                    name=str(response.version.name), protocol=_protocol_version(response.version.protocol)
                ),
                motd=render_motd(response.motd, str(response.motd.raw)),
                players=_players(response.players.online, response.players.max),
                latency_ms=round(float(response.latency), 3),
                bedrock=BedrockInfo(map_name=response.map_name, gamemode=response.gamemode),
            )
        raise last or TimeoutError


def _probe_span(edition: Edition, host: str, port: int) -> AbstractContextManager[trace.Span]:
    """The `mc.probe` span of one probe (the address only as attributes, never in the name)."""
    return tracer.start_as_current_span(
        "mc.probe",
        attributes={
            "mc.edition": edition.value,
            "mc.cache_hit": False,
            "server.address": host,
            "server.port": port,
        },
    )


def _probe_done(span: trace.Span, edition: Edition, outcome: str, started: float) -> None:
    """Count a finished probe (`online` or its error code), time it and put the outcome on its span."""
    PROBES.labels(edition.value, outcome).inc()
    PROBE_DURATION.labels(edition.value).observe(time.perf_counter() - started)
    span.set_attribute("mc.outcome", outcome)


def _offline(host: str, port: int, edition: Edition, failure: ProbeFailedError) -> ServerStatus:
    return ServerStatus(
        address=format_host_port(host, port),
        host=host,
        port=port,
        edition=edition,
        online=False,
        error=failure.to_model(),
    )


_NUMBER_RANGE = range(-(2**31), 2**31)
"""What the server's numbers (protocol, player counts) may be: Minecraft's own 32-bit integers."""


def _server_int(value: Any, field: str) -> int:
    """A number from the server's answer; out of range (or not a number): a `protocol` error."""
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ProbeFailedError(ErrorCode.PROTOCOL, f"the server's {field} is not a number") from exc
    if number not in _NUMBER_RANGE:
        raise ProbeFailedError(ErrorCode.PROTOCOL, f"the server's {field} is out of range")
    return number


def _protocol_version(value: Any) -> int | None:
    """The version's protocol number: None when it is not a number, a `protocol` error out of range."""
    try:
        int(value)
    except (TypeError, ValueError):
        return None
    return _server_int(value, "protocol version")


def _players(online: Any, maximum: Any, sample: list[PlayerEntry] | None = None) -> Players:
    return Players(
        online=_server_int(online, "player count"),
        max=_server_int(maximum, "player limit"),
        sample=sample or [],
    )


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _items(items: tuple[Mod, ...] | tuple[Plugin, ...]) -> list[NamedVersion]:
    """At most MAX_ITEMS mods or plugins, names and versions cut to their bounds."""
    return [
        NamedVersion(
            name=_cut(item.name, MAX_ITEM_NAME),
            version=None if item.version is None else _cut(item.version, MAX_ITEM_VERSION),
        )
        for item in items[:MAX_ITEMS]
    ]


def _detect(response: JavaStatusResponse, query: QueryResponse | None) -> ServerSoftware:
    try:
        return detect_from(response, query)
    except (ValueError, TypeError, KeyError, AttributeError):  # odd fields: the answer says nothing
        return ServerSoftware(software=None)


def _software_fields(response: JavaStatusResponse, query: QueryResponse | None) -> dict[str, Any]:
    """The `software`, `mods` and `plugins` fields of an online Java status, bounded."""
    found = _detect(response, query)
    software = None
    if found.software is not None:
        software = SoftwareInfo(
            name=found.software.value,
            version=None if found.version is None else _cut(found.version, MAX_ITEM_VERSION),
            minecraft_version=None
            if found.minecraft_version is None
            else _cut(found.minecraft_version, MAX_ITEM_VERSION),
        )
    return {
        "software": software,
        "mods": _items(found.mods),
        "mods_truncated": found.mods_truncated or len(found.mods) > MAX_ITEMS,
        "plugins": _items(found.plugins),
        "plugins_truncated": len(found.plugins) > MAX_ITEMS,
    }


def _placeholder_status(
    address: ServerAddress, asked_port: int, target: JavaTarget, response: JavaStatusResponse
) -> ServerStatus | None:
    """The offline status of a placeholder answer (version, MOTD and text kept), or None for a real one."""
    found = classify_placeholder(StatusFields.from_java_response(response))
    if found is None:
        return None
    return ServerStatus(
        address=format_host_port(address.host, asked_port),
        host=address.host,
        port=asked_port,
        edition=Edition.JAVA,
        online=False,
        version=Version(
            name=str(response.version.name), protocol=_protocol_version(response.version.protocol)
        ),
        motd=parse_motd(dict(response.raw).get("description", ""), bedrock=False),
        srv=target.srv,
        error=ProbeFailedError(ErrorCode.PLACEHOLDER).to_model(),
        placeholder=PlaceholderInfo(
            rule=found.rule, host=found.host, text=_cut(found.text, MAX_PLACEHOLDER_TEXT)
        ),
    )


def _java_status_model(
    address: ServerAddress, asked_port: int, target: JavaTarget, response: JavaStatusResponse
) -> JavaResult:
    placeholder = _placeholder_status(address, asked_port, target, response)
    if placeholder is not None:
        return JavaResult(placeholder, None, response)
    raw: dict[str, Any] = dict(response.raw)
    sample = response.players.sample
    entries = [
        PlayerEntry(name=str(p.name), id=str(p.id) if p.id is not None else None) for p in sample or []
    ]
    icon = (
        response.icon if isinstance(response.icon, str) and response.icon.startswith("data:image/") else None
    )
    status = ServerStatus(
        address=format_host_port(address.host, asked_port),
        host=address.host,
        port=asked_port,
        edition=Edition.JAVA,
        online=True,
        version=Version(
            name=str(response.version.name), protocol=_protocol_version(response.version.protocol)
        ),
        motd=parse_motd(raw.get("description", ""), bedrock=False),
        players=_players(response.players.online, response.players.max, entries),
        latency_ms=round(float(response.latency), 3),
        srv=target.srv,
        icon=icon,
        **_software_fields(response, None),
    )
    return JavaResult(status, [e.name for e in entries] if sample is not None else None, response)


def _legacy_status_model(
    address: ServerAddress, asked_port: int, target: JavaTarget, response: LegacyStatusResponse
) -> JavaResult:
    status = ServerStatus(
        address=format_host_port(address.host, asked_port),
        host=address.host,
        port=asked_port,
        edition=Edition.JAVA,
        online=True,
        version=Version(
            name=str(response.version.name), protocol=_protocol_version(response.version.protocol)
        ),
        motd=render_motd(response.motd, str(response.motd.raw)),
        players=_players(response.players.online, response.players.max),
        latency_ms=round(float(response.latency), 3),
        srv=target.srv,
    )
    return JavaResult(status, None)


def _java_players(result: JavaResult, query: QueryResponse | None) -> PlayerList:
    status = result.status
    if not status.online or status.players is None:
        return PlayerList(
            address=status.address, online=False, error=status.error, retrieved_at=status.retrieved_at
        )
    count = PlayerCount(online=status.players.online, max=status.players.max)
    if query is not None:
        return PlayerList(
            address=status.address,
            online=True,
            players=count,
            names=[str(name) for name in query.players.list[:_MAX_PLAYER_NAMES]],
            source="query",
            plugins=status.plugins,
            plugins_truncated=status.plugins_truncated,
        )
    if result.sample_names is not None:
        return PlayerList(
            address=status.address, online=True, players=count, names=result.sample_names, source="sample"
        )
    return PlayerList(address=status.address, online=True, players=count, source="none")


def _bedrock_players(status: ServerStatus) -> PlayerList:
    if not status.online or status.players is None:
        return PlayerList(
            address=status.address, online=False, error=status.error, retrieved_at=status.retrieved_at
        )
    count = PlayerCount(online=status.players.online, max=status.players.max)
    return PlayerList(address=status.address, online=True, players=count, source="none")
