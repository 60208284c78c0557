"""Button callback_data (64-byte limit, references) and per-chat flood control."""

from __future__ import annotations

import pytest
from mcstatbot_bot import buttons
from mcstatbot_bot.flood import FloodControl, Verdict
from mcstatbot_bot.state import ServerRef
from mcstatbot_common.models import Edition


@pytest.mark.parametrize("edition", list(Edition))
@pytest.mark.parametrize("address", ["play.example.com", "127.0.0.1:25565", "[2001:db8::1]:19132"])
def test_round_trip_inline(address: str, edition: Edition) -> None:
    server = ServerRef(address, edition)
    for action in buttons.Action:
        data, ref = buttons.encode(action, server)
        assert ref is None
        assert len(data.encode()) <= 64
        assert buttons.decode(data) == buttons.Press(action, server=server)


def test_long_address_uses_a_stable_reference() -> None:
    server = ServerRef("a" * 60 + ".example.com:25565", Edition.JAVA)
    data, ref = buttons.encode(buttons.Action.PLAYERS, server)
    assert ref is not None
    assert len(data.encode()) <= 64
    assert buttons.decode(data) == buttons.Press(buttons.Action.PLAYERS, ref=ref)
    assert buttons.ref_for(server) == ref
    assert buttons.ref_for(ServerRef(server.address, Edition.BEDROCK)) != ref
    markup, needed = buttons.keyboard(server)
    assert needed == ref
    assert [b.text for b in markup.inline_keyboard[0]] == ["Status", "Players", "About"]


@pytest.mark.parametrize(
    "data", ["", "x", "v2|s|a|host", "v1|z|a|host", "v1|s|q|host", "v1|s|a|bad host", "v1|s|#"]
)
def test_foreign_data_is_rejected(data: str) -> None:
    with pytest.raises(buttons.InvalidCallbackError):
        buttons.decode(data)


def test_flood_control_notifies_once_per_burst() -> None:
    now = [0.0]
    flood = FloodControl(max_probes=2, window_seconds=10, clock=lambda: now[0])
    verdicts = [flood.check(1) for _ in range(5)]
    assert verdicts == [
        Verdict.ALLOWED,
        Verdict.ALLOWED,
        Verdict.LIMITED_NOTIFY,
        Verdict.LIMITED_SILENT,
        Verdict.LIMITED_SILENT,
    ]
    assert flood.check(2) is Verdict.ALLOWED  # other chats are not affected
    now[0] = 10.0
    assert flood.check(1) is Verdict.ALLOWED
    assert flood.check(1) is Verdict.ALLOWED
    assert flood.check(1) is Verdict.LIMITED_NOTIFY  # a new burst is told again
