"""The query API's error answers: every 4xx and 5xx is an `ErrorResponse` with one `code`."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from mcstatbot_common.models import ErrorDetail, ErrorResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mcstatbot_query.metrics import ERRORS

if TYPE_CHECKING:
    from collections.abc import Mapping

    from fastapi import FastAPI, Request

log = logging.getLogger(__name__)

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "the address (or the JSON) is not valid"},
    403: {"model": ErrorResponse, "description": "the address is refused by the private-address rule"},
    413: {"model": ErrorResponse, "description": "the request body is too large"},
    422: {"model": ErrorResponse, "description": "the request does not match the schema"},
}
"""The error answers of the status and players endpoints, for the OpenAPI schema."""


class ApiError(Exception):
    """A 4xx answer raised by an endpoint: its status, `code` and message."""

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


def body_too_large(max_bytes: int) -> JSONResponse:
    return error_response(413, "body_too_large", f"the request body is larger than {max_bytes} bytes")


def _note(request: Request, code: str) -> None:
    request.state.outcome = code  # for the request's log line


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)  # noqa: S101 - registered for ApiError only
    _note(request, exc.code)
    return error_response(exc.status_code, exc.code, exc.message)


def _describe_validation(exc: RequestValidationError) -> tuple[int, str, str]:
    problems: list[str] = []
    for error in exc.errors()[:5]:
        if error.get("type") == "json_invalid":
            return 400, "invalid_json", "the request body is not valid JSON"
        where = ".".join(str(part) for part in error.get("loc", ()) if part not in {"body", "query", "path"})
        problems.append(f"{where or 'body'}: {error.get('msg', 'invalid')}")
    return 422, "invalid_request", "; ".join(problems) or "the request is not valid"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for RequestValidationError only
    status, code, message = _describe_validation(exc)
    _note(request, code)
    return error_response(status, code, message)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for HTTPException only
    if exc.status_code == 400:  # noqa: PLR2004 - FastAPI's only 400: a body json.loads could not take
        # (nested too deeply, not UTF-8, ...); ours are ApiError.
        _note(request, "invalid_json")
        return error_response(400, "invalid_json", "the request body is not valid JSON")
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, f"http_{exc.status_code}")
    _note(request, code)
    return error_response(exc.status_code, code, str(exc.detail), exc.headers)  # 405: with its Allow


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("internal error", exc_info=exc)
    _note(request, "internal")
    return error_response(500, "internal", "internal error")


def add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
