"""`mcstatbot-watcher` and `mcstatbot-bot` with an unusable configuration: one line per problem, exit 2."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest


@pytest.mark.parametrize(
    ("module", "program"), [("mcstatbot_watcher", "mcstatbot-watcher"), ("mcstatbot_bot", "mcstatbot-bot")]
)
async def test_a_missing_token_and_a_bad_value_are_said_plainly(module: str, program: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "WATCH_"))}
    env["WATCH_INTERVAL_SECONDS"] = "-1"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    lines = err.decode().splitlines()
    assert process.returncode == 2
    assert out == b""
    assert lines[0] == f"{program}: the configuration is not usable:"
    assert "  TELEGRAM_BOT_TOKEN: is required but not set" in lines
    assert lines[-1] == "Set TELEGRAM_BOT_TOKEN to the token @BotFather gave you."
    assert "Traceback" not in err.decode()
    if module == "mcstatbot_watcher":  # the bot has no WATCH_* settings
        assert any(line.startswith("  WATCH_INTERVAL_SECONDS: ") for line in lines)
