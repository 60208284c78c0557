"""BodySizeLimitMiddleware around a small Starlette app, spoken to over httpx's ASGI transport."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
from mcstatbot_common.asgi import BodySizeLimitMiddleware
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.requests import Request

LIMIT = 100


async def echo(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"{request.method} {len(await request.body())}")


def too_large(limit: int) -> JSONResponse:
    return JSONResponse({"too_large": limit}, status_code=413)


def client() -> httpx.AsyncClient:
    app = Starlette(routes=[Route("/", echo, methods=["GET", "POST"])])
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=LIMIT, too_large=too_large)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app.test")


async def chunks(size: int) -> AsyncIterator[bytes]:
    for _ in range(size // 10):
        yield b"x" * 10


async def test_bodies_within_the_limit_reach_the_app_whole() -> None:
    async with client() as http:
        exact = await http.post("/", content=b"x" * LIMIT)
        streamed = await http.post("/", content=chunks(LIMIT))
        get = await http.get("/")
    assert (exact.status_code, exact.text) == (200, f"POST {LIMIT}")
    assert (streamed.status_code, streamed.text) == (200, f"POST {LIMIT}")
    assert (get.status_code, get.text) == (200, "GET 0")


async def test_larger_bodies_get_the_given_answer_declared_or_streamed() -> None:
    async with client() as http:
        declared = await http.post("/", content=b"x" * (LIMIT + 1))
        streamed = await http.post("/", content=chunks(10 * LIMIT))  # no Content-Length: chunked
        bogus = await http.post("/", content=b"x", headers={"content-length": "-1"})
    for response in (declared, streamed, bogus):
        assert response.status_code == 413
        assert response.json() == {"too_large": LIMIT}
