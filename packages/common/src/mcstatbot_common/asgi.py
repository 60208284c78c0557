"""ASGI pieces both services share."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.responses import Response
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodySizeLimitMiddleware"]

_BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class BodySizeLimitMiddleware:
    """Reads at most `max_bytes` of a request body; a larger one gets `too_large(max_bytes)` at once.

    A declared `Content-Length` over the limit (or not a number) is refused before anything is read; a
    body sent without one (chunked) is counted as it arrives and refused as soon as it passes the limit.
    The body read is handed on to the app as one message. GET, HEAD and OPTIONS pass untouched.

        app.add_middleware(BodySizeLimitMiddleware, max_bytes=16 * 1024, too_large=my_413_response)
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, too_large: Callable[[int], Response]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.too_large = too_large

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _BODYLESS_METHODS:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self.too_large(self.max_bytes)(scope, receive, send)
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
            if size > self.max_bytes:
                await self.too_large(self.max_bytes)(scope, receive, send)
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
