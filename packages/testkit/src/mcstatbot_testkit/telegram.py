"""A Telegram Bot API test server of our own, for tests that run the real python-telegram-bot.

`BotApiServer` is a small FastAPI app served by uvicorn in a background thread on a free loopback port.
A bot under test is pointed at it with `TELEGRAM_API_BASE_URL=server.base_url` (PTB:
`ApplicationBuilder().base_url(f"{server.base_url}/bot")`) and talks to it over real HTTP exactly as it
would talk to api.telegram.org. It is not a mock of the bot: it stands in for Telegram, which cannot be
reached from the test machines.

What it does:

- answers the Bot API methods the bot uses (getMe, setMyCommands, getMyCommands, deleteMyCommands,
  setWebhook, deleteWebhook, getWebhookInfo, getUpdates with long polling, sendMessage, sendPhoto (a
  multipart upload, checked against Telegram's photo limits: 10 MB, width + height <= 10,000, sides in a
  ratio of at most 20, a caption of at most 1024 characters; `photo(chat_id, message_id)` gives the
  bytes back), editMessageText,
  editMessageReplyMarkup, answerCallbackQuery, sendChatAction, getChat, getChatMember (`set_admins`
  says who administers a group), close, logOut), giving real,
  increasing message_ids per chat and keeping each message's current text and buttons;
- records every call (`calls`, `wait_for_call`), thread-safe, so tests can assert on what the bot sent;
- lets a test act as a user: `send_text(chat_id, text, chat_type=...)` and `press_button(message, data)`
  create updates with the fields Telegram fills in (command entities, `from`, `chat_instance`, ...);
- delivers updates the way Telegram does: through `getUpdates` (kept until a later offset confirms them),
  or, once a webhook is set (by the bot's `setWebhook` or `set_webhook()`), as `POST`s carrying
  `X-Telegram-Bot-Api-Secret-Token`, REDELIVERING each update after a non-2xx answer or a connection
  error until it is acknowledged (`deliveries` records every attempt);
- with `flood_limits=True`, answers 429 with `parameters.retry_after` beyond Telegram's flood limits, as
  Telegram does (`FloodLimits`: 30 calls a second in all, 3 per 3 s in one chat, 20 a minute in a group;
  each window a little shorter than Telegram's to allow for the time a call takes on its way); off by
  default, since tests that run several bot replicas without a shared budget would meet it;
- inline mode: `send_inline_query(user_id, query)` as a user typing `@bot query`; answerInlineQuery is
  checked as Telegram checks it (at most 50 results, ids of 1 to 64 bytes and unique, each result's
  `input_message_content` text and buttons as for sendMessage) and kept (`inline_answer`);
  `choose_inline_result(query_id, result_id)` sends a result into a chat as Telegram does (an inline
  message with an `inline_message_id`, `inline_message(id)`), `press_inline_button(id, data)` presses
  one of its buttons (a callback query without `message`), and editMessageText by `inline_message_id`
  edits it; a `language_code` may be given for the user in each of these and in `send_text` /
  `press_button`;
- injects failures: `fail_next(method, 429, retry_after=1)`, `fail_next(method, 400, "...")` or
  `not_modified_next()` ("message is not modified");
- refuses what Telegram refuses: a text over 4096 UTF-16 code units after its entities are parsed
  (HTML parse mode: Telegram's tags only, balanced; `&lt;` `&gt;` `&amp;` `&quot;` and numeric
  entities), a text that is empty after parsing, HTML that does not parse ("can't parse entities"),
  an edit of a message it does not have ("message to edit not found"; `delete_message` removes one),
  a callback answer over 200 characters, and an answer to a callback query it never sent or that was
  answered already ("query is too old"). `press_button(..., inaccessible=True)` sends the message as
  Telegram does when the bot may not see it any more (an InaccessibleMessage: chat, id, date 0).

Typical use (pytest)::

    with BotApiServer() as api:
        # start the bot with TELEGRAM_BOT_TOKEN=api.token, TELEGRAM_API_BASE_URL=api.base_url
        api.send_text(42, "/status play.example.com")
        reply = await api.wait_for_call("sendMessage", lambda c: c.params["chat_id"] == 42)
        api.press_button(reply.result, "v1|p|auto|play.example.com")
        edit = await api.wait_for_call("editMessageText")

`wait_for_call` is a coroutine that polls without blocking the event loop (the bot may run in the
test's own loop); `wait_for_call_sync` blocks the calling thread instead.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import io
import itertools
import json
import math
import re
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Self
from urllib.parse import parse_qsl

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from PIL import Image

from mcstatbot_testkit.net import LOOPBACK, free_port, wait_for_tcp
from mcstatbot_testkit.process import Started

if TYPE_CHECKING:
    import concurrent.futures
    from collections.abc import Callable

DEFAULT_TOKEN = "123456789:TEST-token-abcdefghijklmnopqrstuvwxyz"  # noqa: S105 - a test server's token
DEFAULT_BOT_ID = 123456789
DEFAULT_BOT_USERNAME = "mcstatbot_test_bot"
MAX_TEXT = 4096
MAX_CALLBACK_TEXT = 200
MAX_INLINE_RESULTS = 50
MAX_INLINE_RESULT_ID = 64
QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
ChatType = Literal["private", "group", "supergroup", "channel"]

# Parameters that are text even when they look like JSON numbers (PTB sends form fields, JSON-encoding
# everything that is not already a string).
_TEXT_PARAMS = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "url",
        "secret_token",
        "callback_query_id",
        "action",
        "inline_message_id",
        "description",
        "short_description",
        "name",
        "language_code",
        "ip_address",
    }
)


@dataclass(frozen=True, slots=True)
class ApiCall:
    """One Bot API request the bot made: method (as in the URL), parameters, and what was answered."""

    method: str
    params: dict[str, Any]
    ok: bool
    result: Any
    error_code: int | None
    at: float
    seq: int

    @property
    def text(self) -> str:
        return str(self.params.get("text", ""))

    @property
    def chat_id(self) -> int | str | None:
        value = self.params.get("chat_id")
        return value if isinstance(value, int | str) else None

    def button_data(self) -> list[str]:
        """The callback_data of every inline button the call sent, row by row."""
        markup = self.params.get("reply_markup") or {}
        if isinstance(markup, str):
            markup = json.loads(markup)
        return [
            b["callback_data"]
            for row in markup.get("inline_keyboard", [])
            for b in row
            if "callback_data" in b
        ]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One webhook POST attempt: which update, what status came back (None: connection error)."""

    update_id: int
    status: int | None
    at: float


