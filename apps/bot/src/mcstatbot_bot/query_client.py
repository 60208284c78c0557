"""The bot's client for the query service's v1 API: timeouts, one retry, a circuit breaker.

Errors come out typed: `QueryRejected` (a 4xx: the address is invalid or refused; the service is fine)
and `QueryUnavailable` (connection failure, timeout, 5xx, unreadable answer, or the breaker is open).

The breaker counts the query service's own failures only. A failed request can be the service's fault
(down, overloaded, unreachable) or the fault of what was asked: a hostile Minecraft server that makes one
probe slow or makes the service answer 500 for it. So before a failure counts, the client asks the
service's `GET /health` (`HEALTH_TIMEOUT`): when that answers, the service is up and the failure was the
request's own; it is reported as unavailable for that request (the user gets the stored answer for that
server) but the breaker stays closed, so no input a user or a Minecraft server controls can open it.
One `QueryClient` wraps the one pooled httpx client created in the app's lifespan
(`mcstatbot_bot.clients.query_http_client`: keep-alive, the trace context in every request, a bound on the
response's size); each request has one deadline for the whole exchange (`timeout`), and failed ones are
retried with tenacity (exponential backoff with jitter). `statuses` asks for many servers at once through
`POST /api/v1/status/batch` (the watcher's checks of one tick), each request with the same policy and a
longer deadline (`batch_timeout`), a server's own refusal or failure coming back as its item.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import httpx
from mcstatbot_common.models import (
    MAX_BATCH_SERVERS,
    MAX_REQUEST_BODY_BYTES,
    Edition,
    PlayerList,
    ServerStatus,
    StatusBatchResponse,
)
from pydantic import BaseModel, ValidationError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from mcstatbot_bot import metrics

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from mcstatbot_bot.breaker import CircuitBreaker

log = logging.getLogger(__name__)
Endpoint = Literal["status", "players", "status_batch"]
ModelT = TypeVar("ModelT", bound=BaseModel)
T = TypeVar("T")
_PATHS: dict[Endpoint, str] = {
    "status": "/api/v1/status",
    "players": "/api/v1/players",
    "status_batch": "/api/v1/status/batch",
}
BATCH_TIMEOUT = 10.0
"""Seconds for one batch request: its slowest server bounds it (the service's MC_TIMEOUT, 5 s, plus a
coalesced wait), so it gets longer than one status request."""
BATCH_FALLBACK_CONCURRENCY = 8
"""Requests at once when a query service without the batch route (older, during a rolling upgrade) is
asked one server at a time."""
_JSON = {"Content-Type": "application/json"}
HEALTH_PATH = "/health"
HEALTH_TIMEOUT = 1.0
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age=(\d+)")


@dataclass(frozen=True, slots=True)
class Answer(Generic[ModelT]):
    """An answer of the query service and how long it keeps it cached (`Cache-Control: max-age`, seconds;
    None when the service sent none)."""

    value: ModelT
    max_age: int | None


def max_age(response: httpx.Response) -> int | None:
    """The `max-age` of a response's `Cache-Control`, None without one."""
    match = _MAX_AGE.search(response.headers.get("cache-control", ""))
    return int(match.group(1)) if match else None


class QueryError(Exception):
    """Base of the query client's errors."""


