"""Building PTB's Application: the Bot API base URL, timeouts, the HTTP client under PTB, the rate
limiter that honours 429s, and a count of every failed Bot API call by kind
(`mcstatbot_telegram_api_errors_total`)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from telegram._utils.defaultvalue import DefaultValue
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import AIORateLimiter, ApplicationBuilder
from telegram.request import BaseRequest, HTTPXRequest

from mcstatbot_bot import metrics
from mcstatbot_bot.http import (
    HttpClient,
    HttpError,
    HttpPoolTimeoutError,
    HttpTimeoutError,
    uses_proxy,
)
from mcstatbot_bot.updates import BotApplication

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from telegram._utils.types import ODVInput
    from telegram.request import RequestData

    from mcstatbot_bot.settings import BotSettings

JSONDict = dict[str, Any]
FORM = "application/x-www-form-urlencoded"
_TOKEN_IN_PATH = re.compile(r"/bot[^/]+/")


def redact_bot_url(url: str) -> str:
    """A Bot API URL for spans: `.../bot<token>/sendMessage` -> `.../bot<redacted>/sendMessage`."""
    return _TOKEN_IN_PATH.sub("/bot<redacted>/", url, count=1)


def _seconds(value: ODVInput[float], default: float | None) -> float | None:
    """PTB's "not given" (a DefaultValue) means this request's default."""
    return default if isinstance(value, DefaultValue) else value


class BotApiRequest(BaseRequest):
    """PTB's request layer on `mcstatbot_bot.http.HttpClient` (keep-alive HTTP/1.1, ~0.1 ms per call where
    PTB's HTTPXRequest takes ~1.3 ms). The body is what HTTPXRequest sends: the parameters form-encoded,
    each JSON-encoded. Uploads (multipart) go through an HTTPXRequest made when first needed; the bot sends
    none today."""

    __slots__ = ("_client", "_connect_timeout", "_pool_size", "_pool_timeout", "_read_timeout", "_uploads")

    def __init__(
        self,
        *,
        connection_pool_size: int = 64,
        connect_timeout: float | None = 5.0,
        read_timeout: float | None = 10.0,
        pool_timeout: float | None = 1.0,
    ) -> None:
        self._pool_size = connection_pool_size
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._pool_timeout = pool_timeout
        self._client = self._new_client()
        self._uploads: HTTPXRequest | None = None

    def _new_client(self) -> HttpClient:
        return HttpClient(
            timeout=self._read_timeout,
            connect_timeout=self._connect_timeout,
            pool_timeout=self._pool_timeout,
            max_connections=self._pool_size,
            headers={"User-Agent": self.USER_AGENT},
            span_url=redact_bot_url,
        )

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        """Nothing to do: connections are opened when the first request needs one."""

    async def shutdown(self) -> None:
        await self._client.aclose()
        self._client = self._new_client()  # PTB may initialize the bot again (e.g. `async with` twice)
        if self._uploads is not None:
            await self._uploads.shutdown()
            self._uploads = None

    async def do_request(  # noqa: PLR0917 - the signature is PTB's
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if request_data is not None and request_data.contains_files:
            if self._uploads is None:
                self._uploads = HTTPXRequest(connection_pool_size=2, connect_timeout=self._connect_timeout)
                await self._uploads.initialize()
            return await self._uploads.do_request(
                url, method, request_data, read_timeout, write_timeout, connect_timeout, pool_timeout
            )
        body = request_data.url_encoded_parameters().encode() if request_data is not None else b""
        try:
            response = await self._client.request(
                method,
                url,
                body=body,
                content_type=FORM if body else None,
                timeout=_seconds(read_timeout, self._read_timeout),
                connect_timeout=_seconds(connect_timeout, self._connect_timeout),
                pool_timeout=_seconds(pool_timeout, self._pool_timeout),
            )
        except HttpPoolTimeoutError as exc:
            raise TimedOut(
                "Pool timeout: all connections to the Bot API are busy; the request was not sent"
            ) from exc
        except HttpTimeoutError as exc:
            raise TimedOut from exc
        except HttpError as exc:
            raise NetworkError(f"{type(exc).__name__}: {exc}") from exc
        return response.status, response.body


def classify(error: TelegramError) -> str | None:
    """The `kind` label for a failed Bot API call; None for "message is not modified" (not an error)."""
    if isinstance(error, RetryAfter):
        return "rate_limited"
    if isinstance(error, BadRequest):
        return None if "not modified" in str(error).lower() else "bad_request"
    if isinstance(error, NetworkError | TimedOut):
        return "network"
    return "other"


def is_not_modified(error: BaseException) -> bool:
    """Telegram's "message is not modified" (an edit that changes nothing): not an error at all."""
    return isinstance(error, BadRequest) and "not modified" in str(error).lower()


def is_permanent(error: BaseException | None) -> bool:
    """A Bot API 4xx other than 429: asking again would be refused again (400 bad request, 401/404,
    403 blocked by the user, 409, a chat that migrated). "Not modified" is not an error; network
    failures, timeouts and 5xx may pass."""
    if isinstance(error, BadRequest):
        return not is_not_modified(error)
    return isinstance(error, Forbidden | InvalidToken | EndPointNotFound | Conflict | ChatMigrated)


class CountingRateLimiter(AIORateLimiter):
    """AIORateLimiter (Telegram's flood limits, retries after `retry_after`) that counts failed calls."""

    async def process_request(  # noqa: PLR0917 - the signature is PTB's
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | JSONDict | list[JSONDict]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | JSONDict | list[JSONDict]:
        async def counted(*a: Any, **k: Any) -> bool | JSONDict | list[JSONDict]:
            try:
                return await callback(*a, **k)
            except TelegramError as exc:
                kind = classify(exc)
                if kind is not None:
                    metrics.TELEGRAM_API_ERRORS.labels(kind).inc()
                raise

        return await super().process_request(counted, args, kwargs, endpoint, data, rate_limit_args)


def bot_api_request(
    root: str, *, connection_pool_size: int, connect_timeout: float, read_timeout: float
) -> BaseRequest:
    """BotApiRequest, or PTB's HTTPXRequest when the environment sends `root` through a proxy (httpx
    honours HTTP(S)_PROXY / ALL_PROXY / NO_PROXY; the small client does not speak to proxies)."""
    if uses_proxy(root):
        return HTTPXRequest(
            connection_pool_size=connection_pool_size,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
    return BotApiRequest(
        connection_pool_size=connection_pool_size, connect_timeout=connect_timeout, read_timeout=read_timeout
    )


def build_application(settings: BotSettings, *, webhook: bool) -> BotApplication:
    root = settings.telegram_api_base_url
    builder = (
        ApplicationBuilder()
        .application_class(BotApplication)
        .token(settings.telegram_bot_token.get_secret_value())
        .base_url(f"{root}/bot")
        .base_file_url(f"{root}/file/bot")
        .request(bot_api_request(root, connection_pool_size=64, connect_timeout=5.0, read_timeout=10.0))
        .get_updates_request(HTTPXRequest(connection_pool_size=2, read_timeout=40.0))
        .rate_limiter(CountingRateLimiter(max_retries=3))
        .concurrent_updates(64)
    )
    if webhook:
        builder = builder.updater(None)
    application = builder.build()
    if not isinstance(application, BotApplication):  # pragma: no cover - the builder honours the class
        raise TypeError("unexpected application class")
    return application
