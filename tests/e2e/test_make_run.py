"""`make run`, the newcomer's first command: the real Makefile target and scripts/run-local.sh."""

from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from mcstatbot_testkit.dynamodb import DynamoDBLocal
from mcstatbot_testkit.harness import (
    TelegramUser,
    ctrl_c,
    local_run_env,
    redis_command,
    run_as_in_a_terminal,
    start_local_run,
)
from mcstatbot_testkit.minecraft import JavaPeer
from mcstatbot_testkit.net import LOOPBACK, free_port
from mcstatbot_testkit.redis import RedisServer
from mcstatbot_testkit.telegram import BotApiServer

if TYPE_CHECKING:
    from mcstatbot_testkit.process import ManagedProcess

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
REFUSED_TOKEN = "111111:not-the-token-telegram-knows-0123456789"  # noqa: S105 - a token no server knows


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((LOOPBACK, port)) == 0


def test_without_a_token_it_stops_at_once_and_says_why() -> None:
    result = run_as_in_a_terminal(["make", "run"], REPO_ROOT, timeout=300)
    assert result.returncode != 0
    assert "TELEGRAM_BOT_TOKEN is not set" in result.stderr
    assert "uv run mcstatbot status HOST" in result.stderr
    assert "starting" not in result.stdout  # nothing was started


def start_make_run(log: Path, env: dict[str, str]) -> ManagedProcess:
    return start_local_run(["make", "run"], log, env, REPO_ROOT)


@pytest.mark.timeout(300)
def test_it_serves_a_chat_and_ctrl_c_stops_every_service(tmp_path: Path) -> None:
    query_port, bot_port = free_port(), free_port()
    with BotApiServer() as api, JavaPeer(tmp_path / "java.log") as java:
        env = local_run_env(
            TELEGRAM_BOT_TOKEN=api.token,
            TELEGRAM_API_BASE_URL=api.base_url,
            QUERY_PORT=str(query_port),
            BOT_PORT=str(bot_port),
            SQLITE_PATH=str(tmp_path / "state.db"),
            ALLOW_PRIVATE_ADDRESSES="true",  # the peer is on loopback
            DNS_NAMESERVERS=f"{LOOPBACK}:{free_port()}",  # nothing resolves off this machine
        )
        run = start_make_run(tmp_path / "make-run.log", env)
        try:
            log = run.log_text()
            assert f"http://127.0.0.1:{query_port}" in log
            assert f"http://127.0.0.1:{bot_port}" in log
            assert "in-process cache" in log
            assert "polling, sqlite state" in log
            assert "Ctrl-C" in log
            pids = [int(p) for p in re.findall(r"\(pid (\d+)", log)]
            assert len(pids) == 3  # query service, bot, watcher
            assert all(alive(pid) for pid in pids)

            reply = TelegramUser(api, 4242).send(f"/status {java.address}", timeout=30)
            assert "1.21.1" in reply.text
            assert (tmp_path / "state.db").exists()  # SQLite state, the make run default

            ctrl_c(run)
        finally:
            run.stop()
        assert "stopped" in run.log_text()
        assert not any(alive(pid) for pid in pids)
        assert not port_open(query_port)
        assert not port_open(bot_port)


@pytest.mark.timeout(300)
def test_it_uses_redis_and_dynamodb_when_configured(tmp_path: Path) -> None:
    with (
        BotApiServer() as api,
        JavaPeer(tmp_path / "java.log") as java,
        RedisServer(tmp_path / "redis.log") as redis,
        DynamoDBLocal(tmp_path / "dynamodb.log") as dynamodb,
    ):
        env = local_run_env(
            TELEGRAM_BOT_TOKEN=api.token,
            TELEGRAM_API_BASE_URL=api.base_url,
            QUERY_PORT=str(free_port()),
            BOT_PORT=str(free_port()),
            REDIS_URL=redis.url,
            STATE_BACKEND="dynamodb",
            DYNAMODB_TABLE="make_run_sessions",
            ALLOW_PRIVATE_ADDRESSES="true",
            DNS_NAMESERVERS=f"{LOOPBACK}:{free_port()}",
            **dynamodb.env(),
        )
        run = start_make_run(tmp_path / "make-run.log", env)
        try:
            log = run.log_text()
            assert "Redis cache" in log
            assert "creating the DynamoDB table make_run_sessions" in log  # a local endpoint starts empty
            assert "polling, dynamodb state" in log
            reply = TelegramUser(api, 4343).send(f"/status {java.address}", timeout=30)
            assert "1.21.1" in reply.text
            assert int(redis_command(redis.port, "DBSIZE").lstrip(":")) >= 1  # the answer is cached in Redis
            ctrl_c(run)
        finally:
            run.stop()
        assert "stopped" in run.log_text()
        assert not (tmp_path / "mcstatbot.db").exists()


def _run_local(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "scripts/run-local.sh"],  # what `make run` runs
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def _one_clear_line(result: subprocess.CompletedProcess[str]) -> str:
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert "starting" not in result.stdout  # nothing was started
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, output
    return lines[0]


@pytest.mark.timeout(300)
def test_a_token_telegram_refuses_is_one_clear_line(tmp_path: Path) -> None:
    with BotApiServer() as api:
        env = local_run_env(
            TELEGRAM_BOT_TOKEN=REFUSED_TOKEN,
            TELEGRAM_API_BASE_URL=api.base_url,
            QUERY_PORT=str(free_port()),
            BOT_PORT=str(free_port()),
            SQLITE_PATH=str(tmp_path / "state.db"),
        )
        result = _run_local(env)
        assert [c.error_code for c in api.calls_to("getMe")] == [401]
    assert result.returncode == 2
    line = _one_clear_line(result)
    assert "refused TELEGRAM_BOT_TOKEN (401 Unauthorized)" in line
    assert "@BotFather" in line
    assert "not-the-token" not in line


@pytest.mark.timeout(300)
def test_an_unreachable_bot_api_is_one_clear_line(tmp_path: Path) -> None:
    nowhere = f"http://{LOOPBACK}:{free_port()}"  # nothing listens there
    env = local_run_env(
        TELEGRAM_BOT_TOKEN=REFUSED_TOKEN,
        TELEGRAM_API_BASE_URL=nowhere,
        QUERY_PORT=str(free_port()),
        BOT_PORT=str(free_port()),
        SQLITE_PATH=str(tmp_path / "state.db"),
    )
    result = _run_local(env)
    assert result.returncode == 1
    line = _one_clear_line(result)
    assert f"cannot reach the Telegram Bot API at {nowhere}" in line
    assert "Check the network" in line
