"""No reply twice, none lost: an update's claim after its handling was cancelled, failed or ran long.

Real parts: the bot's own PTB Application (`telegram_api.build_application`, so every Bot API call goes
through the send budget, which tells the run what was sent) talking HTTP to the Bot API test server, and
each state store backend (memory, SQLite, DynamoDB Local) behind the ResilientStore. The handlers are the
test's own (send a message, then hang or raise; or hang before sending), registered on the Application
as the bot's are; the error handler marks the run failed as the bot's does. A redelivery is the same
update run again, as the webhook endpoint runs it when Telegram (here the test server) delivers it again.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
from mcstatbot_bot.settings import BotSettings
from mcstatbot_bot.state import ResilientStore
from mcstatbot_bot.telegram_api import build_application
from mcstatbot_bot.updates import Outcome, UpdateRunner, mark_current_update_failed
from telegram import Update
from telegram.constants import ChatAction
from telegram.ext import MessageHandler, filters

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from mcstatbot_bot.state import StateStore
    from mcstatbot_bot.updates import BotApplication
    from mcstatbot_testkit.telegram import BotApiServer
    from telegram.ext import ContextTypes

    Context = ContextTypes.DEFAULT_TYPE


class Script:
    """What the test's handler does for each chat: a list of steps, in order: "send" (sendMessage),
    "typing" (sendChatAction), "hang" (wait until cancelled), "raise" (a bug). `hanging(chat)` is set
    once the handler hangs (the calls before it have returned)."""

    def __init__(self) -> None:
        self.steps: dict[int, list[str]] = {}
        self.started: dict[int, int] = {}
        self._hanging: dict[int, asyncio.Event] = {}

    def hanging(self, chat_id: int) -> asyncio.Event:
        return self._hanging.setdefault(chat_id, asyncio.Event())

    async def handle(self, update: Update, context: Context) -> None:
        chat = update.effective_chat
        assert chat is not None
        self.started[chat.id] = self.started.get(chat.id, 0) + 1
        for step in self.steps[chat.id]:
            if step == "send":
                await context.bot.send_message(chat.id, "the answer")
            elif step == "typing":
                await context.bot.send_chat_action(chat.id, ChatAction.TYPING)
            elif step == "hang":
                self.hanging(chat.id).set()
                await asyncio.Event().wait()
            else:
                raise RuntimeError("a step after the reply failed")


async def on_error(_update: object, _context: Context) -> None:
    mark_current_update_failed()  # what the bot's error handler does for a failure that is not a refusal


@pytest.fixture
async def bot(api: BotApiServer) -> AsyncIterator[tuple[BotApplication, Script]]:
    application = build_application(
        BotSettings(telegram_bot_token=api.token, telegram_api_base_url=api.base_url), webhook=True
    )
    script = Script()
    application.add_handler(MessageHandler(filters.ALL, script.handle))
    application.add_error_handler(on_error)
    async with application:
        yield application, script


def message(application: BotApplication, update_id: int, chat_id: int) -> Update:
    body: dict[str, Any] = {
        "update_id": update_id,
        "message": {
            "message_id": 1,
            "date": 1_700_000_000,
            "chat": {"id": chat_id, "type": "private"},
            "from": {"id": chat_id, "is_bot": False, "first_name": "T"},
            "text": "/status play.example.com",
        },
    }
    return Update.de_json(body, application.bot)


def sent(api: BotApiServer, chat_id: int) -> int:
    return len([c for c in api.calls_to("sendMessage", chat_id) if c.ok])


async def start(runner: UpdateRunner, application: BotApplication, update: Update) -> asyncio.Task[Outcome]:
    return asyncio.create_task(runner.run(update, application.process_update_directly))


async def cancelled(task: asyncio.Task[Outcome]) -> None:
    """Cancel `task` as uvicorn cancels a request at the graceful-shutdown timeout, and let it end."""
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_cancelled_after_its_reply_the_redelivery_is_a_duplicate(
    api: BotApiServer, store: StateStore, bot: tuple[BotApplication, Script]
) -> None:
    application, script = bot
    runner = UpdateRunner(ResilientStore(store), lease_seconds=60)
    chat = 41_001
    script.steps[chat] = ["send", "hang"]  # e.g. a store write after the reply that takes too long
    task = await start(runner, application, message(application, 5_001, chat))
    await asyncio.wait_for(script.hanging(chat).wait(), 15)
    await cancelled(task)

    script.steps[chat] = ["send"]
    assert await runner.run(message(application, 5_001, chat), application.process_update_directly) == (
        Outcome.DUPLICATE
    )
    assert script.started[chat] == 1
    assert sent(api, chat) == 1


async def test_cancelled_before_anything_was_sent_the_redelivery_is_answered_once(
    api: BotApiServer, store: StateStore, bot: tuple[BotApplication, Script]
) -> None:
    application, script = bot
    runner = UpdateRunner(ResilientStore(store), lease_seconds=60)
    chat = 41_002
    script.steps[chat] = ["typing", "hang"]  # "typing…" is no reply
    task = await start(runner, application, message(application, 5_002, chat))
    await asyncio.wait_for(script.hanging(chat).wait(), 15)
    await cancelled(task)
    assert sent(api, chat) == 0

    script.steps[chat] = ["send"]
    update = message(application, 5_002, chat)
    assert await runner.run(update, application.process_update_directly) is Outcome.HANDLED
    assert await runner.run(update, application.process_update_directly) is Outcome.DUPLICATE
    assert script.started[chat] == 2
    assert sent(api, chat) == 1


async def test_a_failure_after_the_reply_acknowledges_the_update(
    api: BotApiServer, store: StateStore, bot: tuple[BotApplication, Script]
) -> None:
    """A handler that raises after its message went out: acknowledged (the webhook answers 200), and a
    redelivery is a duplicate; one that fails before sending anything is still redelivered and answered."""
    application, script = bot
    runner = UpdateRunner(ResilientStore(store), lease_seconds=60)
    chat, other = 41_003, 41_004
    script.steps[chat] = ["send", "raise"]
    update = message(application, 5_003, chat)
    assert await runner.run(update, application.process_update_directly) is Outcome.HANDLED
    assert await runner.run(update, application.process_update_directly) is Outcome.DUPLICATE
    assert sent(api, chat) == 1

    script.steps[other] = ["raise"]
    update = message(application, 5_004, other)
    assert await runner.run(update, application.process_update_directly) is Outcome.FAILED
    script.steps[other] = ["send"]
    assert await runner.run(update, application.process_update_directly) is Outcome.HANDLED
    assert sent(api, other) == 1


async def test_a_second_cancellation_does_not_stop_the_claim_being_finished(
    api: BotApiServer, store: StateStore, bot: tuple[BotApplication, Script]
) -> None:
    """Cancelled again while its claim is being finished (shutdown goes on): the finish still lands, and
    `settle` (what the lifespan awaits before it closes the store) waits for it."""
    application, script = bot
    runner = UpdateRunner(ResilientStore(store), lease_seconds=60)
    chat = 41_005
    script.steps[chat] = ["send", "hang"]
    task = await start(runner, application, message(application, 5_005, chat))
    await asyncio.wait_for(script.hanging(chat).wait(), 15)
    task.cancel()
    await asyncio.sleep(0)  # the run catches the first cancellation and starts finishing its claim
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await runner.settle(10)

    script.steps[chat] = ["send"]
    assert await runner.run(message(application, 5_005, chat), application.process_update_directly) == (
        Outcome.DUPLICATE
    )
    assert sent(api, chat) == 1


async def test_a_handling_ends_before_its_lease_so_no_other_replica_takes_it_over(
    api: BotApiServer, store: StateStore, bot: tuple[BotApplication, Script]
) -> None:
    """Two replicas on one store with a short lease: one's handling hangs after its reply (a loaded
    machine), the redelivery reaches the other after the lease: a duplicate, not a second reply. One
    that hangs before replying is stopped and released, and the redelivery answers it."""
    application, script = bot
    lease = 2.0
    first = UpdateRunner(ResilientStore(store), lease_seconds=lease)
    second = UpdateRunner(ResilientStore(store), lease_seconds=lease)
    chat, other = 41_006, 41_007
    script.steps[chat] = ["send", "hang"]
    script.steps[other] = ["hang"]
    replied = await start(first, application, message(application, 5_006, chat))
    silent = await start(first, application, message(application, 5_007, other))
    await asyncio.wait_for(script.hanging(chat).wait(), 15)
    await asyncio.sleep(lease + 0.5)  # the lease is over

    script.steps[chat] = script.steps[other] = ["send"]
    assert await second.run(message(application, 5_006, chat), application.process_update_directly) == (
        Outcome.DUPLICATE
    )
    assert await second.run(message(application, 5_007, other), application.process_update_directly) == (
        Outcome.HANDLED
    )
    assert await replied is Outcome.HANDLED  # stopped within its share of the lease, finished
    assert await silent is Outcome.FAILED  # stopped, released
    assert sent(api, chat) == 1
    assert sent(api, other) == 1