class QueryRejected(QueryError):  # noqa: N818 - a rejection, not an "error" of ours
    """The query service refused the request (4xx). `code`: invalid_address, forbidden_address, ..."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(f"{status_code} {code}: {message}")
        self.status_code = status_code
        self.code = code
        self.message = message


class QueryUnavailable(QueryError):  # noqa: N818 - names the condition the user is told about
    """The query service could not answer (down, slow, 5xx) or the circuit breaker is open."""

    def __init__(self, reason: str, *, short_circuited: bool = False) -> None:
        super().__init__(reason)
        self.short_circuited = short_circuited


class _RetryableError(Exception):
    pass


class QueryClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        breaker: CircuitBreaker,
        *,
        timeout: float = 3.0,
        batch_timeout: float = BATCH_TIMEOUT,
        retries: int = 1,
        backoff_base: float = 0.2,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._http = http
        self.breaker = breaker
        self._timeout = timeout
        self._batch_timeout = max(timeout, batch_timeout)
        self._retries = retries
        self._backoff_base = backoff_base
        self._sleep = sleep

    async def status(self, address: str, edition: Edition = Edition.AUTO) -> ServerStatus:
        return (await self.status_answer(address, edition)).value

    async def players(self, address: str, edition: Edition = Edition.AUTO) -> PlayerList:
        return (await self.players_answer(address, edition)).value

    async def status_answer(self, address: str, edition: Edition = Edition.AUTO) -> Answer[ServerStatus]:
        """The status and how long the query service keeps it (for "next check in N s")."""
        return await self._call("status", address, edition, ServerStatus)

    async def players_answer(self, address: str, edition: Edition = Edition.AUTO) -> Answer[PlayerList]:
        return await self._call("players", address, edition, PlayerList)

    async def statuses(
        self, servers: Sequence[tuple[str, Edition]]
    ) -> list[ServerStatus | QueryRejected | QueryUnavailable]:
        """The status of each (address, edition), in order, through `POST /api/v1/status/batch` (one
        request per MAX_BATCH_SERVERS, or fewer when their body would pass the service's body limit,
        concurrently), each request with the breaker and retry policy of `status()`. A server's own
        refusal (4xx) is its QueryRejected, a server the service could not answer for (its 5xx) its
        QueryUnavailable; a request that fails as a whole raises as `status()`."""
        chunks = _chunks(servers)
        answers = await asyncio.gather(*(self._batch(chunk) for chunk in chunks))
        return [item for answer in answers for item in answer]

    async def _batch(
        self, servers: Sequence[tuple[str, Edition]]
    ) -> list[ServerStatus | QueryRejected | QueryUnavailable]:
        body = json.dumps(
            {"servers": [{"server_url": address, "edition": edition.value} for address, edition in servers]}
        ).encode()
        try:
            answer = await self._call_with(
                "status_batch",
                body,
                lambda r: StatusBatchResponse.model_validate_json(r.content),
                self._batch_timeout,
            )
        except QueryRejected as exc:
            if exc.status_code not in {HTTPStatus.NOT_FOUND, HTTPStatus.METHOD_NOT_ALLOWED}:
                raise
            # a query service from before the batch route (a rolling upgrade): one request per server
            return await self._one_by_one(servers)
        if len(answer.results) != len(servers):
            raise QueryUnavailable(f"{len(answer.results)} answers for {len(servers)} servers")
        results: list[ServerStatus | QueryRejected | QueryUnavailable] = []
        for item in answer.results:
            if item.status is not None:
                results.append(item.status)
            elif item.status_code >= HTTPStatus.INTERNAL_SERVER_ERROR:
                results.append(QueryUnavailable(f"HTTP {item.status_code}"))
            else:
                code, message = (
                    (item.error.code, item.error.message) if item.error else ("invalid_address", "")
                )
                results.append(QueryRejected(item.status_code, code, message))
        return results

    async def _one_by_one(
        self, servers: Sequence[tuple[str, Edition]]
    ) -> list[ServerStatus | QueryRejected | QueryUnavailable]:
        """`statuses` through `POST /api/v1/status`, at most BATCH_FALLBACK_CONCURRENCY at once."""
        limit = asyncio.Semaphore(BATCH_FALLBACK_CONCURRENCY)

        async def one(address: str, edition: Edition) -> ServerStatus | QueryRejected | QueryUnavailable:
            async with limit:
                try:
                    return await self.status(address, edition)
                except (QueryRejected, QueryUnavailable) as exc:
                    return exc

        return list(await asyncio.gather(*(one(address, edition) for address, edition in servers)))

    async def _call(
        self, endpoint: Endpoint, address: str, edition: Edition, model: type[ModelT]
    ) -> Answer[ModelT]:
        body = json.dumps({"server_url": address, "edition": edition.value}).encode()

        def parse(response: httpx.Response) -> Answer[ModelT]:
            return Answer(model.model_validate_json(response.content), max_age(response))

        return await self._call_with(endpoint, body, parse, self._timeout)

    async def _call_with(
        self, endpoint: Endpoint, body: bytes, parse: Callable[[httpx.Response], T], seconds: float
    ) -> T:
        """One request to `endpoint` with the breaker, the retries and `/health` on failure."""
        if not self.breaker.allow():
            metrics.QUERY_REQUESTS.labels(endpoint, "short_circuited").inc()
            raise QueryUnavailable("circuit breaker open", short_circuited=True)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._retries + 1),
            wait=wait_random_exponential(multiplier=self._backoff_base, max=5 * self._backoff_base),
            retry=retry_if_exception_type(_RetryableError),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            try:
                result: T = await retrying(self._attempt, endpoint, body, parse, seconds)
            except _RetryableError as exc:
                await self._failed(endpoint, str(exc))
                raise QueryUnavailable(str(exc)) from None
            except QueryRejected:
                self.breaker.record_success()  # the service answered: it is up
                metrics.QUERY_REQUESTS.labels(endpoint, "client_error").inc()
                raise
        except BaseException:
            self.breaker.release()
            raise
        self.breaker.record_success()
        metrics.QUERY_REQUESTS.labels(endpoint, "ok").inc()
        return result

    async def _failed(self, endpoint: Endpoint, reason: str) -> None:
        """Every attempt failed: the breaker counts it only when the service's /health fails too."""
        service_down = not await self._healthy()
        if service_down:
            self.breaker.record_failure()
        else:
            self.breaker.record_success()  # it answers /health: this request's own failure
        metrics.QUERY_REQUESTS.labels(endpoint, "unavailable").inc()
        log.warning(
            "query service unavailable" if service_down else "query request failed",
            extra={"endpoint": endpoint, "reason": reason, "service_down": service_down},
        )

    async def _healthy(self) -> bool:
        """Does the service itself answer (GET /health, 2xx, within HEALTH_TIMEOUT)?"""
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT):
                response = await self._http.get(HEALTH_PATH)
        except (httpx.HTTPError, TimeoutError):
            return False
        return response.is_success

    async def _attempt(
        self, endpoint: Endpoint, body: bytes, parse: Callable[[httpx.Response], T], seconds: float
    ) -> T:
        try:
            async with asyncio.timeout(seconds):  # one deadline for the whole exchange
                response = await self._http.post(_PATHS[endpoint], content=body, headers=_JSON)
        except (TimeoutError, httpx.TimeoutException):
            raise _RetryableError("timeout") from None
        except httpx.HTTPError as exc:
            raise _RetryableError(type(exc).__name__) from None
        status = response.status_code
        if status == HTTPStatus.TOO_MANY_REQUESTS or status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            raise _RetryableError(f"HTTP {status}")
        if status >= HTTPStatus.BAD_REQUEST:
            code, message = _error_detail(response)
            raise QueryRejected(status, code, message)
        try:
            return parse(response)
        except ValidationError:
            raise _RetryableError("unreadable answer") from None


