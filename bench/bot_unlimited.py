"""The bot service exactly as `python -m mcstatbot_bot` runs it, except that python-telegram-bot's overall
and per-group flood limits (AIORateLimiter: 30 messages/s in all, 20 per minute per group; Telegram's own
limits, which a real bot must keep: beyond them Telegram answers 429) are lifted. Benchmark only, never a
production setting. The bot benchmark runs this variant next to the real one to measure what one bot
process can do on one core when Telegram's limit is not what stops it.
Run as `python -m bench.bot_unlimited` (the bot's environment variables)."""

from __future__ import annotations

from typing import Any


def main() -> None:
    # The bot's modules make their tracers when imported: install the tracer provider first, as
    # `python -m mcstatbot_bot` does (setup_tracing is idempotent; the service calls it again).
    from mcstatbot_common.observability import setup_tracing  # noqa: PLC0415

    setup_tracing("bot")
    from mcstatbot_bot import telegram_api  # noqa: PLC0415
    from mcstatbot_bot.__main__ import main as bot_main  # noqa: PLC0415

    class UnlimitedRateLimiter(telegram_api.CountingRateLimiter):
        """The bot's rate limiter with overall_max_rate=0 and group_max_rate=0 (0 disables each limiter);
        retries after a 429 are kept."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["overall_max_rate"] = 0
            kwargs["group_max_rate"] = 0
            super().__init__(*args, **kwargs)

    # build_application looks the class up in its module when it runs: replace it there.
    setattr(telegram_api, "CountingRateLimiter", UnlimitedRateLimiter)  # noqa: B010 - a benchmark-only swap
    bot_main([])


if __name__ == "__main__":
    main()