@dataclass(slots=True)
class _Failure:
    method: str
    error_code: int
    description: str
    retry_after: int | None
    times: int
    predicate: Callable[[dict[str, Any]], bool] | None


@dataclass(slots=True)
class _Webhook:
    url: str
    secret_token: str | None
    max_connections: int


@dataclass(slots=True)
class _State:
    lock: threading.RLock = field(default_factory=threading.RLock)
    calls: list[ApiCall] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)
    messages: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    next_message_id: dict[int, int] = field(default_factory=dict)
    failures: list[_Failure] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    acknowledged: set[int] = field(default_factory=set)
    open_callbacks: set[str] = field(default_factory=set)
    webhook: _Webhook | None = None
    commands: list[dict[str, Any]] = field(default_factory=list)
    commands_by_language: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    admins: dict[int, set[int]] = field(default_factory=dict)
    open_inline_queries: set[str] = field(default_factory=set)
    inline_answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    inline_messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    may_pin: set[int] = field(default_factory=set)
    pinned: dict[int, list[int]] = field(default_factory=dict)
    photos: dict[tuple[int, int], bytes] = field(default_factory=dict)


class FloodLimits:
    """Telegram's flood limits as the test server keeps them: moving windows of the calls that were
    answered, overall, per chat and per group (a negative chat id or an @name). Calls that name a chat
    count, except reads (`get*`). Each window is a little shorter than Telegram's own (0.6 s for its
    second, 2 s for 3 s, 50 s for its minute: room for a call held up on a busy machine), so a bot that
    keeps exactly Telegram's limits when it sends is not refused for the jitter of the calls' way here;
    two bots that each keep them are."""

    WINDOWS: tuple[tuple[str, int, float], ...] = (("all", 30, 0.6), ("chat", 3, 2.0), ("group", 20, 50.0))

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent: dict[tuple[str, str], collections.deque[float]] = {}
        self.refused = 0

    def refuse(self, method: str, params: dict[str, Any]) -> int | None:
        """None: the call may pass (and is counted); else the `retry_after` seconds of a 429."""
        chat = params.get("chat_id")
        if chat is None or method.lower().startswith("get"):
            return None
        kinds = {"all": "all", "chat": str(chat)}
        if isinstance(chat, str) or (isinstance(chat, int) and chat < 0):
            kinds["group"] = str(chat)
        now = time.monotonic()
        with self._lock:
            windows = []
            for kind, amount, seconds in self.WINDOWS:
                if kind not in kinds:
                    continue
                sent = self._sent.setdefault((kind, kinds[kind]), collections.deque())
                while sent and sent[0] <= now - seconds:
                    sent.popleft()
                if len(sent) >= amount:
                    self.refused += 1
                    return max(1, math.ceil(sent[0] + seconds - now))
                windows.append(sent)
            for sent in windows:
                sent.append(now)
        return None


