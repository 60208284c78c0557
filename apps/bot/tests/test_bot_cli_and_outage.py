"""The command line (missing token, set-webhook) and a DynamoDB outage in the running service."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import TYPE_CHECKING

import httpx
from mcstatbot_testkit.dynamodb import DynamoDBLocal

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from mcstatbot_testkit.minecraft import JavaPeer
    from mcstatbot_testkit.services import ServiceProcess
    from mcstatbot_testkit.telegram import ApiCall, BotApiServer


def to(chat_id: int) -> Callable[[ApiCall], bool]:
    return lambda call: call.chat_id == chat_id and call.ok


def run_bot(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "WEBHOOK_"))}
    return subprocess.run(
        [sys.executable, "-m", "mcstatbot_bot", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_missing_token_exits_at_once_with_a_clear_message() -> None:
    result = run_bot(env={})
    assert result.returncode == 2
    assert "TELEGRAM_BOT_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr


def test_set_webhook_command(api: BotApiServer) -> None:
    env = {
        "TELEGRAM_BOT_TOKEN": api.token,
        "TELEGRAM_API_BASE_URL": api.base_url,
        "WEBHOOK_URL": "https://bot.example.com/telegram/webhook",
        "WEBHOOK_SECRET": "hook-secret-0123456789",
        "LOG_FORMAT": "text",
    }
    result = run_bot("set-webhook", env=env)
    assert result.returncode == 0, result.stderr
    assert api.webhook_url == "https://bot.example.com/telegram/webhook"
    call = api.calls_to("setWebhook")[-1]
    assert call.params["secret_token"] == "hook-secret-0123456789"  # noqa: S105 - test value
    assert call.params["allowed_updates"] == ["message", "callback_query", "inline_query"]
    assert api.token not in result.stdout + result.stderr
    missing = run_bot("set-webhook", env={**env, "WEBHOOK_URL": ""})
    assert missing.returncode == 2


def test_create_table_failures_are_one_line(dynamodb: DynamoDBLocal, tmp_path: Path) -> None:
    """What DynamoDB refuses (a name it does not take), no DynamoDB at the endpoint, no region: exit 1 and
    one line on stderr saying what is wrong, no traceback."""
    base = {**dynamodb.env(), "LOG_FORMAT": "text"}
    refused = run_bot("create-table", env={**base, "DYNAMODB_TABLE": "t"})
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        "mcstatbot-bot create-table t: DynamoDB refused: ValidationException: "
        + refused.stderr.split("ValidationException: ", 1)[1].strip()
    ]
    assert "between 3 and 255 characters" in refused.stderr
    with DynamoDBLocal(tmp_path / "gone.log") as gone:
        endpoint = gone.endpoint_url
    unreachable = run_bot(
        "create-table", env={**base, "AWS_ENDPOINT_URL_DYNAMODB": endpoint, "DYNAMODB_TABLE": "user_sessions"}
    )
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith("mcstatbot-bot create-table user_sessions: ConnectError")
    assert len(unreachable.stderr.strip().splitlines()) == 1
    no_region = run_bot(
        "create-table",
        env={
            **{k: v for k, v in base.items() if "REGION" not in k},
            "AWS_REGION": "",
            "AWS_DEFAULT_REGION": "",
        },
    )
    assert no_region.returncode == 1
    assert no_region.stderr.strip() == (
        "mcstatbot-bot create-table user_sessions: NoRegionError: "
        "STATE_BACKEND=dynamodb needs the table's region: set AWS_REGION"
    )
    for result in (refused, unreachable, no_region):
        assert "Traceback" not in result.stderr


async def test_dynamodb_outage_still_answers(
    api: BotApiServer,
    start_bot: Callable[..., ServiceProcess],
    java_peer: JavaPeer,
    tmp_path: Path,
    run_create_table: Callable[[DynamoDBLocal], str],
) -> None:
    ddb = DynamoDBLocal(tmp_path / "ddb-outage.log", persistent=True, db_dir=tmp_path / "ddb-data")
    with ddb:
        assert "created" in run_create_table(ddb)
        bot = start_bot(STATE_BACKEND="dynamodb", **ddb.env())
        api.send_text(9100, f"/status {java_peer.address}")
        assert "Online" in (await api.wait_for_call("sendMessage", to(9100), timeout=15)).text
        since = api.last_seq
        api.send_text(9100, "/status")  # the chat's state is written after the reply: wait for it
        saved = await api.wait_for_call("sendMessage", to(9100), since=since, timeout=15)
        assert java_peer.address in saved.text

        ddb.stop()
        api.send_text(9101, f"/status {java_peer.address}")
        assert "Online" in (await api.wait_for_call("sendMessage", to(9101), timeout=20)).text
        card = api.calls_to("sendMessage", 9100)[0]
        since = api.last_seq
        api.press_button(card, card.button_data()[1])  # Players, server named in the button itself
        edit = await api.wait_for_call("editMessageText", to(9100), since=since, timeout=20)
        assert "Alex" in edit.text
        async with httpx.AsyncClient() as http:
            ready = (await http.get(f"{bot.url}/ready")).json()
            metrics = (await http.get(f"{bot.url}/metrics")).text
        assert ready["state_store"] == "unavailable"
        assert 'mcstatbot_state_store_retries_total{backend="dynamodb"' in metrics
        assert 'outcome="error"' in metrics

        ddb.start()  # back, with the table (persistent storage)
        async with httpx.AsyncClient() as http:  # /ready's ping is the store breaker's trial call
            store = "unavailable"
            for _ in range(300):  # DynamoDB Local's start plus the SDK's backoff: a bound, not a speed
                store = (await http.get(f"{bot.url}/ready")).json()["state_store"]
                if store == "ok":
                    break
                await asyncio.sleep(0.2)
        assert store == "ok"
        api.send_text(9101, "/status")  # the chat's last server was not saved in the outage...
        reply = await api.wait_for_call(
            "sendMessage", lambda c: to(9101)(c) and "Which server?" in c.text, timeout=20
        )
        assert reply.ok
        api.send_text(9100, "/status")  # ...but this chat's, from before the outage, was
        again = await api.wait_for_call("sendMessage", lambda c: to(9100)(c) and c.seq > since, timeout=20)
        assert java_peer.address in again.text
