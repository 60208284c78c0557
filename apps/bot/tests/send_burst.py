"""A second process that sends through the bot's own Bot API stack: `telegram_api.build_application`
with `BotSettings` from the environment (TELEGRAM_BOT_TOKEN, TELEGRAM_API_BASE_URL, REDIS_URL), as the
bot service and the watcher build it. Used by test_send_budget.py.

    python send_burst.py START_AT CHAT:COUNT [CHAT:COUNT ...]

waits until the wall-clock time START_AT (so several processes start their bursts together), sends
COUNT messages to each CHAT at once (all concurrently) and prints `sent N`. Exit status 0 when every
message was sent."""

from __future__ import annotations

import asyncio
import sys
import time

from mcstatbot_bot.settings import BotSettings
from mcstatbot_bot.telegram_api import build_application


async def burst(start_at: float, plan: list[tuple[int, int]]) -> int:
    application = build_application(BotSettings(), webhook=True)
    async with application:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        sends = [
            application.bot.send_message(chat, f"burst {chat} #{i}")
            for chat, count in plan
            for i in range(count)
        ]
        sent = await asyncio.gather(*sends)
    return len(sent)


def main() -> None:
    start_at = float(sys.argv[1])
    plan = [(int(c), int(n)) for c, n in (item.split(":") for item in sys.argv[2:])]
    print(f"sent {asyncio.run(burst(start_at, plan))}", flush=True)  # noqa: T201 - the test reads it


if __name__ == "__main__":
    main()
