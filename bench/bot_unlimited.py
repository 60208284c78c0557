"""The bot service exactly as `python -m mcstatbot_bot` runs it, except that python-telegram-bot's overall
and per-group flood limits (AIORateLimiter: 30 messages/s in all, 20 per minute per group; Telegram's own
limits, which a real bot must keep) are lifted. The bot benchmark runs this variant next to the real one
to measure what one bot process can do on one core when Telegram's limit is not what stops it.
Run as `python -m bench.bot_unlimited` (the bot's environment variables)."""

from __future__ import annotations

from typing import Any

from mcstatbot_bot import telegram_api
from mcstatbot_bot.__main__ import main


class UnlimitedRateLimiter(telegram_api.CountingRateLimiter):
    """The bot's rate limiter with overall_max_rate=0 and group_max_rate=0 (0 disables each limiter);
    retries after a 429 are kept."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["overall_max_rate"] = 0
        kwargs["group_max_rate"] = 0
        super().__init__(*args, **kwargs)


if __name__ == "__main__":
    # build_application looks the class up in its module when it runs: replace it there.
    setattr(telegram_api, "CountingRateLimiter", UnlimitedRateLimiter)  # noqa: B010 - a benchmark-only swap
    main([])
