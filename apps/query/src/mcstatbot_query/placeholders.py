"""Placeholder answers: a host or proxy answering the Server List Ping for a server that is not running.

Aternos, exaroton, Minehut and proxies such as Velocity or BungeeCord with their backend down answer the
status request themselves, with a version name like "§4● Offline" or an offline MOTD. Such a server is
offline, whatever the answer says. The rules live in one data file (`data/placeholders.toml`, each with
its source); `classify()` tells which rule an answer matches, if any, and keeps the placeholder's text.

Pure: no I/O after the rules are read (once, from the package data).

    fields = StatusFields.from_java_response(response)   # an mcstatus JavaStatusResponse
    placeholder = classify(fields)
    if placeholder is not None:
        ...  # online: false, error code `placeholder`, placeholder.text kept
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mcstatus.responses import JavaStatusResponse

RULES_RESOURCE = "placeholders.toml"
"""The rules file, in the `mcstatbot_query.data` package."""

_FORMATTING = re.compile(r"§.?", re.DOTALL)
"""A section-sign formatting code (colour, style, reset); a lone § at the end too."""
_WHITESPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """What rules match against: no formatting codes, whitespace runs as one space, ends trimmed."""
    return _WHITESPACE.sub(" ", _FORMATTING.sub("", text)).strip()


@dataclass(frozen=True, slots=True)
class StatusFields:
    """The parts of a Java status answer that placeholder rules look at."""

    version_name: str
    motd: str
    """The MOTD as plain text (formatting codes may still be in it; they are removed before matching)."""
    players_online: int
    players_max: int
    protocol: int | None = None

    @classmethod
    def from_java_response(cls, response: JavaStatusResponse) -> StatusFields:
        """The fields of an mcstatus status answer (the MOTD as mcstatus's plain text)."""
        protocol = response.version.protocol
        return cls(
            version_name=str(response.version.name),
            motd=response.motd.to_plain(),
            players_online=int(response.players.online),
            players_max=int(response.players.max),
            protocol=protocol if isinstance(protocol, int) else None,
        )


@dataclass(frozen=True, slots=True)
class Placeholder:
    """A status answer recognised as a placeholder: which rule matched, and the placeholder's text."""

    rule: str
    """The rule's `id` in the data file (e.g. `aternos-offline`)."""
    host: str
    """Who answers like that (e.g. `Aternos`), for logs and the debug block."""
    text: str
    """The placeholder's text as the host sent it, formatting codes removed (e.g. `● Offline`)."""


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    host: str
    text_field: Literal["version", "motd"]
    version: re.Pattern[str] | None = None
    motd: re.Pattern[str] | None = None
    max_players: int | None = None
    online_players: int | None = None

    def matches(self, version: str, motd: str, fields: StatusFields) -> bool:
        return (
            (self.version is None or self.version.fullmatch(version) is not None)
            and (self.motd is None or self.motd.fullmatch(motd) is not None)
            and (self.max_players is None or fields.players_max == self.max_players)
            and (self.online_players is None or fields.players_online == self.online_players)
        )


_KNOWN_KEYS = {"id", "host", "text", "version", "motd", "max_players", "online_players"}


def parse_rules(data: dict[str, Any]) -> tuple[Rule, ...]:
    """Rules from the parsed TOML document; ValueError on an unknown key or a rule that checks nothing."""
    rules: list[Rule] = []
    seen: set[str] = set()
    for entry in data.get("rule", []):
        unknown = set(entry) - _KNOWN_KEYS
        if unknown:
            raise ValueError(f"placeholder rule {entry.get('id')!r}: unknown keys {sorted(unknown)}")
        rule_id = str(entry["id"])
        if rule_id in seen:
            raise ValueError(f"placeholder rule {rule_id!r} appears twice")
        seen.add(rule_id)
        text_field = entry.get("text", "motd")
        if text_field not in {"version", "motd"}:
            raise ValueError(f"placeholder rule {rule_id!r}: text must be 'version' or 'motd'")
        if "version" not in entry and "motd" not in entry:
            raise ValueError(f"placeholder rule {rule_id!r} must check the version or the MOTD")
        rules.append(
            Rule(
                id=rule_id,
                host=str(entry["host"]),
                text_field=text_field,
                version=_compile(entry.get("version")),
                motd=_compile(entry.get("motd")),
                max_players=entry.get("max_players"),
                online_players=entry.get("online_players"),
            )
        )
    return tuple(rules)


def _compile(pattern: str | None) -> re.Pattern[str] | None:
    return None if pattern is None else re.compile(pattern, re.IGNORECASE)


@cache
def load_rules() -> tuple[Rule, ...]:
    """The rules shipped with the package (read once)."""
    text = resources.files("mcstatbot_query.data").joinpath(RULES_RESOURCE).read_text(encoding="utf-8")
    return parse_rules(tomllib.loads(text))


def classify(fields: StatusFields, rules: Sequence[Rule] | None = None) -> Placeholder | None:
    """The first rule this status answer matches, or None for a real server's answer."""
    version = normalise(fields.version_name)
    motd = normalise(fields.motd)
    for rule in load_rules() if rules is None else rules:
        if rule.matches(version, motd, fields):
            return Placeholder(
                rule=rule.id, host=rule.host, text=version if rule.text_field == "version" else motd
            )
    return None
