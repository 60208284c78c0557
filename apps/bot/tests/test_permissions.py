"""`may_change_chat` through PTB's real Bot talking HTTP to the Bot API test server's getChatMember."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mcstatbot_bot.permissions import may_change_chat
from telegram import Bot, Update

if TYPE_CHECKING:
    from mcstatbot_testkit.telegram import BotApiServer

GROUP = -100123


def _update(bot: Bot, chat_id: int, user_id: int, *, sender_chat: int | None = None) -> Update:
    chat = {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"}
    message: dict[str, object] = {
        "message_id": 1,
        "date": 0,
        "chat": chat,
        "from": {"id": user_id, "is_bot": False, "first_name": "u"},
        "text": "/watch a.example",
    }
    if sender_chat is not None:
        message["sender_chat"] = {"id": sender_chat, "type": "supergroup", "title": "g"}
    return Update.de_json({"update_id": 1, "message": message}, bot)


async def test_private_chat_anyone_group_only_admins(api: BotApiServer) -> None:
    api.set_admins(GROUP, [7, 8])
    async with Bot(api.token, base_url=f"{api.base_url}/bot") as bot:
        assert await may_change_chat(_update(bot, 42, 42), bot)
        assert await may_change_chat(_update(bot, GROUP, 7), bot)  # creator
        assert await may_change_chat(_update(bot, GROUP, 8), bot)  # administrator
        assert not await may_change_chat(_update(bot, GROUP, 9), bot)  # member
        anonymous_admin = _update(bot, GROUP, 1087968824, sender_chat=GROUP)
        assert await may_change_chat(anonymous_admin, bot)
    asked = api.calls_to("getChatMember")
    assert [c.params["user_id"] for c in asked] == [7, 8, 9]


async def test_bot_api_failure_refuses_without_raising(api: BotApiServer) -> None:
    api.set_admins(GROUP, [7])
    api.fail_next("getChatMember", 500, "Internal Server Error")
    async with Bot(api.token, base_url=f"{api.base_url}/bot") as bot:
        assert not await may_change_chat(_update(bot, GROUP, 7), bot)
        assert await may_change_chat(_update(bot, GROUP, 7), bot)
