"""The /history chart drawn in the worker process: the edge windows (none, one sample, always offline,
30 days of one-minute samples) as real PNGs decoded with Pillow, and the bounds (time, memory)."""

from __future__ import annotations

import io
import time
from typing import TYPE_CHECKING

import pytest
from mcstatbot_bot.history_chart import HEIGHT_PX, WIDTH_PX, ChartRequest
from mcstatbot_bot.history_worker import ChartFailedError, ChartWorker
from PIL import Image

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from mcstatbot_bot.history_chart import SampleRow

DAY = 86400
NOW = 1_764_547_200  # 2025-12-01T00:00:00Z
LABELS = {
    "title": "play.example.com · последние 30 дней",
    "players_label": "Игроки онлайн",
    "max_label": "Максимум",
    "offline_label": "Офлайн",
    "latency_label": "Задержка, мс",
    "time_label": "Время (UTC)",
    "empty_label": "Проверок пока нет",
}


def request(samples: list[SampleRow], span: int = DAY, locale: str = "ru") -> ChartRequest:
    return ChartRequest(samples=samples, since=NOW - span, until=NOW, locale=locale, **LABELS)


@pytest.fixture
async def worker() -> AsyncIterator[ChartWorker]:
    chart_worker = ChartWorker(timeout=120)
    try:
        yield chart_worker
    finally:
        await chart_worker.close()


def decoded(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    assert image.format == "PNG"
    assert image.size == (WIDTH_PX, HEIGHT_PX)
    return image


def red_share(image: Image.Image) -> float:
    """The share of the picture in the offline shading's colour."""
    small = image.convert("RGB").resize((320, 240))
    raw = small.tobytes()
    pixels = [tuple(raw[i : i + 3]) for i in range(0, len(raw), 3)]
    shaded = [p for p in pixels if p[0] > 200 and 150 < p[1] < 215 and 150 < p[2] < 215 and p[0] - p[1] > 30]
    return len(shaded) / len(pixels)


async def test_edge_windows_give_correct_pictures(worker: ChartWorker) -> None:
    empty = decoded(await worker.draw(request([])))
    one = decoded(await worker.draw(request([(NOW - 3600, True, 3, 20, 12.5)])))
    offline = decoded(
        await worker.draw(request([(at, False, None, None, None) for at in range(NOW - DAY, NOW, 60)]))
    )
    online = decoded(
        await worker.draw(request([(at, True, 5, 20, 30.0) for at in range(NOW - DAY, NOW, 60)], locale="uk"))
    )
    assert red_share(empty) < 0.01  # the legend's swatch only
    assert red_share(one) < 0.01
    assert red_share(online) < 0.01
    assert red_share(offline) > 0.3  # both plots shaded end to end


async def test_thirty_days_of_one_minute_samples(worker: ChartWorker) -> None:
    samples: list[SampleRow] = [
        (at, (at // 3600) % 48 != 5, (at // 3600) % 24, 40, 20.0 + (at % 7))
        for at in range(NOW - 30 * DAY, NOW, 60)
    ]
    assert len(samples) == 43_200
    image = decoded(await worker.draw(request(samples, span=30 * DAY, locale="de")))
    assert 0 < red_share(image) < 0.2  # one hour in 48 offline


def _sleep(_request: ChartRequest, _seconds: int) -> bytes:
    time.sleep(60)
    return b""


def _hog(_request: ChartRequest, _seconds: int) -> bytes:
    return b"x" * (4 * 1024**3)


async def test_a_chart_over_its_time_fails_and_the_next_one_works(worker: ChartWorker) -> None:
    slow = ChartWorker(timeout=1, job=_sleep)
    started = time.monotonic()
    with pytest.raises(ChartFailedError):
        await slow.draw(request([]))
    assert time.monotonic() - started < 30
    await slow.close()
    decoded(await worker.draw(request([])))


async def test_a_chart_over_its_memory_fails(worker: ChartWorker) -> None:
    greedy = ChartWorker(timeout=60, job=_hog)
    with pytest.raises(ChartFailedError):
        await greedy.draw(request([]))
    await greedy.close()


async def test_a_chart_that_cannot_be_drawn_is_answered_in_words() -> None:
    """HistoryHandlers.send_chart with a real python-telegram-bot Bot against the Bot API test server and
    a worker whose chart times out: the chat is told, and no photo goes out."""
    import httpx  # noqa: PLC0415
    from mcstatbot_bot.breaker import CircuitBreaker  # noqa: PLC0415
    from mcstatbot_bot.flood import FloodControl  # noqa: PLC0415
    from mcstatbot_bot.handlers import BotHandlers  # noqa: PLC0415
    from mcstatbot_bot.history import Window  # noqa: PLC0415
    from mcstatbot_bot.history_handlers import HistoryHandlers  # noqa: PLC0415
    from mcstatbot_bot.query_client import QueryClient  # noqa: PLC0415
    from mcstatbot_bot.state import ResilientStore, ServerRef  # noqa: PLC0415
    from mcstatbot_bot.state.memory import MemoryStore  # noqa: PLC0415
    from mcstatbot_testkit.telegram import BotApiServer  # noqa: PLC0415
    from telegram import Bot  # noqa: PLC0415

    store = ResilientStore(MemoryStore())
    async with httpx.AsyncClient(base_url="http://127.0.0.1:9") as http:  # never asked: no probe here
        cards = BotHandlers(QueryClient(http, CircuitBreaker()), store, FloodControl())
        slow = ChartWorker(timeout=1, job=_sleep)
        with BotApiServer() as api:
            async with Bot(api.token, base_url=f"{api.base_url}/bot") as bot:
                await HistoryHandlers(cards, slow, max_per_chat=10).send_chart(
                    bot, 77, ServerRef("play.example.com"), Window.WEEK
                )
            await slow.close()
            said = [call.text for call in api.calls_to("sendMessage", 77)]
            assert said == ["⚠️ The chart could not be drawn right now. Try again in a minute."]
            assert api.calls_to("sendPhoto") == []
