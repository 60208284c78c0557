"""The bot's languages: gettext catalogues (Babel), the language of the update being handled, and numbers,
times and durations formatted for it.

The catalogues are `locales/<language>/LC_MESSAGES/messages.po`, extracted from the code into
`locales/messages.pot` (`scripts/update-messages.sh`, docs/bot-service.md "Localization"). English is the
source language: its texts are the msgids themselves. The `.po` files are read (and compiled in memory by
Babel) once per language, when that language is first used; the wheel and the image carry them as
package data.

The language is a context variable, set per update (`use`): PTB handles each update in its own task,
so concurrent updates in different languages never see each other's.
"""

from __future__ import annotations

import contextlib
import functools
import gettext
import io
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from babel.dates import format_datetime, format_timedelta
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import Translations

if TYPE_CHECKING:
    from collections.abc import Iterator

DEFAULT = "en"
LANGUAGES = ("en", "de", "es", "pt_BR", "ru", "uk", "tr")
"""Every language the bot speaks, English (the source) first."""
LANGUAGE_NAMES = {
    "en": "English",
    "de": "Deutsch",
    "es": "Español",
    "pt_BR": "Português (Brasil)",
    "ru": "Русский",
    "uk": "Українська",
    "tr": "Türkçe",
}
"""Each language in its own name (the /language buttons)."""
LOCALES_DIR = Path(__file__).parent / "locales"
DOMAIN = "messages"
# Telegram's language_code is an IETF tag (`de`, `pt-br`, `en-US`); Portuguese speakers get Brazilian
_ALIASES = {"pt": "pt_BR", "pt_br": "pt_BR"}
_current: ContextVar[str] = ContextVar("mcstatbot_language", default=DEFAULT)


def language_for(code: str | None) -> str:
    """The bot's language for a Telegram `language_code` (`pt-br` -> `pt_BR`, `de-AT` -> `de`); English
    for anything it does not speak."""
    if not code:
        return DEFAULT
    tag = code.strip().replace("-", "_").lower()
    if tag in _ALIASES:
        return _ALIASES[tag]
    base = tag.split("_", 1)[0]
    if base in _ALIASES:
        return _ALIASES[base]
    return base if base in LANGUAGES else DEFAULT


def known(language: str | None) -> str | None:
    """`language` when the bot speaks it (a stored setting, a button), else None."""
    return language if language in LANGUAGES else None


def po_path(language: str) -> Path:
    return LOCALES_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@functools.cache
def translations(language: str) -> gettext.NullTranslations:
    """The catalogue of `language` (English: the msgids as they are, with English plural rules)."""
    if language == DEFAULT or language not in LANGUAGES:
        return gettext.NullTranslations()
    with po_path(language).open("rb") as po:
        catalog = read_po(po, locale=language, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def use(language: str) -> None:
    """Speak `language` for the rest of this task (the update being handled)."""
    _current.set(language if language in LANGUAGES else DEFAULT)


@contextlib.contextmanager
def speaking(language: str) -> Iterator[None]:
    """Speak `language` inside the block only, then the language before it again: for one task that
    renders texts for several chats in turn (the watcher's alerts and live cards)."""
    token = _current.set(language if language in LANGUAGES else DEFAULT)
    try:
        yield
    finally:
        _current.reset(token)


def current() -> str:
    return _current.get()


def _(message: str) -> str:
    """`message` in the current language."""
    return translations(_current.get()).gettext(message)


def ngettext(singular: str, plural: str, count: int) -> str:
    """The form of `singular`/`plural` for `count` in the current language (its own plural rules)."""
    return translations(_current.get()).ngettext(singular, plural, count)


def N_(message: str) -> str:  # noqa: N802 - gettext's name for "mark for extraction, translate later"
    """Marks `message` for extraction; it is translated where it is used (`_(...)`)."""
    return message


def number(value: float, *, digits: int = 0) -> str:
    """`value` as the current language writes numbers (`1,234` / `1.234` / `1 234`)."""
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    return format_decimal(value, format=pattern, locale=_current.get())


def moment(value: datetime) -> str:
    """A point in time, as the current language writes it, in UTC (`Nov 28, 2026, 9:00:05 AM UTC`)."""
    text = format_datetime(value.astimezone(UTC), "medium", tzinfo=UTC, locale=_current.get())
    return f"{text} UTC"


def duration(seconds: float) -> str:
    """A length of time in the current language, to its largest whole unit (`5 minutes`, `10 Sekunden`)."""
    return format_timedelta(timedelta(seconds=max(0, int(seconds))), threshold=1, locale=_current.get())


def ago(seconds: float) -> str:
    """How long ago, in the current language's own words (`5 minutes ago`, `vor 5 Minuten`)."""
    # at least a second: Babel words a zero duration as the future ("in 0 seconds")
    return format_timedelta(
        timedelta(seconds=-max(1, int(seconds))), threshold=1, add_direction=True, locale=_current.get()
    )


def later(seconds: float) -> str:
    """How long from now, in the current language's own words (`in 40 seconds`, `через 40 секунд`)."""
    return format_timedelta(
        timedelta(seconds=max(1, int(seconds))), threshold=1, add_direction=True, locale=_current.get()
    )