def _chunks(servers: Sequence[tuple[str, Edition]]) -> list[Sequence[tuple[str, Edition]]]:
    """`servers` in runs of at most MAX_BATCH_SERVERS whose batch body stays within the body limit."""
    budget = MAX_REQUEST_BODY_BYTES - 64  # the `{"servers": []}` around the items, with room to spare
    chunks: list[Sequence[tuple[str, Edition]]] = []
    start, size = 0, 0
    for index, (address, edition) in enumerate(servers):
        item = len(json.dumps({"server_url": address, "edition": edition.value}).encode()) + 2
        if index > start and (index - start >= MAX_BATCH_SERVERS or size + item > budget):
            chunks.append(servers[start:index])
            start, size = index, 0
        size += item
    if start < len(servers):
        chunks.append(servers[start:])
    return chunks


def _error_detail(response: httpx.Response) -> tuple[str, str]:
    """(code, message) from a 4xx body: `{"detail": {"code", "message"}}` or FastAPI's validation list."""
    default_code = "forbidden_address" if response.status_code == HTTPStatus.FORBIDDEN else "invalid_address"
    try:
        payload: Any = response.json()
    except ValueError:
        return default_code, ""
    detail = payload.get("detail") if isinstance(payload, dict) else None
    if isinstance(detail, dict):
        return str(detail.get("code") or default_code), str(detail.get("message") or "")
    if isinstance(detail, str):
        return default_code, detail
    return default_code, ""
