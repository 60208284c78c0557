"""The bot's client for the query service's v1 API: timeouts, one retry, a circuit breaker.

Errors come out typed: `QueryRejected` (a 4xx: the address is invalid or refused; the service is fine)
and `QueryUnavailable` (connection failure, timeout, 5xx, unreadable answer, or the breaker is open).

The breaker counts the query service's own failures only. A failed request can be the service's fault
(down, overloaded, unreachable) or the fault of what was asked: a hostile Minecraft server that makes one
probe slow or makes the service answer 500 for it. So before a failure counts, the client asks the
service's `GET /health` (`HEALTH_TIMEOUT`): when that answers, the service is up and the failure was the
request's own; it is reported as unavailable for that request (the user gets the stored answer for that
server) but the breaker stays closed, so no input a user or a Minecraft server controls can open it.
One `QueryClient` wraps the one pooled HTTP client created in the app's lifespan (`mcstatbot_bot.http`:
keep-alive HTTP/1.1 with the trace context in every request; httpx when a proxy applies).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from mcstatbot_common.models import Edition, PlayerList, ServerStatus
from pydantic import BaseModel, ValidationError

from mcstatbot_bot import metrics
from mcstatbot_bot.http import HttpError, HttpTimeoutError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from mcstatbot_bot.breaker import CircuitBreaker
    from mcstatbot_bot.http import Requester, Response

log = logging.getLogger(__name__)
Endpoint = Literal["status", "players"]
ModelT = TypeVar("ModelT", bound=BaseModel)
_PATHS: dict[Endpoint, str] = {"status": "/api/v1/status", "players": "/api/v1/players"}
HEALTH_PATH = "/health"
HEALTH_TIMEOUT = 1.0


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
        http: Requester,
        breaker: CircuitBreaker,
        *,
        retries: int = 1,
        backoff_base: float = 0.2,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._http = http
        self.breaker = breaker
        self._retries = retries
        self._backoff_base = backoff_base
        self._sleep = sleep
        self._jitter = jitter

    async def status(self, address: str, edition: Edition = Edition.AUTO) -> ServerStatus:
        return await self._call("status", address, edition, ServerStatus)

    async def players(self, address: str, edition: Edition = Edition.AUTO) -> PlayerList:
        return await self._call("players", address, edition, PlayerList)

    async def _call(self, endpoint: Endpoint, address: str, edition: Edition, model: type[ModelT]) -> ModelT:
        if not self.breaker.allow():
            metrics.QUERY_REQUESTS.labels(endpoint, "short_circuited").inc()
            raise QueryUnavailable("circuit breaker open", short_circuited=True)
        body = json.dumps({"server_url": address, "edition": edition.value}).encode()
        attempt = 0
        try:
            while True:
                try:
                    result = await self._attempt(endpoint, body, model)
                except _RetryableError as exc:
                    if attempt >= self._retries:
                        service_down = not await self._healthy()
                        if service_down:
                            self.breaker.record_failure()
                        else:
                            self.breaker.record_success()  # it answers /health: this request's own failure
                        metrics.QUERY_REQUESTS.labels(endpoint, "unavailable").inc()
                        log.warning(
                            "query service unavailable" if service_down else "query request failed",
                            extra={"endpoint": endpoint, "reason": str(exc), "service_down": service_down},
                        )
                        raise QueryUnavailable(str(exc)) from None
                    delay = self._backoff_base * (2**attempt) * (0.5 + self._jitter())
                    attempt += 1
                    await self._sleep(delay)
                    continue
                except QueryRejected:
                    self.breaker.record_success()  # the service answered: it is up
                    metrics.QUERY_REQUESTS.labels(endpoint, "client_error").inc()
                    raise
                self.breaker.record_success()
                metrics.QUERY_REQUESTS.labels(endpoint, "ok").inc()
                return result
        except BaseException:
            self.breaker.release()
            raise

    async def _healthy(self) -> bool:
        """Does the service itself answer (GET /health, 2xx, within HEALTH_TIMEOUT)?"""
        try:
            response = await self._http.request("GET", HEALTH_PATH, timeout=HEALTH_TIMEOUT)
        except HttpError:
            return False
        return HTTPStatus.OK <= response.status < HTTPStatus.MULTIPLE_CHOICES

    async def _attempt(self, endpoint: Endpoint, body: bytes, model: type[ModelT]) -> ModelT:
        try:
            response = await self._http.request(
                "POST", _PATHS[endpoint], body=body, content_type="application/json"
            )
        except HttpTimeoutError:
            raise _RetryableError("timeout") from None
        except HttpError as exc:
            raise _RetryableError(type(exc).__name__) from None
        status = response.status
        if status == HTTPStatus.TOO_MANY_REQUESTS or status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            raise _RetryableError(f"HTTP {status}")
        if status >= HTTPStatus.BAD_REQUEST:
            code, message = _error_detail(response)
            raise QueryRejected(status, code, message)
        try:
            return model.model_validate_json(response.body)
        except ValidationError:
            raise _RetryableError("unreadable answer") from None


def _error_detail(response: Response) -> tuple[str, str]:
    """(code, message) from a 4xx body: `{"detail": {"code", "message"}}` or FastAPI's validation list."""
    default_code = "forbidden_address" if response.status == HTTPStatus.FORBIDDEN else "invalid_address"
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
