"""The query service's endpoints (SPEC.md, "Query service HTTP API (v1)"); the service comes by `Depends`."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import Response
from mcstatbot_common.addresses import InvalidAddressError, parse_address
from mcstatbot_common.models import (
    MAX_SERVER_URL_LENGTH,
    BatchServer,
    Edition,
    ErrorDetail,
    PlayerList,
    ServerStatus,
    StatusBatchItem,
    StatusBatchRequest,
    StatusBatchResponse,
    StatusRequest,
)

from mcstatbot_query.cache import Cache
from mcstatbot_query.errors import ForbiddenAddressError
from mcstatbot_query.handlers import ERROR_RESPONSES, ApiError
from mcstatbot_query.metrics import ERRORS
from mcstatbot_query.service import Kind, QueryService

if TYPE_CHECKING:
    from mcstatbot_query.service import Answer

log = logging.getLogger(__name__)
BATCH_CONCURRENCY = 32
"""Servers of one batch looked up (or probed) at once."""


def _service(request: Request) -> QueryService:
    service: QueryService = request.app.state.service
    return service


def _cache(request: Request) -> Cache:
    cache: Cache = request.app.state.cache
    return cache


Service = Annotated[QueryService, Depends(_service)]
CacheOfApp = Annotated[Cache, Depends(_cache)]
ServerUrlPath = Annotated[
    str, Path(max_length=MAX_SERVER_URL_LENGTH, description="host, host:port, IPv4 or [IPv6]:port")
]
EditionQuery = Annotated[Edition, Query(description="auto probes Java and Bedrock side by side")]
DebugQuery = Annotated[
    bool,
    Query(
        description="add a `debug` block: the cache tier, key and TTL left, and the probe's steps (SRV, "
        "addresses, each protocol tried with its outcome and time). The request is answered as any other "
        "(the same cache look-up and shared probe), so it never changes what others get."
    ),
]

router = APIRouter()


async def _lookup(
    service: QueryService,
    server_url: str,
    edition: Edition,
    kind: Kind,
    *,
    debug: bool,
) -> Answer:
    """The answer for one server, from the cache or one shared probe (ApiError: a 4xx answer). Every
    status and players endpoint, the batch one included, goes through here."""
    try:
        address = parse_address(server_url)
    except InvalidAddressError as exc:
        raise ApiError(400, "invalid_address", str(exc)) from None
    try:
        return await service.answer(address, edition, kind, debug=debug)
    except ForbiddenAddressError as exc:
        raise ApiError(403, "forbidden_address", str(exc)) from None


async def _answer(  # noqa: PLR0917 - the endpoints' inputs, passed on
    request: Request,
    service: QueryService,
    server_url: str,
    edition: Edition,
    kind: Kind,
    debug: bool,  # noqa: FBT001 - a request parameter
) -> Response:
    """What every status and players endpoint does once its input is valid (ApiError: a 4xx answer)."""
    answer = await _lookup(service, server_url, edition, kind, debug=debug)
    request.state.outcome = answer.outcome
    request.state.cache_hit = answer.hit
    return Response(
        answer.body.model_dump_json(exclude=None if debug else {"debug"}),
        media_type="application/json",
        headers={"X-Cache": "HIT" if answer.hit else "MISS", "Cache-Control": answer.cache_control},
    )


@router.post("/api/v1/status", response_model=ServerStatus, responses=ERROR_RESPONSES, tags=["v1"])
async def post_status(request: Request, service: Service, body: Annotated[StatusRequest, Body()]) -> Response:
    """The server's status, online or not (200 either way)."""
    return await _answer(request, service, body.server_url, body.edition, "status", body.debug)


