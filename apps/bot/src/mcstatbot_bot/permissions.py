"""Who may change what a chat has set up (its watches, settings, language): anyone in a private chat; in a
group only its administrators (Telegram's `creator` or `administrator`, and an anonymous administrator, who
writes as the group itself). The check asks the Bot API (`getChatMember`) each time: a demoted admin loses
the right at once, and it is only asked for commands that change something."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import TelegramError

if TYPE_CHECKING:
    from telegram import Bot, Update

log = logging.getLogger(__name__)

_ADMIN = frozenset({ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR})


async def may_change_chat(update: Update, bot: Bot) -> bool:
    """True when the sender of `update` may change this chat's set-up. A Bot API failure answers False
    (the change is refused and the user may try again), never an exception."""
    chat, user = update.effective_chat, update.effective_user
    if chat is None:
        return False
    if chat.type == ChatType.PRIVATE:
        return True
    message = update.effective_message
    if message is not None and message.sender_chat is not None and message.sender_chat.id == chat.id:
        return True  # an anonymous administrator writes as the group itself
    if user is None:
        return False
    try:
        member = await bot.get_chat_member(chat.id, user.id)
    except TelegramError as exc:
        log.warning("getChatMember for chat %s failed: %s", chat.id, exc)
        return False
    return member.status in _ADMIN
