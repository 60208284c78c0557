"""The Bot API test server against the real python-telegram-bot client, over HTTP on loopback."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
import uvicorn
from fastapi import FastAPI, Request, Response
from mcstatbot_testkit.net import LOOPBACK, async_wait_for_tcp, free_port
from mcstatbot_testkit.telegram import BotApiServer

if TYPE_CHECKING:
    from collections.abc import Iterator
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InputTextMessageContent,
    Message,
)
from telegram.error import BadRequest, RetryAfter
from telegram.ext import AIORateLimiter, ExtBot


@pytest.fixture
def api() -> Iterator[BotApiServer]:
    with BotApiServer(redelivery_delay=0.05) as server:
        yield server


def _bot(api: BotApiServer) -> Bot:
    return Bot(api.token, base_url=f"{api.base_url}/bot")


async def test_get_me_send_edit_and_not_modified(api: BotApiServer) -> None:
    async with _bot(api) as bot:
        assert bot.username == api.bot_username
        markup = InlineKeyboardMarkup([[InlineKeyboardButton("Status", callback_data="x|1")]])
        first = await bot.send_message(42, "hello <b>world</b>", parse_mode="HTML", reply_markup=markup)
        second = await bot.send_message(42, "again")
        assert (first.message_id, second.message_id) == (1, 2)
        await bot.edit_message_text("changed", chat_id=42, message_id=1, reply_markup=markup)
        assert api.message(42, 1)["text"] == "changed"
        with pytest.raises(BadRequest, match="not modified"):
            await bot.edit_message_text("changed", chat_id=42, message_id=1, reply_markup=markup)
        api.not_modified_next()
        with pytest.raises(BadRequest, match="not modified"):
            await bot.edit_message_text("other", chat_id=42, message_id=1, reply_markup=markup)
    sent = api.calls_to("sendMessage", 42)
    assert [c.text for c in sent] == ["hello <b>world</b>", "again"]
    assert sent[0].params["parse_mode"] == "HTML"
    assert sent[0].button_data() == ["x|1"]


async def test_429_is_reported_and_rate_limiter_retries(api: BotApiServer) -> None:
    async with _bot(api) as bot:
        api.fail_next("sendMessage", 429, retry_after=1)
        with pytest.raises(RetryAfter):
            await bot.send_message(1, "x")
    api.fail_next("sendMessage", 429, retry_after=1)
    limited = ExtBot(api.token, base_url=f"{api.base_url}/bot", rate_limiter=AIORateLimiter(max_retries=2))
    async with limited:
        message = await limited.send_message(1, "retried")
    assert message.text == "retried"
    codes = [c.error_code for c in api.calls_to("sendMessage", 1)]
    assert codes == [429, 429, None]


async def test_get_updates_long_poll_and_offset_confirms(api: BotApiServer) -> None:
    async with _bot(api) as bot:
        assert await bot.get_updates(timeout=0) == ()
        waiter = asyncio.create_task(bot.get_updates(timeout=5))
        await asyncio.sleep(0.2)
        sent = api.send_text(-100, "/status@mcstatbot_test_bot example.org", chat_type="group", user_id=7)
        updates = await waiter
        assert [u.update_id for u in updates] == [sent["update_id"]]
        message = updates[0].message
        assert message is not None
        assert message.chat.type == "group"
        assert message.from_user is not None
        assert message.from_user.id == 7
        assert message.entities[0].type == "bot_command"
        assert message.entities[0].length == len("/status@mcstatbot_test_bot")
        # not confirmed yet: delivered again
        again = await bot.get_updates(timeout=0)
        assert [u.update_id for u in again] == [sent["update_id"]]
        await bot.get_updates(offset=sent["update_id"] + 1, timeout=0)
    assert api.pending_update_ids == []


async def test_press_button_carries_current_message(api: BotApiServer) -> None:
    async with _bot(api) as bot:
        markup = InlineKeyboardMarkup([[InlineKeyboardButton("Players", callback_data="p")]])
        msg = await bot.send_message(5, "card", reply_markup=markup)
        await bot.edit_message_text("card 2", chat_id=5, message_id=msg.message_id, reply_markup=markup)
        reply = api.calls_to("sendMessage", 5)[0]
        with pytest.raises(AssertionError):
            api.press_button(reply, "nope")
        update = api.press_button(reply, "p")
        got = (await bot.get_updates(timeout=1))[0]
        assert got.update_id == update["update_id"]
        assert got.callback_query is not None
        assert got.callback_query.data == "p"
        assert got.callback_query.message is not None
        assert isinstance(got.callback_query.message, Message)
        assert got.callback_query.message.text == "card 2"
        assert await bot.answer_callback_query(got.callback_query.id)


async def test_webhook_redelivers_until_acknowledged(api: BotApiServer) -> None:
    answers = [500, 503]  # then 200
    seen: list[tuple[int, str | None]] = []
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> Response:
        body = await request.json()
        seen.append((body["update_id"], request.headers.get("X-Telegram-Bot-Api-Secret-Token")))
        return Response(status_code=answers.pop(0) if answers else 200)

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host=LOOPBACK, port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    await async_wait_for_tcp(port)
    try:
        async with _bot(api) as bot:
            assert await bot.set_webhook(f"http://{LOOPBACK}:{port}/hook", secret_token="s3cret")  # noqa: S106 - test secret
            with pytest.raises(Exception, match="webhook is active"):
                await bot.get_updates(timeout=0)
            update = api.send_text(9, "/start")
            for _ in range(200):
                if not api.pending_update_ids:
                    break
                await asyncio.sleep(0.02)
            assert api.pending_update_ids == []
            assert seen == [(update["update_id"], "s3cret")] * 3
            assert [d.status for d in api.deliveries] == [500, 503, 200]
            info = await bot.get_webhook_info()
            assert info.url.endswith("/hook")
    finally:
        server.should_exit = True
        await serving


async def test_webhook_connection_error_is_redelivered(api: BotApiServer) -> None:
    port = free_port()
    api.set_webhook(f"http://{LOOPBACK}:{port}/hook")  # nothing listens yet
    update = api.send_text(3, "hi")
    for _ in range(100):
        if len(api.deliveries) >= 2:
            break
        await asyncio.sleep(0.02)
    assert all(d.status is None for d in api.deliveries)
    assert api.pending_update_ids == [update["update_id"]]
    api.delete_webhook(drop_pending_updates=True)


async def test_wrong_token_is_unauthorized(api: BotApiServer) -> None:
    bot = Bot("1:wrong-token-xxxxxxxxxxxxxxxxxxxxxx", base_url=f"{api.base_url}/bot")
    with pytest.raises(Exception, match="rejected"):
        await bot.initialize()


async def test_refuses_what_telegram_refuses(api: BotApiServer) -> None:
    async with _bot(api) as bot:
        # 4096 after the entities are parsed, counted in UTF-16 code units
        await bot.send_message(42, "&amp;" * 4096, parse_mode="HTML")
        await bot.send_message(42, "<b>" + "x" * 4096 + "</b>", parse_mode="HTML")
        await bot.send_message(42, "😀" * 2048)
        for too_long in ("&amp;" * 4097, "😀" * 2049, "&#128512;" * 2049):
            with pytest.raises(BadRequest, match=r"(?i)message is too long"):
                await bot.send_message(42, too_long, parse_mode="HTML")
        for empty in ("<b></b>", "<i> </i>", ""):
            with pytest.raises(BadRequest, match=r"(?i)text is empty"):
                await bot.send_message(42, empty, parse_mode="HTML")
        for broken in ("<x>y</x>", "<b>open", "a < b", "<b><i>x</b></i>", "</b>", "&#xD800;"):
            with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
                await bot.send_message(42, broken, parse_mode="HTML")
        await bot.send_message(42, "a < b &foo; </x>")  # no parse mode: plain text
        with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
            await bot.edit_message_text("x", chat_id=42, message_id=999)
        sent = await bot.send_message(43, "to be deleted")
        api.delete_message(43, sent.message_id)
        with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
            await bot.edit_message_text("x", chat_id=43, message_id=sent.message_id)
        with pytest.raises(BadRequest, match=r"(?i)text is empty"):
            await bot.edit_message_text("<b></b>", chat_id=42, message_id=1, parse_mode="HTML")

        # callback answers: at most 200 characters, only for a query that was sent, once
        markup = InlineKeyboardMarkup([[InlineKeyboardButton("B", callback_data="d")]])
        message = await bot.send_message(44, "buttons", reply_markup=markup)
        first = api.press_button(message.to_dict(), "d")["callback_query"]["id"]
        second = api.press_button(message.to_dict(), "d")["callback_query"]["id"]
        with pytest.raises(BadRequest, match=r"(?i)MESSAGE_TOO_LONG"):
            await bot.answer_callback_query(first, "x" * 201)
        assert await bot.answer_callback_query(first, "x" * 200)
        with pytest.raises(BadRequest, match=r"(?i)query is too old"):
            await bot.answer_callback_query(first)  # answered already
        with pytest.raises(BadRequest, match=r"(?i)query is too old"):
            await bot.answer_callback_query("12345")  # never sent
        assert await bot.answer_callback_query(second)
        pressed = api.press_button(message.to_dict(), "d", inaccessible=True)
    assert pressed["callback_query"]["message"] == {
        "chat": message.chat.to_dict(),
        "message_id": message.message_id,
        "date": 0,
    }


async def test_inline_queries_answered_and_refused_as_telegram_refuses(api: BotApiServer) -> None:
    def article(result_id: str, text: str = "<b>card</b>") -> InlineQueryResultArticle:
        return InlineQueryResultArticle(result_id, "title", InputTextMessageContent(text, parse_mode="HTML"))

    async with _bot(api) as bot:
        refused = {
            "RESULTS_TOO_MUCH": [article(str(i)) for i in range(51)],
            "RESULT_ID_INVALID": [article("x" * 65)],
            "RESULT_ID_DUPLICATE": [article("a"), article("a")],
            "can't parse entities": [article("a", "<b>unclosed")],
        }
        for error, results in refused.items():
            query_id = api.send_inline_query(5, "q")["inline_query"]["id"]
            with pytest.raises(BadRequest, match=f"(?i){error}"):  # PTB capitalises the description
                await bot.answer_inline_query(query_id, results)
            assert api.inline_answer(query_id) is None
        query_id = api.send_inline_query(5, "q")["inline_query"]["id"]
        markup = InlineKeyboardMarkup([[InlineKeyboardButton("Status", callback_data="x|1")]])
        fifty = [article(str(i)) for i in range(49)]
        fifty.append(
            InlineQueryResultArticle(
                "i" * 64,
                "card",
                InputTextMessageContent("<b>card</b>", parse_mode="HTML"),
                reply_markup=markup,
            )
        )
        assert await bot.answer_inline_query(query_id, fifty, cache_time=30)
        with pytest.raises(BadRequest, match=r"(?i)query is too old"):  # answered already
            await bot.answer_inline_query(query_id, fifty)
        inline_id = api.choose_inline_result(query_id, "i" * 64)
        assert api.inline_message(inline_id)["text"] == "<b>card</b>"
        api.press_inline_button(inline_id, "x|1")
        update = (await bot.get_updates())[-1]
        assert update.callback_query is not None
        assert update.callback_query.message is None
        assert update.callback_query.inline_message_id == inline_id
        assert await bot.edit_message_text(
            "<i>edited</i>", inline_message_id=inline_id, parse_mode="HTML", reply_markup=markup
        )
        assert api.inline_message(inline_id)["text"] == "<i>edited</i>"
        with pytest.raises(BadRequest, match="not modified"):
            await bot.edit_message_text(
                "<i>edited</i>", inline_message_id=inline_id, parse_mode="HTML", reply_markup=markup
            )
        with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
            await bot.edit_message_text("<i>bad", inline_message_id=inline_id, parse_mode="HTML")


async def test_commands_per_language(api: BotApiServer) -> None:
    async with _bot(api) as bot:
        await bot.set_my_commands([("status", "Status")])
        await bot.set_my_commands([("status", "Statut")], language_code="de")
        with pytest.raises(BadRequest, match="language code"):
            await bot.set_my_commands([("status", "x")], language_code="pt_BR")
    assert [c["description"] for c in api.commands] == ["Status"]
    assert [c["description"] for c in api.commands_for("de")] == ["Statut"]
    assert api.commands_for("ru") == []


def _png(width: int, height: int, *, noise: bool = False) -> bytes:
    import io  # noqa: PLC0415
    import os  # noqa: PLC0415

    from PIL import Image  # noqa: PLC0415

    if noise:  # random pixels do not compress: a PNG about as large as its raw pixels
        image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    else:
        image = Image.new("RGB", (width, height), "white")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


async def test_send_photo_upload_and_telegrams_photo_limits(api: BotApiServer) -> None:
    async with _bot(api) as bot:
        photo = _png(1280, 960)
        sent = await bot.send_photo(42, photo, caption="<b>chart</b>", parse_mode="HTML", filename="c.png")
        assert sent.photo[-1].width == 1280
        assert sent.photo[-1].height == 960
        assert sent.caption == "<b>chart</b>"
        assert api.photo(42, sent.message_id) == photo
        for bad, reason in [
            (_png(6000, 4001), "PHOTO_INVALID_DIMENSIONS"),  # width + height over 10,000
            (_png(2100, 100), "PHOTO_INVALID_DIMENSIONS"),  # a ratio over 20
            (_png(1900, 1900, noise=True), "PHOTO_SAVE_FILE_INVALID"),  # over 10 MB
            (b"not an image at all", "IMAGE_PROCESS_FAILED"),
        ]:
            with pytest.raises(BadRequest, match=f"(?i){reason}"):  # PTB words it "Photo_invalid_..."
                await bot.send_photo(42, bad, filename="bad.png")
        with pytest.raises(BadRequest, match="caption is too long"):
            await bot.send_photo(42, photo, caption="x" * 1025, filename="c.png")
        ok = await bot.send_photo(42, _png(2000, 100), filename="wide.png")  # a ratio of exactly 20
        assert ok.photo[-1].width == 2000