class BotApiServer(Started):
    """The Bot API stand-in; see the module docstring. Use as a context manager or `start()`/`stop()`."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        bot_username: str = DEFAULT_BOT_USERNAME,
        *,
        redelivery_delay: float = 0.3,
        port: int = 0,
        flood_limits: bool = False,
    ) -> None:
        self.token = token
        self.bot_id = int(token.split(":", 1)[0]) if token.split(":", 1)[0].isdigit() else DEFAULT_BOT_ID
        self.bot_username = bot_username
        self.redelivery_delay = redelivery_delay
        self.port = port or free_port()
        self._state = _State()
        self.flood = FloodLimits() if flood_limits else None
        self._seq = itertools.count(1)
        self._update_ids = itertools.count(1000)
        self._callback_ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._delivery_tasks: set[concurrent.futures.Future[None]] = set()
        self._http: httpx.AsyncClient | None = None
        self.app = self._build_app()

    # ------------------------------------------------------------------ lifecycle
    @property
    def base_url(self) -> str:
        """Root URL, the value for TELEGRAM_API_BASE_URL (the bot appends `/bot<token>/<method>`)."""
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def bot_user(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "mcstatbot test",
            "username": self.bot_username,
        }

    def start(self) -> Self:
        config = uvicorn.Config(
            self.app,
            host=LOOPBACK,
            port=self.port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=2,
            # idle connections kept as api.telegram.org keeps them (minutes), not uvicorn's 5 s: a client
            # that waits in its send budget would otherwise race the server's close on its next request
            timeout_keep_alive=120,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="bot-api-test-server", daemon=True)
        self._thread.start()
        wait_for_tcp(self.port, timeout=15)
        deadline = time.monotonic() + 5
        while self._loop is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def reset(self) -> None:
        """Forget calls, pending updates, deliveries and injected failures (messages and webhook stay)."""
        with self._state.lock:
            self._state.calls.clear()
            self._state.pending.clear()
            self._state.failures.clear()
            self._state.deliveries.clear()

    # ------------------------------------------------------------------ acting as a user
    def send_text(
        self,
        chat_id: int,
        text: str,
        chat_type: ChatType = "private",
        *,
        user_id: int | None = None,
        first_name: str = "Tester",
        update_id: int | None = None,
        language_code: str | None = None,
    ) -> dict[str, Any]:
        """A user writes `text` in chat `chat_id`; returns the update (queued for delivery).

        A leading `/command` (also `/command@BotName`) gets the `bot_command` entity Telegram adds.
        In a group the sender is `user_id` (default: a user id derived from the chat).
        """
        sender = _user(user_id or abs(chat_id), first_name, language_code)
        chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat["first_name"] = first_name
        else:
            chat["title"] = f"Test group {chat_id}"
        message: dict[str, Any] = {
            "message_id": self._new_message_id(chat_id),
            "date": int(time.time()),
            "chat": chat,
            "from": sender,
            "text": text,
        }
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        with self._state.lock:
            self._state.messages[(chat_id, message["message_id"])] = message
        return self.enqueue_update({"message": message}, update_id=update_id)

    def press_button(
        self,
        message: dict[str, Any] | ApiCall,
        callback_data: str,
        *,
        user_id: int | None = None,
        check: bool = True,
        update_id: int | None = None,
        inaccessible: bool = False,
        language_code: str | None = None,
    ) -> dict[str, Any]:
        """A user presses the inline button with `callback_data` under `message` (a bot message).

        `message` is a Message dict (e.g. `call.result` of a sendMessage) or the ApiCall itself; the
        update carries the message as it is NOW (after any edits). With `check`, the button must exist.
        With `inaccessible`, the update carries only the message's chat and id (date 0), as Telegram
        sends a message the bot may no longer see.
        """
        msg = message.result if isinstance(message, ApiCall) else message
        chat_id, message_id = int(msg["chat"]["id"]), int(msg["message_id"])
        with self._state.lock:
            current = dict(self._state.messages.get((chat_id, message_id), msg))
        if check:
            buttons = [
                b.get("callback_data")
                for row in (current.get("reply_markup") or {}).get("inline_keyboard", [])
                for b in row
            ]
            if callback_data not in buttons:
                raise AssertionError(f"message {message_id} has no button {callback_data!r}: {buttons}")
        sender = _user(user_id or abs(chat_id), "Tester", language_code)
        if inaccessible:
            current = {"chat": current["chat"], "message_id": message_id, "date": 0}
        query_id = str(next(self._callback_ids))
        query = {
            "id": query_id,
            "from": sender,
            "message": current,
            "chat_instance": f"ci{chat_id}",
            "data": callback_data,
        }
        with self._state.lock:
            self._state.open_callbacks.add(query_id)
        return self.enqueue_update({"callback_query": query}, update_id=update_id)

    # ------------------------------------------------------------------ inline mode
    def send_inline_query(
        self, user_id: int, query: str, *, language_code: str | None = None, update_id: int | None = None
    ) -> dict[str, Any]:
        """A user types `@bot <query>` in some chat; returns the update (its `inline_query.id` is what
        `inline_answer` and `choose_inline_result` take)."""
        query_id = f"iq{next(self._callback_ids)}"
        inline = {
            "id": query_id,
            "from": _user(user_id, "Tester", language_code),
            "query": query,
            "offset": "",
            "chat_type": "private",
        }
        with self._state.lock:
            self._state.open_inline_queries.add(query_id)
        return self.enqueue_update({"inline_query": inline}, update_id=update_id)

    def inline_answer(self, query_id: str) -> dict[str, Any] | None:
        """What the bot answered to inline query `query_id` (answerInlineQuery's parameters), if it did."""
        with self._state.lock:
            answer = self._state.inline_answers.get(query_id)
            return dict(answer) if answer is not None else None

    def choose_inline_result(self, query_id: str, result_id: str) -> str:
        """The user picks result `result_id` of the answer to `query_id`: Telegram sends it into the chat
        as an inline message (its text and buttons). Returns the `inline_message_id`."""
        answer = self.inline_answer(query_id)
        if answer is None:
            raise AssertionError(f"inline query {query_id} was not answered")
        results = [r for r in answer["results"] if r.get("id") == result_id]
        if not results:
            raise AssertionError(f"the answer to {query_id} has no result {result_id!r}")
        content = results[0].get("input_message_content") or {}
        message_id = f"im{next(self._callback_ids)}"
        message: dict[str, Any] = {
            "text": content.get("message_text"),
            "parse_mode": content.get("parse_mode"),
        }
        if results[0].get("reply_markup"):
            message["reply_markup"] = results[0]["reply_markup"]
        with self._state.lock:
            self._state.inline_messages[message_id] = message
        return message_id

    def inline_message(self, inline_message_id: str) -> dict[str, Any]:
        """An inline message as it is now (edits applied): `text`, `reply_markup`."""
        with self._state.lock:
            return dict(self._state.inline_messages[inline_message_id])

    def press_inline_button(
        self,
        inline_message_id: str,
        callback_data: str,
        *,
        user_id: int = 7,
        language_code: str | None = None,
        check: bool = True,
    ) -> dict[str, Any]:
        """A user presses a button under an inline message: the callback query has no `message`, only
        `inline_message_id` (the bot is not told which chat it is in)."""
        current = self.inline_message(inline_message_id)
        if check:
            buttons = [
                b.get("callback_data")
                for row in (current.get("reply_markup") or {}).get("inline_keyboard", [])
                for b in row
            ]
            if callback_data not in buttons:
                raise AssertionError(f"inline message {inline_message_id} has no button {callback_data!r}")
        query_id = str(next(self._callback_ids))
        query = {
            "id": query_id,
            "from": _user(user_id, "Tester", language_code),
            "inline_message_id": inline_message_id,
            "chat_instance": f"ci-inline-{inline_message_id}",
            "data": callback_data,
        }
        with self._state.lock:
            self._state.open_callbacks.add(query_id)
        return self.enqueue_update({"callback_query": query})

    def _answer_inline_query(self, params: dict[str, Any]) -> bool:
        """answerInlineQuery, refused where Telegram refuses it."""
        query_id = str(params.get("inline_query_id", ""))
        results = params.get("results")
        if isinstance(results, str):
            results = json.loads(results)
        if not isinstance(results, list):
            raise _ApiError(400, "Bad Request: can't parse inline query results JSON object")
        if len(results) > MAX_INLINE_RESULTS:
            raise _ApiError(400, "Bad Request: RESULTS_TOO_MUCH")
        seen: set[str] = set()
        for result in results:
            result_id = str(result.get("id", ""))
            if not 1 <= len(result_id.encode()) <= MAX_INLINE_RESULT_ID:
                raise _ApiError(400, "Bad Request: RESULT_ID_INVALID")
            if result_id in seen:
                raise _ApiError(400, "Bad Request: RESULT_ID_DUPLICATE")
            seen.add(result_id)
            if not result.get("title"):
                raise _ApiError(400, "Bad Request: RESULT_TITLE_EMPTY")
            content = result.get("input_message_content") or {}
            _check_text(content.get("message_text"), content.get("parse_mode"))
            _check_markup(result.get("reply_markup"))
        cache_time = params.get("cache_time")
        if cache_time is not None and (not isinstance(cache_time, int) or cache_time < 0):
            raise _ApiError(400, "Bad Request: invalid cache_time")
        with self._state.lock:
            if query_id not in self._state.open_inline_queries:
                raise _ApiError(400, QUERY_TOO_OLD)
            self._state.open_inline_queries.discard(query_id)
            self._state.inline_answers[query_id] = {**params, "results": results}
        return True

    def _edit_inline_message(self, name: str, params: dict[str, Any]) -> bool:
        """editMessageText / editMessageReplyMarkup by `inline_message_id` (Telegram answers True)."""
        message_id = str(params.get("inline_message_id"))
        _check_markup(params.get("reply_markup"))
        with self._state.lock:
            current = self._state.inline_messages.get(message_id)
            if current is None:
                raise _ApiError(400, "Bad Request: MESSAGE_ID_INVALID")
            updated = dict(current)
            if name == "editmessagetext":
                _check_text(params.get("text"), params.get("parse_mode"))
                updated["text"] = params.get("text")
            if params.get("reply_markup"):
                updated["reply_markup"] = params["reply_markup"]
            else:
                updated.pop("reply_markup", None)
            if updated.get("text") == current.get("text") and updated.get("reply_markup") == current.get(
                "reply_markup"
            ):
                raise _ApiError(400, NOT_MODIFIED)
            self._state.inline_messages[message_id] = updated
        return True

    def delete_message(self, chat_id: int, message_id: int) -> None:
        """The message is gone (deleted by the user): editing it answers "message to edit not found"."""
        with self._state.lock:
            self._state.messages.pop((chat_id, message_id), None)

    def set_admins(self, chat_id: int, user_ids: set[int] | list[int]) -> None:
        """Who administers group `chat_id` (getChatMember answers `administrator` for them, `member`
        for anyone else; the first is the `creator`). Groups without admins set have none."""
        with self._state.lock:
            self._state.admins[chat_id] = set(user_ids)

    def allow_pins(self, chat_id: int) -> None:
        """The bot may pin messages in group `chat_id` (an administrator with `can_pin_messages`). In
        other groups pinChatMessage is refused as Telegram refuses it; private chats always allow it."""
        with self._state.lock:
            self._state.may_pin.add(chat_id)

    def pinned(self, chat_id: int) -> list[int]:
        """The message ids pinned in `chat_id`, the latest last."""
        with self._state.lock:
            return list(self._state.pinned.get(chat_id, []))

    def enqueue_update(self, body: dict[str, Any], *, update_id: int | None = None) -> dict[str, Any]:
        """Queue any update (`body` without update_id; one is assigned unless given) for delivery.

        Giving the same `update_id` twice queues a duplicate, as Telegram's redelivery would.
        """
        update = {"update_id": update_id if update_id is not None else next(self._update_ids), **body}
        with self._state.lock:
            self._state.pending.append(update)
            webhook = self._state.webhook
        if webhook is not None:
            self._schedule_delivery(update)
        self._wake()
        return update

    # ------------------------------------------------------------------ what the bot did
    @property
    def calls(self) -> list[ApiCall]:
        with self._state.lock:
            return list(self._state.calls)

    @property
    def deliveries(self) -> list[Delivery]:
        with self._state.lock:
            return list(self._state.deliveries)

    @property
    def pending_update_ids(self) -> list[int]:
        """Updates not yet acknowledged (by a getUpdates offset or a 2xx webhook answer)."""
        with self._state.lock:
            return [u["update_id"] for u in self._state.pending]

    @property
    def commands(self) -> list[dict[str, Any]]:
        """The commands the bot registered with setMyCommands."""
        with self._state.lock:
            return list(self._state.commands)

    def commands_for(self, language_code: str) -> list[dict[str, Any]]:
        """The commands the bot registered for users with that `language_code` (setMyCommands with it);
        empty when none were: Telegram then shows those users the default ones (`commands`)."""
        with self._state.lock:
            return list(self._state.commands_by_language.get(language_code, []))

    @property
    def webhook_url(self) -> str | None:
        with self._state.lock:
            return self._state.webhook.url if self._state.webhook else None

    def message(self, chat_id: int, message_id: int) -> dict[str, Any]:
        """The message as it is now (edits applied)."""
        with self._state.lock:
            return dict(self._state.messages[(chat_id, message_id)])

    def calls_to(self, method: str, chat_id: int | None = None, *, since: int = 0) -> list[ApiCall]:
        """Calls of `method` (case-insensitive), optionally to one chat, with sequence number > since."""
        return [
            c
            for c in self.calls
            if c.method.lower() == method.lower()
            and c.seq > since
            and (chat_id is None or c.chat_id == chat_id)
        ]

    @property
    def last_seq(self) -> int:
        """Sequence number of the latest call: pass as `since` to wait only for later calls."""
        with self._state.lock:
            return self._state.calls[-1].seq if self._state.calls else 0

    def _find(self, method: str, predicate: Callable[[ApiCall], bool] | None, since: int) -> ApiCall | None:
        for call in self.calls_to(method, since=since):
            if predicate is None or predicate(call):
                return call
        return None

    async def wait_for_call(
        self,
        method: str,
        predicate: Callable[[ApiCall], bool] | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109 - a deadline for a polling wait, not a cancellation scope
        *,
        since: int = 0,
    ) -> ApiCall:
        """Wait (without blocking the loop) for a call of `method` matching `predicate` after `since`."""
        deadline = time.monotonic() + timeout
        while (found := self._find_by(deadline, method, predicate, since)) is None:  # noqa: ASYNC110 - calls arrive on the server thread
            await asyncio.sleep(0.02)
        return found

    def wait_for_call_sync(
        self,
        method: str,
        predicate: Callable[[ApiCall], bool] | None = None,
        timeout: float = 10.0,
        *,
        since: int = 0,
    ) -> ApiCall:
        """`wait_for_call` for a bot running in another process: blocks this thread."""
        deadline = time.monotonic() + timeout
        while (found := self._find_by(deadline, method, predicate, since)) is None:
            time.sleep(0.02)
        return found

    def _find_by(
        self, deadline: float, method: str, predicate: Callable[[ApiCall], bool] | None, since: int
    ) -> ApiCall | None:
        """The matching call, None to keep waiting, TimeoutError once `deadline` (monotonic) has passed."""
        found = self._find(method, predicate, since)
        if found is None and time.monotonic() > deadline:
            raise TimeoutError(f"no {method} call matched before the deadline; calls: {self._summary()}")
        return found

    def _summary(self) -> str:
        return ", ".join(f"{c.method}({c.params.get('chat_id', '')})" for c in self.calls[-30:])

    # ------------------------------------------------------------------ failures
    def fail_next(
        self,
        method: str,
        error_code: int = 429,
        description: str | None = None,
        *,
        retry_after: int | None = None,
        times: int = 1,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        """Answer the next `times` calls of `method` (matching `predicate` on the params) with an error.

        429 defaults to "Too Many Requests: retry after N" with `parameters.retry_after` (default 1).
        """
        if error_code == 429 and retry_after is None:  # noqa: PLR2004
            retry_after = 1
        if description is None:
            description = (
                f"Too Many Requests: retry after {retry_after}" if error_code == 429 else "Bad Request"  # noqa: PLR2004
            )
        with self._state.lock:
            self._state.failures.append(
                _Failure(method.lower(), error_code, description, retry_after, times, predicate)
            )

    def not_modified_next(self, method: str = "editMessageText", times: int = 1) -> None:
        """The next edit answers 400 "message is not modified", whatever it changes."""
        self.fail_next(method, 400, NOT_MODIFIED, times=times)

    def _flood_refusal(self, method: str, params: dict[str, Any]) -> _Failure | None:
        retry_after = self.flood.refuse(method, params) if self.flood is not None else None
        if retry_after is None:
            return None
        return _Failure(method, 429, f"Too Many Requests: retry after {retry_after}", retry_after, 1, None)

    def _take_failure(self, method: str, params: dict[str, Any]) -> _Failure | None:
        with self._state.lock:
            for failure in self._state.failures:
                if failure.method == method.lower() and (
                    failure.predicate is None or failure.predicate(params)
                ):
                    failure.times -= 1
                    if failure.times <= 0:
                        self._state.failures.remove(failure)
                    return failure
        return None

    # ------------------------------------------------------------------ webhook delivery
    def set_webhook(self, url: str, secret_token: str | None = None, max_connections: int = 40) -> None:
        """Deliver updates as POSTs to `url` from now on (what the bot's setWebhook does)."""
        with self._state.lock:
            self._state.webhook = _Webhook(url, secret_token, max_connections)
            pending = list(self._state.pending)
        for update in pending:
            self._schedule_delivery(update)

    def delete_webhook(self, *, drop_pending_updates: bool = False) -> None:
        with self._state.lock:
            self._state.webhook = None
            if drop_pending_updates:
                self._state.pending.clear()

    def _schedule_delivery(self, update: dict[str, Any]) -> None:
        loop = self._loop
        if loop is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._deliver(update), loop)
        self._delivery_tasks.add(future)
        future.add_done_callback(self._delivery_tasks.discard)

    async def _deliver(self, update: dict[str, Any]) -> None:
        update_id = update["update_id"]
        while True:
            with self._state.lock:
                webhook = self._state.webhook
                still_pending = any(u is update for u in self._state.pending)
            if webhook is None or not still_pending or self._http is None:
                return
            headers = {"Content-Type": "application/json"}
            if webhook.secret_token:
                headers["X-Telegram-Bot-Api-Secret-Token"] = webhook.secret_token
            status: int | None
            try:
                response = await self._http.post(webhook.url, content=json.dumps(update), headers=headers)
                status = response.status_code
            except httpx.HTTPError:
                status = None
            with self._state.lock:
                self._state.deliveries.append(Delivery(update_id, status, time.time()))
                if status is not None and 200 <= status < 300:  # noqa: PLR2004
                    with contextlib.suppress(ValueError):
                        self._state.pending.remove(update)
                    self._state.acknowledged.add(update_id)
                    return
            await asyncio.sleep(self.redelivery_delay)

    # ------------------------------------------------------------------ internals
    def _wake(self) -> None:
        if self._loop is not None and self._wakeup is not None:
            self._loop.call_soon_threadsafe(self._wakeup.set)

    def _new_message_id(self, chat_id: int) -> int:
        with self._state.lock:
            value = self._state.next_message_id.get(chat_id, 1)
            self._state.next_message_id[chat_id] = value + 1
            return value

    def _record(self, method: str, params: dict[str, Any], ok: bool, result: Any, code: int | None) -> None:  # noqa: FBT001
        with self._state.lock:
            self._state.calls.append(ApiCall(method, params, ok, result, code, time.time(), next(self._seq)))

    def _build_app(self) -> FastAPI:
        server = self

        @contextlib.asynccontextmanager
        async def lifespan(_: FastAPI) -> Any:
            server._loop = asyncio.get_running_loop()
            server._wakeup = asyncio.Event()
            server._http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=2.0))
            try:
                yield
            finally:
                for task in list(server._delivery_tasks):
                    task.cancel()
                await server._http.aclose()
                server._http = None
                server._loop = None

        app = FastAPI(lifespan=lifespan)

        @app.post("/bot{token}/{method}")
        @app.get("/bot{token}/{method}")
        async def api(token: str, method: str, request: Request) -> JSONResponse:
            params = await _read_params(request)
            if token != server.token:
                body = {"ok": False, "error_code": 401, "description": "Unauthorized"}
                server._record(method, params, ok=False, result=None, code=401)
                return JSONResponse(body, status_code=401)
            failure = server._take_failure(method, params) or server._flood_refusal(method, params)
            if failure is not None:
                error: dict[str, Any] = {
                    "ok": False,
                    "error_code": failure.error_code,
                    "description": failure.description,
                }
                if failure.retry_after is not None:
                    error["parameters"] = {"retry_after": failure.retry_after}
                server._record(method, params, ok=False, result=None, code=failure.error_code)
                return JSONResponse(error, status_code=failure.error_code)
            try:
                result = await server._dispatch(method, params)
            except _ApiError as exc:
                server._record(method, params, ok=False, result=None, code=exc.code)
                return JSONResponse(
                    {"ok": False, "error_code": exc.code, "description": exc.description},
                    status_code=exc.code,
                )
            server._record(method, params, ok=True, result=result, code=None)
            return JSONResponse({"ok": True, "result": result})

        return app

    async def _dispatch(self, method: str, params: dict[str, Any]) -> Any:  # noqa: C901, PLR0911, PLR0912
        name = method.lower()
        if name == "getme":
            return {**self.bot_user, "can_join_groups": True, "can_read_all_group_messages": False}
        if name == "setmycommands":
            return self._set_my_commands(params)
        if name == "getmycommands":
            return self.commands
        if name == "deletemycommands":
            with self._state.lock:
                self._state.commands = []
            return True
        if name == "setwebhook":
            url = str(params.get("url", ""))
            if not url:
                self.delete_webhook(drop_pending_updates=bool(params.get("drop_pending_updates")))
                return True
            if bool(params.get("drop_pending_updates")):
                with self._state.lock:
                    self._state.pending.clear()
            secret = params.get("secret_token")
            self.set_webhook(url, str(secret) if secret else None, int(params.get("max_connections") or 40))
            return True
        if name == "deletewebhook":
            self.delete_webhook(drop_pending_updates=bool(params.get("drop_pending_updates")))
            return True
        if name == "getwebhookinfo":
            with self._state.lock:
                hook, pending = self._state.webhook, len(self._state.pending)
            return {
                "url": hook.url if hook else "",
                "has_custom_certificate": False,
                "pending_update_count": pending,
                "max_connections": hook.max_connections if hook else 40,
            }
        if name == "getupdates":
            return await self._get_updates(params)
        if name == "sendmessage":
            return self._send_message(params)
        if name == "sendphoto":
            return self._send_photo(params)
        if name in {"editmessagetext", "editmessagereplymarkup"}:
            if params.get("inline_message_id"):
                return self._edit_inline_message(name, params)
            return self._edit_message(name, params)
        if name == "answerinlinequery":
            return self._answer_inline_query(params)
        if name == "answercallbackquery":
            return self._answer_callback(params)
        if name in {"sendchataction", "close", "logout", "deletemessage"}:
            return True
        if name == "getchatmember":
            return self._chat_member(params)
        if name in {"pinchatmessage", "unpinchatmessage"}:
            return self._pin(name, params)
        if name == "getchat":
            chat_id = params.get("chat_id")
            return {"id": chat_id, "type": "private" if isinstance(chat_id, int) and chat_id > 0 else "group"}
        raise _ApiError(404, f"Not Found: method {method} is not served by the test server")

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        with self._state.lock:
            if self._state.webhook is not None:
                raise _ApiError(409, "Conflict: can't use getUpdates method while webhook is active")
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        timeout = float(params.get("timeout") or 0)
        deadline = time.monotonic() + timeout
        while True:
            with self._state.lock:
                if offset:
                    confirmed = [u for u in self._state.pending if u["update_id"] < offset]
                    for update in confirmed:
                        self._state.pending.remove(update)
                        self._state.acknowledged.add(update["update_id"])
                batch = self._state.pending[:limit]
            closing = self._server is None or self._server.should_exit
            if batch or closing or time.monotonic() >= deadline or self._wakeup is None:
                return batch
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wakeup.wait(), timeout=min(0.5, max(0.0, deadline - time.monotonic()))
                )

    def _set_my_commands(self, params: dict[str, Any]) -> bool:
        """setMyCommands, per `language_code` (a two-letter ISO 639-1 code, or none: the default)."""
        language = str(params.get("language_code") or "")
        if language and not re.fullmatch(r"[a-z]{2}", language):
            raise _ApiError(400, "Bad Request: invalid language code specified")
        commands = list(params.get("commands") or [])
        with self._state.lock:
            if language:
                self._state.commands_by_language[language] = commands
            else:
                self._state.commands = commands
        return True

    def _chat_of(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        raw = params.get("chat_id")
        if not isinstance(raw, int):
            raise _ApiError(400, "Bad Request: chat not found")
        chat_type = "private" if raw > 0 else "group"
        chat: dict[str, Any] = {"id": raw, "type": chat_type}
        chat["first_name" if chat_type == "private" else "title"] = f"chat {raw}"
        return raw, chat

    def _pin(self, name: str, params: dict[str, Any]) -> bool:
        """pinChatMessage / unpinChatMessage: refused in a group unless `allow_pins`, and for a message
        that does not exist, as Telegram refuses them."""
        chat_id, _ = self._chat_of(params)
        message_id = params.get("message_id")
        with self._state.lock:
            if chat_id < 0 and chat_id not in self._state.may_pin:
                raise _ApiError(400, "Bad Request: not enough rights to manage pinned messages in the chat")
            pinned = self._state.pinned.setdefault(chat_id, [])
            if name == "unpinchatmessage":
                if message_id is None and pinned:
                    pinned.pop()
                elif message_id in pinned:
                    pinned.remove(message_id)
                return True
            if not isinstance(message_id, int) or (chat_id, message_id) not in self._state.messages:
                raise _ApiError(400, "Bad Request: message to pin not found")
            if message_id not in pinned:
                pinned.append(message_id)
            return True

    def _chat_member(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id, _ = self._chat_of(params)
        user_id = params.get("user_id")
        if not isinstance(user_id, int):
            raise _ApiError(400, "Bad Request: PARTICIPANT_ID_INVALID")
        user = {"id": user_id, "is_bot": False, "first_name": f"user {user_id}"}
        if chat_id > 0:
            if user_id not in {chat_id, self.bot_id}:
                raise _ApiError(400, "Bad Request: user not found")
            return {"status": "member", "user": user}
        with self._state.lock:
            admins = sorted(self._state.admins.get(chat_id, set()))
        if admins and user_id == admins[0]:
            return {"status": "creator", "user": user, "is_anonymous": False}
        if user_id in admins:
            return {
                "status": "administrator",
                "user": user,
                "can_be_edited": False,
                "is_anonymous": False,
                "can_manage_chat": True,
                "can_delete_messages": True,
                "can_manage_video_chats": False,
                "can_restrict_members": True,
                "can_promote_members": False,
                "can_change_info": True,
                "can_invite_users": True,
                "can_post_stories": False,
                "can_edit_stories": False,
                "can_delete_stories": False,
                "can_pin_messages": True,
            }
        return {"status": "member", "user": user}

    def _answer_callback(self, params: dict[str, Any]) -> bool:
        text = params.get("text")
        if isinstance(text, str) and utf16_length(text) > MAX_CALLBACK_TEXT:
            raise _ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        with self._state.lock:
            query_id = str(params.get("callback_query_id", ""))
            if query_id not in self._state.open_callbacks:
                raise _ApiError(400, QUERY_TOO_OLD)
            self._state.open_callbacks.discard(query_id)
        return True

    def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id, chat = self._chat_of(params)
        text = params.get("text")
        _check_text(text, params.get("parse_mode"))
        _check_markup(params.get("reply_markup"))
        message: dict[str, Any] = {
            "message_id": self._new_message_id(chat_id),
            "date": int(time.time()),
            "chat": chat,
            "from": self.bot_user,
            "text": text,
        }
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        with self._state.lock:
            self._state.messages[(chat_id, message["message_id"])] = message
        return message

    def _send_photo(self, params: dict[str, Any]) -> dict[str, Any]:
        """sendPhoto with an uploaded file, checked as Telegram checks one: at most 10 MB, an image it
        can decode, width + height at most 10,000 and a side ratio of at most 20; a caption of at most
        1024 characters after its entities are parsed."""
        chat_id, chat = self._chat_of(params)
        photo = params.get("photo")
        if not isinstance(photo, bytes):
            raise _ApiError(400, "Bad Request: there is no photo in the request")
        width, height = _check_photo(photo)
        caption = params.get("caption")
        if caption is not None:
            visible = (
                parse_html(caption) if str(params.get("parse_mode") or "").upper() == "HTML" else caption
            )
            if utf16_length(visible) > MAX_CAPTION:
                raise _ApiError(400, "Bad Request: message caption is too long")
        _check_markup(params.get("reply_markup"))
        message_id = self._new_message_id(chat_id)
        file_id = f"photo-{chat_id}-{message_id}"
        message: dict[str, Any] = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": chat,
            "from": self.bot_user,
            "photo": [
                {
                    "file_id": file_id,
                    "file_unique_id": file_id,
                    "width": width,
                    "height": height,
                    "file_size": len(photo),
                }
            ],
        }
        if caption is not None:
            message["caption"] = caption
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        with self._state.lock:
            self._state.messages[(chat_id, message_id)] = message
            self._state.photos[(chat_id, message_id)] = photo
        return message

    def photo(self, chat_id: int, message_id: int) -> bytes:
        """The bytes of a photo the bot sent (sendPhoto) as message `message_id` in `chat_id`."""
        with self._state.lock:
            return self._state.photos[(chat_id, message_id)]

    def _edit_message(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        chat_id, _ = self._chat_of(params)
        message_id = params.get("message_id")
        if not isinstance(message_id, int):
            raise _ApiError(400, "Bad Request: message identifier is not specified")
        _check_markup(params.get("reply_markup"))
        with self._state.lock:
            current = self._state.messages.get((chat_id, message_id))
            if current is None:
                raise _ApiError(400, "Bad Request: message to edit not found")
            updated = dict(current)
            if name == "editmessagetext":
                text = params.get("text")
                _check_text(text, params.get("parse_mode"))
                updated["text"] = text
            if params.get("reply_markup"):
                updated["reply_markup"] = params["reply_markup"]
            else:
                updated.pop("reply_markup", None)
            if updated.get("text") == current.get("text") and updated.get("reply_markup") == current.get(
                "reply_markup"
            ):
                raise _ApiError(400, NOT_MODIFIED)
            updated["edit_date"] = int(time.time())
            self._state.messages[(chat_id, message_id)] = updated
            return updated


def _user(user_id: int, first_name: str, language_code: str | None) -> dict[str, Any]:
    user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
    if language_code is not None:
        user["language_code"] = language_code
    return user


class _ApiError(Exception):
    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


def utf16_length(text: str) -> int:
    """A length as Telegram counts it: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


_HTML_TAGS = frozenset(
    {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a", "tg-emoji"}
    | {"code", "pre", "blockquote"}
)
_TAG_NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9-]*")
_ENTITY = re.compile(r"&(?:#[xX](?P<hex>[0-9a-fA-F]{1,6})|#(?P<dec>[0-9]{1,7})|(?P<name>[a-zA-Z]+));")
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


def _refuse(reason: str) -> _ApiError:
    return _ApiError(400, f"Bad Request: can't parse entities: {reason}")


def _read_tag(text: str, i: int, stack: list[str]) -> int:
    """The tag at text[i] ('<') pushed on or popped off `stack`; returns the index after it."""
    offset = len(text[:i].encode())
    end = text.find(">", i)
    if end == -1:
        raise _refuse(f"Unclosed start tag at byte offset {offset}")
    inner = text[i + 1 : end]
    if inner.startswith("/"):
        name = inner[1:].strip().lower()
        if not stack or stack[-1] != name:
            expected = f'"</{stack[-1]}>"' if stack else "nothing"
            raise _refuse(
                f'Unmatched end tag at byte offset {offset}, expected {expected}, found "</{name}>"'
            )
        stack.pop()
    else:
        match = _TAG_NAME.match(inner)
        name = match.group(0).lower() if match else inner
        if match is None or name not in _HTML_TAGS:
            raise _refuse(f'Unsupported start tag "{name}" at byte offset {offset}')
        stack.append(name)
    return end + 1


def _decode_entity(entity: re.Match[str], offset: int) -> str:
    if entity["name"] is not None:
        return _NAMED_ENTITIES.get(entity["name"].lower(), entity.group(0))  # others stay as they are
    code = int(entity["hex"], base=16) if entity["hex"] is not None else int(entity["dec"])
    if not 0 < code <= 0x10FFFF or 0xD800 <= code <= 0xDFFF:  # noqa: PLR2004
        raise _refuse(f"Invalid character entity at byte offset {offset}")
    return chr(code)


def parse_html(text: str) -> str:
    """The text Telegram shows for `text` in HTML parse mode (tags removed, entities decoded); raises
    the 400 Telegram answers when it does not parse: an unsupported or unbalanced tag, a bare `<`."""
    out: list[str] = []
    stack: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "<":
            i = _read_tag(text, i, stack)
        elif text[i] == "&" and (entity := _ENTITY.match(text, i)) is not None:
            out.append(_decode_entity(entity, len(text[:i].encode())))
            i = entity.end()
        else:
            out.append(text[i])
            i += 1
    if stack:
        raise _refuse(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return "".join(out)


def _check_text(text: Any, parse_mode: Any) -> None:
    """Telegram's checks of a message text: parsed entities, then not empty, then at most 4096 units."""
    if not isinstance(text, str):
        raise _ApiError(400, "Bad Request: message text is empty")
    visible = parse_html(text) if str(parse_mode or "").upper() == "HTML" else text
    if not visible.strip():
        raise _ApiError(400, "Bad Request: message text is empty")
    if utf16_length(visible) > MAX_TEXT:
        raise _ApiError(400, "Bad Request: message is too long")


PHOTO_MAX_BYTES = 10 * 1024 * 1024
PHOTO_MAX_SIDES = 10_000
PHOTO_MAX_RATIO = 20
MAX_CAPTION = 1024


def _check_photo(photo: bytes) -> tuple[int, int]:
    """Telegram's limits of a photo (decoded with Pillow): (width, height) when it passes."""
    if len(photo) > PHOTO_MAX_BYTES:
        raise _ApiError(400, "Bad Request: PHOTO_SAVE_FILE_INVALID")
    try:
        with Image.open(io.BytesIO(photo)) as image:
            image.verify()
            width, height = image.size
    except (OSError, SyntaxError, ValueError):
        raise _ApiError(400, "Bad Request: IMAGE_PROCESS_FAILED") from None
    if width + height > PHOTO_MAX_SIDES or max(width, height) > PHOTO_MAX_RATIO * min(width, height):
        raise _ApiError(400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
    return width, height


def _check_markup(markup: Any) -> None:
    if not markup:
        return
    for row in markup.get("inline_keyboard", []) if isinstance(markup, dict) else []:
        for button in row:
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= 64:  # noqa: PLR2004
                raise _ApiError(400, "Bad Request: BUTTON_DATA_INVALID")


def _decode(key: str, value: str) -> Any:
    if key in _TEXT_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


async def _read_params(request: Request) -> dict[str, Any]:
    params: dict[str, Any] = {k: _decode(k, v) for k, v in request.query_params.items()}
    content_type = request.headers.get("content-type", "")
    if request.method != "POST":
        return params
    if content_type.startswith("application/json"):
        body = await request.json()
        if isinstance(body, dict):
            params.update(body)
    elif content_type.startswith("multipart/form-data"):
        # Telegram's limit on an uploaded photo is 10 MB; the form parser must take a little more, so
        # that the check below (not the parser) refuses it, as Telegram does
        form = await request.form(max_part_size=PHOTO_MAX_BYTES + 1024 * 1024)
        files = {k: await v.read() for k, v in form.items() if not isinstance(v, str)}
        for key, value in form.items():
            if isinstance(value, str):
                # an upload named in a parameter as `attach://<field>` (PTB's InputMedia) is that file
                params[key] = files.get(value.removeprefix("attach://"), _decode(key, value))
            else:
                params[key] = files[key]
    else:
        raw = (await request.body()).decode()
        params.update({k: _decode(k, v) for k, v in parse_qsl(raw, keep_blank_values=True)})
    return params
