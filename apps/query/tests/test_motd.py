"""MOTD rendering: raw, clean and html; hostile markup stays data."""

from __future__ import annotations

from typing import Any

import pytest
from mcstatbot_query.motd import parse_motd


def test_coloured_two_line_string_motd() -> None:
    motd = parse_motd("§aHello §lthere\n§cSecond line", bedrock=False)
    assert motd.raw == "§aHello §lthere\n§cSecond line"
    assert motd.clean == "Hello there\nSecond line"
    assert motd.html == (
        '<span style="color:#55ff55">Hello </span>'
        '<span style="color:#55ff55;font-weight:bold">there<br></span>'
        '<span style="color:#ff5555">Second line</span>'
    )


def test_json_component_with_extra_is_flattened() -> None:
    raw: dict[str, Any] = {
        "text": "A ",
        "extra": [
            {"text": "big", "bold": True, "color": "gold"},
            " world",
            {"text": "\n§ehi", "extra": ["!"]},
        ],
    }
    motd = parse_motd(raw, bedrock=False)
    assert motd.clean == "A big world\nhi!"
    assert "§" not in motd.clean
    assert '<span style="color:#ffaa00;font-weight:bold">big</span>' in motd.html


def test_hex_colour_becomes_a_span() -> None:
    motd = parse_motd({"text": "x", "color": "#12ab9f"}, bedrock=False)
    assert motd.html == '<span style="color:#12ab9f">x</span>'


@pytest.mark.parametrize(
    "raw",
    [
        "<script>alert(1)</script>",
        {"text": "<img src=x onerror=alert(1)>", "color": "red"},
        {"text": "\"'><b>&amp;"},
    ],
)
def test_markup_in_motd_is_escaped(raw: str | dict[str, Any]) -> None:
    motd = parse_motd(raw, bedrock=False)
    assert "<script" not in motd.html
    assert "<img" not in motd.html
    assert "<b>" not in motd.html
    assert "&lt;" in motd.html
    # clean is plain text: the markup is kept as the characters the server sent
    assert "<" in motd.clean


def test_bedrock_motd() -> None:
    motd = parse_motd("§gCoins §rand text", bedrock=True)
    assert motd.clean == "Coins and text"
    assert motd.html.startswith('<span style="color:#ddd605">Coins </span>')
