"""The inline buttons under every server reply, and their callback_data.

callback_data names the server the message shows, so a press works on any message, also an old one
and after a restart: `v1|<action>|<edition>|<address>` (action s=status, p=players, a=about, h=history,
w=watch (under "no history yet"); edition
a=auto, j=java, b=bedrock). When that is longer than Telegram's 64 bytes (long host names), it is
`v1|<action>|#<ref>` with a short id resolved through the state store.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from dataclasses import dataclass
from enum import StrEnum

from mcstatbot_common.addresses import InvalidAddressError, parse_address
from mcstatbot_common.models import Edition
from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from mcstatbot_bot import formatting, i18n
from mcstatbot_bot.state.base import ServerRef

MAX_CALLBACK_DATA = 64
VERSION = "v1"


class Action(StrEnum):
    STATUS = "s"
    PLAYERS = "p"
    ABOUT = "a"
    HISTORY = "h"
    WATCH = "w"


ACTION_NAMES = {
    Action.STATUS: "status",
    Action.PLAYERS: "players",
    Action.ABOUT: "about",
    Action.HISTORY: "history",
    Action.WATCH: "watch",
}
HISTORY_PATTERN = rf"^{VERSION}\|[{Action.HISTORY.value}{Action.WATCH.value}]\|"
"""callback_data of the History and Watch buttons (history_handlers), before the cards' catch-all."""
_EDITION_CODES = {Edition.AUTO: "a", Edition.JAVA: "j", Edition.BEDROCK: "b"}
_EDITIONS = {code: edition for edition, code in _EDITION_CODES.items()}


class InvalidCallbackError(ValueError):
    """The callback_data is not one of ours (or from an older, unsupported format)."""


@dataclass(frozen=True, slots=True)
class Press:
    """A decoded button: the action and either the server itself or a reference to look up."""

    action: Action
    server: ServerRef | None = None
    ref: str | None = None


def ref_for(server: ServerRef) -> str:
    """A short, stable id for a server (the same server always gets the same id)."""
    digest = hashlib.sha256(server.key.encode()).digest()[:9]
    return base64.urlsafe_b64encode(digest).decode()


def encode(action: Action, server: ServerRef) -> tuple[str, str | None]:
    """(callback_data, ref): `ref` is set when the server did not fit and must be stored under it."""
    data = f"{VERSION}|{action.value}|{_EDITION_CODES[server.edition]}|{server.address}"
    if len(data.encode()) <= MAX_CALLBACK_DATA:
        return data, None
    ref = ref_for(server)
    return f"{VERSION}|{action.value}|#{ref}", ref


def decode(data: str) -> Press:
    parts = data.split("|", 3)
    if len(parts) < 3 or parts[0] != VERSION:  # noqa: PLR2004
        raise InvalidCallbackError("unknown button")
    try:
        action = Action(parts[1])
    except ValueError:
        raise InvalidCallbackError("unknown action") from None
    if len(parts) == 3 and parts[2].startswith("#") and len(parts[2]) > 1:  # noqa: PLR2004
        return Press(action, ref=parts[2][1:])
    if len(parts) != 4 or parts[2] not in _EDITIONS:  # noqa: PLR2004
        raise InvalidCallbackError("malformed button")
    try:
        address = parse_address(parts[3])
    except InvalidAddressError:
        raise InvalidCallbackError("bad address in button") from None
    return Press(action, server=ServerRef(str(address), _EDITIONS[parts[2]]))


def keyboard(server: ServerRef, *, history: bool = False) -> tuple[InlineKeyboardMarkup, str | None]:
    """The Status / Players / About row for `server` (labels in the current language), with a History
    row under it for a server the chat watches, and the ref to store when one was needed."""
    return _keyboard(server, i18n.current(), history=history)


@functools.lru_cache(maxsize=4096)
def _keyboard(server: ServerRef, language: str, *, history: bool) -> tuple[InlineKeyboardMarkup, str | None]:
    """Cached: PTB's objects are immutable, and many replies are about the same few servers."""
    rows: list[list[InlineKeyboardButton]] = [[]]
    ref: str | None = None
    for action in (Action.STATUS, Action.PLAYERS, Action.ABOUT, *((Action.HISTORY,) if history else ())):
        data, needed = encode(action, server)
        ref = ref or needed
        label = i18n.translations(language).gettext(formatting.BUTTON_LABELS[action.value])
        button = InlineKeyboardButton(label, callback_data=data)
        if action is Action.HISTORY:
            rows.append([button])
        else:
            rows[0].append(button)
    return InlineKeyboardMarkup(rows), ref


def watch_keyboard(server: ServerRef) -> tuple[InlineKeyboardMarkup, str | None]:
    """The one button under "no history yet": watch the server."""
    data, ref = encode(Action.WATCH, server)
    label = i18n._(formatting.BUTTON_LABELS[Action.WATCH.value])
    return InlineKeyboardMarkup([[InlineKeyboardButton(label, callback_data=data)]]), ref


LANGUAGE_PREFIX = f"{VERSION}|l|"
"""callback_data of the /language buttons: `v1|l|<language>`."""
SETTINGS_PREFIX = f"{VERSION}|set|"
"""callback_data of the /settings buttons: `v1|set|language`, `v1|set|clear`."""


def language_keyboard() -> InlineKeyboardMarkup:
    """One button per language, each in its own name, two to a row."""
    buttons = [
        InlineKeyboardButton(i18n.LANGUAGE_NAMES[code], callback_data=f"{LANGUAGE_PREFIX}{code}")
        for code in i18n.LANGUAGES
    ]
    return InlineKeyboardMarkup([buttons[i : i + 2] for i in range(0, len(buttons), 2)])


def settings_keyboard(*, has_default: bool) -> InlineKeyboardMarkup:
    row = [
        InlineKeyboardButton(
            formatting.settings_language_button(), callback_data=f"{SETTINGS_PREFIX}language"
        )
    ]
    if has_default:
        row.append(
            InlineKeyboardButton(formatting.settings_clear_button(), callback_data=f"{SETTINGS_PREFIX}clear")
        )
    return InlineKeyboardMarkup([row])
