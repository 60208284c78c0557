"""The query service's HTTP API (SPEC.md, "Query service HTTP API (v1)")."""

from __future__ import annotations

import functools
import logging
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Body, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from mcstatbot_common.addresses import InvalidAddressError, ServerAddress, parse_address
from mcstatbot_common.models import (
    MAX_SERVER_URL_LENGTH,
    Edition,
    ErrorDetail,
    ErrorResponse,
    PlayerList,
    ServerStatus,
    StatusRequest,
)
from mcstatbot_common.observability import instrument_app
from starlette.exceptions import HTTPException as StarletteHTTPException

from mcstatbot_query.cache import create_cache
from mcstatbot_query.errors import ForbiddenAddressError
from mcstatbot_query.metrics import ERRORS
from mcstatbot_query.probe import Prober
from mcstatbot_query.resolver import Resolver
from mcstatbot_query.service import Answer, QueryService
from mcstatbot_query.settings import QuerySettings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping

    from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024
"""Largest request body accepted; a larger one answers 413 `body_too_large` without being read further."""

_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "the address (or the JSON) is not valid"},
    403: {"model": ErrorResponse, "description": "the address is refused by the private-address rule"},
    413: {"model": ErrorResponse, "description": "the request body is too large"},
    422: {"model": ErrorResponse, "description": "the request does not match the schema"},
}


class ApiError(Exception):
    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message


def error_response(
    status_code: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    ERRORS.labels("query", code).inc()
    body = ErrorResponse(detail=ErrorDetail(code=code, message=message))
    return JSONResponse(
        body.model_dump(mode="json"),
        status_code=status_code,
        headers={**(headers or {}), "X-Cache": "MISS", "Cache-Control": "max-age=0"},
    )


class BodyLimitMiddleware:
    """Reads at most MAX_BODY_BYTES of a request body; anything larger answers 413 at once."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in {"GET", "HEAD", "OPTIONS"}:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, "body_too_large", f"the request body is larger than {self.limit} bytes"
        )
        await response(scope, receive, send)


def _answer_response(answer: Answer) -> Response:
    """The answer's JSON as it is (rendered once per cached value, see QueryService), with its headers."""
    return Response(
        answer.payload,
        media_type="application/json",
        headers={"X-Cache": "HIT" if answer.hit else "MISS", "Cache-Control": f"max-age={answer.max_age}"},
    )


@functools.lru_cache(maxsize=4096)
def _parse_address(text: str) -> ServerAddress:
    """parse_address, remembered for the addresses asked most (a ServerAddress is immutable)."""
    return parse_address(text)


def _describe_validation(exc: RequestValidationError) -> tuple[int, str, str]:
    problems: list[str] = []
    for error in exc.errors()[:5]:
        if error.get("type") == "json_invalid":
            return 400, "invalid_json", "the request body is not valid JSON"
        where = ".".join(str(part) for part in error.get("loc", ()) if part not in {"body", "query", "path"})
        problems.append(f"{where or 'body'}: {error.get('msg', 'invalid')}")
    return 422, "invalid_request", "; ".join(problems) or "the request is not valid"


def service_of(request: Request) -> QueryService:
    service: QueryService = request.app.state.service
    return service


async def _answer(request: Request, server_url: str, edition: Edition, kind: str) -> Response:
    return await _answer_with(service_of(request), server_url, edition, kind)


async def _answer_with(service: QueryService, server_url: str, edition: Edition, kind: str) -> Response:
    """What every status and players endpoint does once its input is valid (ApiError: a 4xx answer)."""
    try:
        address = _parse_address(server_url)
    except InvalidAddressError as exc:
        raise ApiError(400, "invalid_address", str(exc)) from None
    try:
        result = await (service.status if kind == "status" else service.players)(address, edition)
    except ForbiddenAddressError as exc:
        raise ApiError(403, "forbidden_address", str(exc)) from None
    return _answer_response(result)


router = APIRouter()
ServerUrlPath = Annotated[
    str, Path(max_length=MAX_SERVER_URL_LENGTH, description="host, host:port, IPv4 or [IPv6]:port")
]
EditionQuery = Annotated[Edition, Query(description="auto probes Java and Bedrock side by side")]


@router.post("/api/v1/status", response_model=ServerStatus, responses=_ERROR_RESPONSES, tags=["v1"])
async def post_status(request: Request, body: Annotated[StatusRequest, Body()]) -> Response:
    """The server's status, online or not (200 either way)."""
    return await _answer(request, body.server_url, body.edition, "status")


@router.get(
    "/api/v1/status/{server_url:path}", response_model=ServerStatus, responses=_ERROR_RESPONSES, tags=["v1"]
)
async def get_status(
    request: Request, server_url: ServerUrlPath, edition: EditionQuery = Edition.AUTO
) -> Response:
    """The same as POST, for curl and browsers."""
    return await _answer(request, server_url, edition, "status")


@router.post("/api/v1/players", response_model=PlayerList, responses=_ERROR_RESPONSES, tags=["v1"])
async def post_players(request: Request, body: Annotated[StatusRequest, Body()]) -> Response:
    """Who is playing: the full list over the Query protocol, else the status sample."""
    return await _answer(request, body.server_url, body.edition, "players")


@router.get(
    "/api/v1/players/{server_url:path}", response_model=PlayerList, responses=_ERROR_RESPONSES, tags=["v1"]
)
async def get_players(
    request: Request, server_url: ServerUrlPath, edition: EditionQuery = Edition.AUTO
) -> Response:
    """The same as POST, for curl and browsers."""
    return await _answer(request, server_url, edition, "players")


@router.get("/health", tags=["ops"])
async def health() -> dict[str, str]:
    """Alive: the process answers HTTP."""
    return {"status": "ok"}


@router.get("/ready", tags=["ops"])
async def ready(request: Request) -> dict[str, Any]:
    """Ready to answer; a Redis outage is degraded mode (still 200: answers come from direct probes)."""
    cache = request.app.state.cache
    up = await cache.healthy()
    return {"status": "ready" if up else "degraded", "cache": cache.kind, "cache_up": up}


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)  # noqa: S101 - registered for ApiError only
    return error_response(exc.status_code, exc.code, exc.message)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for RequestValidationError only
    return error_response(*_describe_validation(exc))


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for HTTPException only
    if exc.status_code == 400:  # noqa: PLR2004 - FastAPI's only 400: a body json.loads could not take
        # (nested too deeply, not UTF-8, ...); ours are ApiError.
        return error_response(400, "invalid_json", "the request body is not valid JSON")
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, f"http_{exc.status_code}")
    return error_response(exc.status_code, code, str(exc.detail), exc.headers)  # 405: with its Allow


