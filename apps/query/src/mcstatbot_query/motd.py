"""MOTD rendering: raw (section-sign codes), clean (plain text) and html (escaped, colours as spans).

mcstatus parses the MOTD (strings with § or & codes, JSON text components with `extra`) into
components. Its own `to_html()` does not escape text, so the HTML here is rendered from the parsed
components with every piece of text escaped: a `<script>` in a MOTD arrives as `&lt;script&gt;`.
"""

from __future__ import annotations

import html
from typing import Any

from mcstatbot_common.models import Motd
from mcstatus.motd import Motd as McMotd
from mcstatus.motd.components import (
    BedrockFormatting,
    BedrockMinecraftColor,
    InvalidFormatting,
    JavaFormatting,
    JavaMinecraftColor,
    TranslationTag,
    WebColor,
)

_COLOURS = {
    "BLACK": "#000000",
    "DARK_BLUE": "#0000aa",
    "DARK_GREEN": "#00aa00",
    "DARK_AQUA": "#00aaaa",
    "DARK_RED": "#aa0000",
    "DARK_PURPLE": "#aa00aa",
    "GOLD": "#ffaa00",
    "GRAY": "#aaaaaa",
    "DARK_GRAY": "#555555",
    "BLUE": "#5555ff",
    "GREEN": "#55ff55",
    "AQUA": "#55ffff",
    "RED": "#ff5555",
    "LIGHT_PURPLE": "#ff55ff",
    "YELLOW": "#ffff55",
    "WHITE": "#ffffff",
    "MINECOIN_GOLD": "#ddd605",
    "MATERIAL_QUARTZ": "#e3d4d1",
    "MATERIAL_IRON": "#cecaca",
    "MATERIAL_NETHERITE": "#443a3b",
    "MATERIAL_REDSTONE": "#971607",
    "MATERIAL_COPPER": "#b4684d",
    "MATERIAL_GOLD": "#deb12d",
    "MATERIAL_EMERALD": "#47a036",
    "MATERIAL_DIAMOND": "#2cbaa8",
    "MATERIAL_LAPIS": "#21497b",
    "MATERIAL_AMETHYST": "#9a5cc6",
    "MATERIAL_RESIN": "#eb7114",
}
_STYLES = {
    "BOLD": "font-weight:bold",
    "ITALIC": "font-style:italic",
    "UNDERLINED": "text-decoration:underline",
    "STRIKETHROUGH": "text-decoration:line-through",
    "OBFUSCATED": "",
}


def render_motd(parsed: McMotd, raw: Any) -> Motd:
    """The three forms of a MOTD that mcstatus parsed; `raw` is what the server sent."""
    raw_text = raw if isinstance(raw, str) else parsed.simplify().to_minecraft()
    return Motd(raw=raw_text, clean=clean_text(parsed), html=to_html(parsed))


def clean_text(parsed: McMotd) -> str:
    """Plain text: no formatting codes (also none left inside JSON `text`), lines kept."""
    parts = [item for item in parsed.parsed if isinstance(item, str)]
    return "".join(parts)


def to_html(parsed: McMotd) -> str:  # noqa: C901 - one branch per kind of MOTD component
    """Escaped HTML; each run of text in a `<span>` with its colour and styles; newlines as `<br>`."""
    out: list[str] = []
    colour: str | None = None
    styles: list[str] = []
    obfuscated = False
    for item in parsed.parsed:
        if isinstance(item, str):
            if not item:
                continue
            text = html.escape(item, quote=True).replace("\n", "<br>")
            css = ";".join([*([f"color:{colour}"] if colour else []), *[s for s in styles if s]])
            attrs = f' style="{css}"' if css else ""
            if obfuscated:
                attrs += ' class="obfuscated"'
            out.append(f"<span{attrs}>{text}</span>" if attrs else text)
        elif isinstance(item, (JavaMinecraftColor, BedrockMinecraftColor)):
            colour = _COLOURS.get(item.name)
            styles, obfuscated = [], False  # a colour code resets the styles, as in the game
        elif isinstance(item, WebColor):
            colour = "#{:02x}{:02x}{:02x}".format(*item.rgb)
        elif isinstance(item, (JavaFormatting, BedrockFormatting)):
            if item.name == "RESET":
                colour, styles, obfuscated = None, [], False
            elif item.name == "OBFUSCATED":
                obfuscated = True
            elif _STYLES.get(item.name) and _STYLES[item.name] not in styles:
                styles.append(_STYLES[item.name])
        elif isinstance(item, (InvalidFormatting, TranslationTag)):
            continue
    return "".join(out)


def parse_motd(raw: Any, *, bedrock: bool) -> Motd:
    """Parse and render a MOTD as sent (string or JSON component); ValueError/TypeError when malformed."""
    return render_motd(McMotd.parse(raw, bedrock=bedrock), raw)
