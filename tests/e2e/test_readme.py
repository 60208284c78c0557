"""The README's quick start, followed word for word on a fresh clone of the repository.

The commands are read from the README's "Quick start" code block, so changing them there changes what this
test runs. Only the placeholders are swapped: the example server for a real Java peer on loopback, the
example token for the Bot API test server's (whose address the bot gets from `TELEGRAM_API_BASE_URL`).
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
from mcstatbot_testkit.harness import (
    TelegramUser,
    ctrl_c,
    local_run_env,
    run_as_in_a_terminal,
    start_local_run,
)
from mcstatbot_testkit.minecraft import JavaPeer
from mcstatbot_testkit.net import LOOPBACK, free_port
from mcstatbot_testkit.telegram import BotApiServer

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_SERVER = "demo.mcstatus.io"
EXAMPLE_TOKEN = "123456:ABC-your-token"  # noqa: S105 - the README's placeholder, not a secret


def quick_start_commands(readme: str) -> list[str]:
    """The command lines of the first code block under `## Quick start`, without their comments."""
    section = readme.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the quick start has no bash code block"
    return [line.split("  #", 1)[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_the_quick_start_block_is_what_this_test_follows() -> None:
    commands = quick_start_commands((REPO_ROOT / "README.md").read_text())
    assert commands == [
        "make setup",
        f"uv run mcstatbot status {EXAMPLE_SERVER}",
        f"TELEGRAM_BOT_TOKEN={EXAMPLE_TOKEN} make run",
    ]


@pytest.mark.timeout(600)
def test_the_quick_start_on_a_fresh_clone(tmp_path: Path) -> None:
    clone = tmp_path / "mcstatbot"
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True, timeout=120)
    setup, status, run = quick_start_commands((clone / "README.md").read_text())

    with BotApiServer() as api, JavaPeer(tmp_path / "java.log") as java:
        # 1. make setup: uv and the workspace, in the clone.
        result = run_as_in_a_terminal(shlex.split(setup), clone, timeout=400)
        assert result.returncode == 0, result.stdout + result.stderr
        assert (clone / ".venv").is_dir()

        # 2. the terminal check, against a real Java peer instead of the example server.
        result = run_as_in_a_terminal(
            shlex.split(status.replace(EXAMPLE_SERVER, java.address)), clone, timeout=60
        )
        assert result.returncode == 0, result.stdout + result.stderr  # 0: online
        assert "1.21.1" in result.stdout
        assert java.address in result.stdout

        # 3. the bot, with the test server's token; the chat asks for the peer (a loopback address, so the
        #    README's ALLOW_PRIVATE_ADDRESSES=true), then Ctrl-C stops everything.
        bot_port, query_port = free_port(), free_port()
        env = local_run_env(
            TELEGRAM_API_BASE_URL=api.base_url,
            ALLOW_PRIVATE_ADDRESSES="true",
            BOT_PORT=str(bot_port),
            QUERY_PORT=str(query_port),
            DNS_NAMESERVERS=f"{LOOPBACK}:{free_port()}",  # nothing resolves off this machine
        )
        argv = ["bash", "-c", run.replace(EXAMPLE_TOKEN, api.token)]
        process = start_local_run(argv, tmp_path / "make-run.log", env, clone)
        try:
            reply = TelegramUser(api, 5151).send(f"/status {java.address}", timeout=30)
            assert "1.21.1" in reply.text
            assert (clone / "mcstatbot.db").exists()  # the SQLite chat state of the quick start
            ctrl_c(process)
        finally:
            process.stop()
        assert "stopped" in process.log_text()