async def _internal_error(_: Request, exc: Exception) -> JSONResponse:
    log.error("internal error", exc_info=exc)
    return error_response(500, "internal", "internal error")


_DIRECT_EDITIONS: dict[bytes, Edition] = {b"": Edition.AUTO} | {
    f"edition={edition.value}".encode(): edition for edition in Edition
}
"""The query strings a direct GET accepts (none, or one valid `edition`); anything else goes to FastAPI."""


class DirectGetMiddleware:
    """Answers the common `GET /api/v1/{status,players}/{server_url}` without FastAPI's parameter handling.

    Validating the path and query parameters through FastAPI cost about as much as everything else a
    cached answer needs. A request with no query string or just a valid `edition`, and a `server_url` of
    1 to MAX_SERVER_URL_LENGTH characters, is what those parameters accept: it is answered here, by the
    endpoints' own code (`_answer_with`, the same 400/403 answers), under the same route (for metrics
    and spans). Everything else (other methods and paths, other query strings) goes on to FastAPI,
    whose validation answers it as before.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.routes = {
            "/api/v1/status/": ("status", _route_of(get_status)),
            "/api/v1/players/": ("players", _route_of(get_players)),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        direct = self._direct(scope)
        if direct is None:
            await self.app(scope, receive, send)
            return
        kind, route, server_url, edition = direct
        scope["route"] = route
        service: QueryService = scope["app"].state.service
        try:
            response = await _answer_with(service, server_url, edition, kind)
        except ApiError as exc:
            response = error_response(exc.status_code, exc.code, exc.message)
        await response(scope, receive, send)

    def _direct(self, scope: Scope) -> tuple[str, APIRoute, str, Edition] | None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope.get("root_path"):
            return None
        edition = _DIRECT_EDITIONS.get(scope["query_string"])
        path: str = scope["path"]
        if edition is None or not path.startswith("/api/v1/"):
            return None
        for prefix, (kind, route) in self.routes.items():
            if path.startswith(prefix):
                server_url = path[len(prefix) :]
                if 0 < len(server_url) <= MAX_SERVER_URL_LENGTH:
                    return kind, route, server_url, edition
                return None
        return None


def _route_of(endpoint: Callable[..., Any]) -> APIRoute:
    return next(r for r in router.routes if isinstance(r, APIRoute) and r.endpoint is endpoint)


def create_app(settings: QuerySettings | None = None) -> FastAPI:
    """The query service; clients (cache, resolver, prober) are created in the lifespan."""
    settings = settings or QuerySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        cache = create_cache(settings)
        resolver = Resolver(
            allow_private=settings.allow_private_addresses, nameservers=settings.nameservers()
        )
        prober = Prober(settings, resolver)
        app.state.settings = settings
        app.state.cache = cache
        app.state.resolver = resolver
        app.state.prober = prober
        app.state.service = QueryService(settings, cache, prober)
        try:
            yield
        finally:
            await cache.close()

    app = FastAPI(
        title="mcstatbot query service",
        version="1.0.0",
        description="Minecraft Java and Bedrock server status and player lists, cached and coalesced.",
        lifespan=lifespan,
    )
    instrument_app(app, "query")
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(DirectGetMiddleware)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
    app.include_router(router)
    return app
