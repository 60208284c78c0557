"""`make run`, the newcomer's first command: the real Makefile target and scripts/run-local.sh."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from mcstatbot_testkit.harness import TelegramUser
from mcstatbot_testkit.minecraft import JavaPeer
from mcstatbot_testkit.net import LOOPBACK, free_port
from mcstatbot_testkit.process import ManagedProcess
from mcstatbot_testkit.telegram import BotApiServer

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
# What run-local.sh reads, removed so the developer's own shell cannot change what the test sees.
RUN_VARIABLES = (
    "TELEGRAM_BOT_TOKEN", "TELEGRAM_API_BASE_URL", "REDIS_URL", "STATE_BACKEND", "SQLITE_PATH", "BOT_MODE",
    "HOST", "PORT", "QUERY_PORT", "BOT_PORT", "WEBHOOK_URL", "WEBHOOK_SECRET", "QUERY_SERVICE_URL",
)  # fmt: skip


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in RUN_VARIABLES}
    return {**env, **extra}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def port_open(port: int) -> bool:
    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        return sock.connect_ex((LOOPBACK, port)) == 0


def test_without_a_token_it_stops_at_once_and_says_why() -> None:
    result = subprocess.run(
        ["make", "run"],
        cwd=REPO_ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode != 0
    assert "TELEGRAM_BOT_TOKEN is not set" in result.stderr
    assert "uv run mcstatbot status HOST" in result.stderr
    assert "starting" not in result.stdout  # nothing was started


@pytest.mark.timeout(300)
def test_it_serves_a_chat_and_ctrl_c_stops_both_services(tmp_path: Path) -> None:
    query_port, bot_port = free_port(), free_port()
    with BotApiServer() as api, JavaPeer(tmp_path / "java.log") as java:
        env = clean_env(
            TELEGRAM_BOT_TOKEN=api.token,
            TELEGRAM_API_BASE_URL=api.base_url,
            QUERY_PORT=str(query_port),
            BOT_PORT=str(bot_port),
            SQLITE_PATH=str(tmp_path / "state.db"),
            ALLOW_PRIVATE_ADDRESSES="true",  # the peer is on loopback
            DNS_NAMESERVERS=f"{LOOPBACK}:{free_port()}",  # nothing resolves off this machine
        )
        run = ManagedProcess(["make", "run"], tmp_path / "make-run.log", env=env, cwd=REPO_ROOT)
        run.start()
        try:
            deadline = time.monotonic() + 240
            while "mcstatbot is running" not in run.log_text():
                assert run.running, f"make run exited:\n{run.log_text()}"
                assert time.monotonic() < deadline, f"make run did not start:\n{run.log_text()}"
                time.sleep(0.2)
            log = run.log_text()
            assert f"http://127.0.0.1:{query_port}" in log
            assert f"http://127.0.0.1:{bot_port}" in log
            assert "Ctrl-C" in log
            pids = [int(p) for p in re.findall(r"\(pid (\d+)", log)]
            assert len(pids) == 2
            assert all(alive(pid) for pid in pids)

            reply = TelegramUser(api, 4242).send(f"/status {java.address}", timeout=30)
            assert "1.21.1" in reply.text
            assert (tmp_path / "state.db").exists()  # SQLite state, the make run default

            run.send_signal(signal.SIGINT)  # Ctrl-C: the terminal signals the whole foreground group
            assert run.proc is not None
            run.proc.wait(timeout=60)
        finally:
            run.stop()
        assert "stopped" in run.log_text()
        assert not any(alive(pid) for pid in pids)
        assert not port_open(query_port)
        assert not port_open(bot_port)
