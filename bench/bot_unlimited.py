"""The bot service exactly as `python -m mcstatbot_bot` runs it, except that its Telegram send budget
(`mcstatbot_bot.send_budget`: 30 calls/s in all, 3 per 3 s per chat, 20 per minute per group; Telegram's own
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
    from mcstatbot_bot.send_budget import SendBudget  # noqa: PLC0415

    def unlimited(_settings: Any) -> SendBudget:
        """The bot's send budget with no window at all; retries after a 429 are kept."""
        return SendBudget(None, max_retries=3, on_error=telegram_api.count_error, windows_of=lambda _: [])

    # build_application looks the function up in its module when it runs: replace it there.
    setattr(telegram_api, "build_rate_limiter", unlimited)  # noqa: B010 - a benchmark-only swap
    bot_main([])


if __name__ == "__main__":
    main()
