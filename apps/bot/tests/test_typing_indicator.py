"""The typing indicator: sent only when the answer takes longer than the delay, repeated, never fatal."""

from __future__ import annotations

import asyncio
from typing import Any

from mcstatbot_bot import handlers
from mcstatbot_bot.handlers import typing_indicator
from telegram.error import NetworkError


class FakeBot:
    def __init__(self, *, fail: bool = False) -> None:
        self.actions: list[tuple[int, str]] = []
        self.fail = fail

    async def send_chat_action(self, chat_id: int, action: str) -> bool:
        self.actions.append((chat_id, action))
        if self.fail:
            raise NetworkError("down")
        return True


def _bot(fake: FakeBot) -> Any:
    return fake


async def test_a_fast_answer_sends_no_typing() -> None:
    fake = FakeBot()
    async with typing_indicator(_bot(fake), 7, delay=0.2):
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)  # the cancelled timer does not fire later either
    assert fake.actions == []


async def test_a_slow_answer_shows_typing_after_the_delay() -> None:
    fake = FakeBot()
    async with typing_indicator(_bot(fake), 7, delay=0.05):
        await asyncio.sleep(0.02)
        assert fake.actions == []
        await asyncio.sleep(0.15)
        assert fake.actions == [(7, "typing")]


async def test_no_delay_sends_at_once_and_repeats(monkeypatch: Any) -> None:
    monkeypatch.setattr(handlers, "TYPING_REFRESH_SECONDS", 0.05)
    fake = FakeBot()
    async with typing_indicator(_bot(fake), 7, delay=0):
        await asyncio.sleep(0)
        assert fake.actions == [(7, "typing")]
        await asyncio.sleep(0.12)
    assert len(fake.actions) >= 2


async def test_a_failing_chat_action_does_not_break_the_block() -> None:
    fake = FakeBot(fail=True)
    async with typing_indicator(_bot(fake), 7, delay=0):
        await asyncio.sleep(0.01)
    assert fake.actions == [(7, "typing")]