async def _batch_item(
    service: QueryService, server: BatchServer, limit: asyncio.Semaphore
) -> StatusBatchItem:
    """One server of a batch: what `POST /api/v1/status` answers for it, as an item (its 4xx or an
    internal error as that item's error, never the whole batch's)."""
    async with limit:
        try:
            answer = await _lookup(service, server.server_url, server.edition, "status", debug=False)
        except ApiError as exc:
            ERRORS.labels("query", exc.code).inc()
            return StatusBatchItem(
                status_code=exc.status_code, error=ErrorDetail(code=exc.code, message=exc.message)
            )
        except Exception:
            log.exception("internal error in a batch item")
            ERRORS.labels("query", "internal").inc()
            return StatusBatchItem(
                status_code=500, error=ErrorDetail(code="internal", message="internal error")
            )
    assert isinstance(answer.body, ServerStatus)  # noqa: S101 - kind "status" answers a ServerStatus
    return StatusBatchItem(status_code=200, status=answer.body, max_age=answer.max_age, cache_hit=answer.hit)


@router.post(
    "/api/v1/status/batch", response_model=StatusBatchResponse, responses=ERROR_RESPONSES, tags=["v1"]
)
async def post_status_batch(
    request: Request, service: Service, body: Annotated[StatusBatchRequest, Body()]
) -> Response:
    """The status of up to MAX_BATCH_SERVERS servers in one request, in the order asked: each as
    `POST /api/v1/status` answers it (the same cache, coalescing and address rules), looked up
    concurrently; a server's 4xx is that item's `error`, the others are answered all the same."""
    limit = asyncio.Semaphore(BATCH_CONCURRENCY)
    items = await asyncio.gather(*(_batch_item(service, server, limit) for server in body.servers))
    max_age = min((item.max_age for item in items if item.max_age is not None), default=0)
    request.state.outcome = "batch"
    request.state.cache_hit = all(item.cache_hit for item in items)
    return Response(
        StatusBatchResponse(results=list(items)).model_dump_json(
            exclude={"results": {"__all__": {"status": {"debug"}}}}
        ),
        media_type="application/json",
        headers={
            "X-Cache": "HIT" if request.state.cache_hit else "MISS",
            "Cache-Control": f"max-age={max_age}",
        },
    )


@router.get(
    "/api/v1/status/{server_url:path}", response_model=ServerStatus, responses=ERROR_RESPONSES, tags=["v1"]
)
async def get_status(
    request: Request,
    service: Service,
    server_url: ServerUrlPath,
    edition: EditionQuery = Edition.AUTO,
    debug: DebugQuery = False,  # noqa: FBT002 - a query parameter
) -> Response:
    """The same as POST, for curl and browsers."""
    return await _answer(request, service, server_url, edition, "status", debug)


@router.post("/api/v1/players", response_model=PlayerList, responses=ERROR_RESPONSES, tags=["v1"])
async def post_players(
    request: Request, service: Service, body: Annotated[StatusRequest, Body()]
) -> Response:
    """Who is playing: the full list over the Query protocol, else the status sample."""
    return await _answer(request, service, body.server_url, body.edition, "players", body.debug)


@router.get(
    "/api/v1/players/{server_url:path}", response_model=PlayerList, responses=ERROR_RESPONSES, tags=["v1"]
)
async def get_players(
    request: Request,
    service: Service,
    server_url: ServerUrlPath,
    edition: EditionQuery = Edition.AUTO,
    debug: DebugQuery = False,  # noqa: FBT002 - a query parameter
) -> Response:
    """The same as POST, for curl and browsers."""
    return await _answer(request, service, server_url, edition, "players", debug)


@router.get("/health", tags=["ops"])
async def health() -> dict[str, str]:
    """Alive: the process answers HTTP."""
    return {"status": "ok"}


@router.get("/ready", tags=["ops"])
async def ready(cache: CacheOfApp) -> dict[str, Any]:
    """Ready to answer; a Redis outage is degraded mode (still 200: answers come from direct probes)."""
    up = await cache.healthy()
    return {"status": "ready" if up else "degraded", "cache": cache.kind, "cache_up": up}
