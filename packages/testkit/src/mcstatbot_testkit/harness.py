"""The whole mcstatbot system on one machine, every part a real process on loopback.

`System` starts, in this order (peers in parallel):

- the Bot API test server (`telegram.BotApiServer`, in this process) that plays the Telegram users;
- one real `redis-server`, DynamoDB Local (the jar, persistent so a restart keeps the table),
  a Java peer (npm `minecraft-protocol`) and a Bedrock peer (npm `bedrock-protocol`);
- TWO query-service replicas sharing that Redis. The bot talks to the first (`query_for_bot`); the
  second (`query_other`) is there to show that the replicas share one cache (a test asks it directly);
- the bot service in webhook mode with a webhook secret and the DynamoDB state backend; on start it
  registers its webhook with the test server, which from then on POSTs updates to it and redelivers
  whatever is not acknowledged.

Every name lookup of the query services goes to a loopback port where nothing answers
(`DNS_NAMESERVERS`), so no test can send traffic off the machine, whatever a user types.

`TelegramUser` acts as one chat: `send()` a text and get the bot's reply, `press()` a button under a
message and get the edit. `run_session()` is the user's session scenario (the e2e test runs it once,
`make soak` in a loop). `rss_kib()` reads a process's resident memory.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import httpx

from mcstatbot_testkit.dynamodb import DynamoDBLocal
from mcstatbot_testkit.minecraft import BedrockPeer, JavaPeer
from mcstatbot_testkit.net import LOOPBACK, free_port
from mcstatbot_testkit.process import ManagedProcess, Started
from mcstatbot_testkit.redis import RedisServer
from mcstatbot_testkit.services import ServiceProcess, bot_service, query_service
from mcstatbot_testkit.telegram import ApiCall, BotApiServer

if TYPE_CHECKING:
    from collections.abc import Callable

WEBHOOK_PATH = "/telegram/webhook"
TABLE = "user_sessions"

LEAK_PATTERNS = re.compile(
    r"Traceback|File \"|\bline \d+, in\b|[A-Za-z_]+(?:Error|Exception)\b|<object at 0x|object at 0x[0-9a-f]+",
)
"""What a reply must never show a user: a traceback, a source location or an exception class name."""


def leaks(text: str) -> list[str]:
    """The pieces of `text` that look like an internal error leaking to the user (empty: none)."""
    return LEAK_PATTERNS.findall(text)


def rss_kib(pid: int) -> int | None:
    """Resident memory of process `pid` in KiB (VmRSS in /proc/<pid>/status), None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmRSS:\s+(\d+)\s+kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def redis_command(port: int, command: str) -> str:
    """Send one inline command (e.g. `DBSIZE`) to the redis-server on 127.0.0.1:`port`; its one-line
    RESP answer (`+OK`, `:3`, ...). Raw RESP, so the harness needs no Redis client."""
    with socket.create_connection((LOOPBACK, port), timeout=2) as sock:
        sock.sendall(f"{command}\r\n".encode())
        return sock.recv(256).decode(errors="replace").strip()


def button_data(call: ApiCall | dict[str, Any], label: str) -> str:
    """The callback_data of the inline button labelled `label` (case-insensitive, emoji ignored)."""
    if isinstance(call, ApiCall):
        markup = call.params.get("reply_markup") or {}
    else:
        markup = call.get("reply_markup") or {}
    if isinstance(markup, str):
        markup = json.loads(markup)
    wanted = label.casefold()
    for row in markup.get("inline_keyboard", []):
        for button in row:
            text = re.sub(r"[^\w ]", "", str(button.get("text", ""))).strip().casefold()
            if text == wanted and "callback_data" in button:
                return str(button["callback_data"])
    raise AssertionError(f"no button {label!r} in {markup}")


# What scripts/run-local.sh (`make run`) reads, and what would point it at another checkout's environment:
# left out of the environment a test starts it with, so the developer's own shell cannot change the outcome.
LOCAL_RUN_VARIABLES = frozenset({
    "TELEGRAM_BOT_TOKEN", "TELEGRAM_API_BASE_URL", "REDIS_URL", "STATE_BACKEND", "SQLITE_PATH", "BOT_MODE",
    "HOST", "PORT", "QUERY_PORT", "BOT_PORT", "WATCHER_PORT", "WEBHOOK_URL", "WEBHOOK_SECRET",
    "QUERY_SERVICE_URL",
    "VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT",
})  # fmt: skip


def local_run_env(**extra: str) -> dict[str, str]:
    """This process's environment without LOCAL_RUN_VARIABLES, plus `extra`; the watcher of `make run`
    on a free port unless `extra` names one (a test never binds the fixed default)."""
    env = {k: v for k, v in os.environ.items() if k not in LOCAL_RUN_VARIABLES}
    return {**env, "WATCHER_PORT": str(free_port()), **extra}


def run_as_in_a_terminal(argv: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run `argv` to its end in `cwd` with `local_run_env()`, as a newcomer would in a terminal; the output
    is captured as text, a non-zero exit is the caller's to judge."""
    return subprocess.run(  # noqa: S603 - the test's own commands
        argv, cwd=cwd, env=local_run_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


def start_local_run(argv: list[str], log: Path, env: dict[str, str], cwd: Path) -> ManagedProcess:
    """`make run` (argv) in its own process group with exactly `env`, as in a terminal; returns once it
    says it is running, or raises with its output."""
    run = ManagedProcess(argv, log, env=env, cwd=cwd, inherit_env=False).start()
    deadline = time.monotonic() + 240
    while "mcstatbot is running" not in run.log_text():
        if not run.running or time.monotonic() > deadline:
            run.stop()
            raise ScenarioError(f"make run did not start:\n{run.log_text()}")
        time.sleep(0.2)
    return run


def ctrl_c(run: ManagedProcess, timeout: float = 60.0) -> None:
    """What Ctrl-C in the terminal does: SIGINT to the whole foreground process group; waits for the end."""
    run.send_signal(signal.SIGINT)
    if run.proc is not None:
        run.proc.wait(timeout=timeout)


class ScenarioError(AssertionError):
    """A step of a scenario did not get the answer it expects (the message says which and what came)."""


@dataclass
class TelegramUser:
    """One Telegram chat played through the Bot API test server."""

    api: BotApiServer
    chat_id: int
    reply_timeout: float = 20.0

    def send(self, text: str, *, timeout: float | None = None) -> ApiCall:
        """Write `text` in the chat; return the bot's first sendMessage to this chat after it."""
        since = self.api.last_seq
        self.api.send_text(self.chat_id, text)
        return self.api.wait_for_call_sync(
            "sendMessage",
            lambda c: c.chat_id == self.chat_id,
            timeout=timeout or self.reply_timeout,
            since=since,
        )

    def press(
        self, message: ApiCall | dict[str, Any], label: str, *, timeout: float | None = None
    ) -> ApiCall:
        """Press the button `label` under `message`; return the bot's edit of that message."""
        msg = message.result if isinstance(message, ApiCall) else message
        data = button_data(self.api.message(self.chat_id, int(msg["message_id"])), label)
        since = self.api.last_seq
        self.api.press_button(msg, data)
        message_id = int(msg["message_id"])
        return self.api.wait_for_call_sync(
            "editMessageText",
            lambda c: c.chat_id == self.chat_id and c.params.get("message_id") == message_id,
            timeout=timeout or self.reply_timeout,
            since=since,
        )


@dataclass
class System(Started):
    """Every part of mcstatbot as its own process on loopback; see the module docstring.

    `log_dir` keeps one log per process. Use as a context manager; `heal()` brings back whatever a
    test stopped; `log_tails()` is what to print when a test fails.
    """

    log_dir: Path
    query_env: dict[str, str] = field(default_factory=dict)
    bot_env: dict[str, str] = field(default_factory=dict)
    webhook_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    def __post_init__(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.api = BotApiServer()
        self.redis = RedisServer(self.log_dir / "redis.log")
        self.dynamodb = DynamoDBLocal(self.log_dir / "dynamodb.log", persistent=True)
        self.java = JavaPeer(self.log_dir / "java-peer.log")
        self.bedrock = BedrockPeer(self.log_dir / "bedrock-peer.log")
        dead_dns = f"{LOOPBACK}:{free_port()}"  # nothing listens there: every DNS lookup fails at once
        query_env = {
            "REDIS_URL": self.redis.url,
            "ALLOW_PRIVATE_ADDRESSES": "true",  # the peers are on loopback
            "DNS_NAMESERVERS": dead_dns,
            "MC_TIMEOUT": "3",
            "LOG_LEVEL": "INFO",
            **self.query_env,
        }
        self.query = [query_service(self.log_dir / f"query-{n}.log", query_env) for n in (1, 2)]
        self.bot_env = {
            "TELEGRAM_BOT_TOKEN": self.api.token,
            "TELEGRAM_API_BASE_URL": self.api.base_url,
            "BOT_MODE": "webhook",
            "WEBHOOK_SECRET": self.webhook_secret,
            "QUERY_SERVICE_URL": self.query[0].url,
            "STATE_BACKEND": "dynamodb",
            "DYNAMODB_TABLE": TABLE,
            "BREAKER_RESET_SECONDS": "3",
            "FLOOD_MAX_PROBES": "1000",  # the flood limit has its own tests; e2e chats are busy on purpose
            **self.dynamodb.env(),
            **self.bot_env,
        }
        self.bot = self._bot_instance("bot-1.log")
        self._extra: list[ServiceProcess] = []

    # ------------------------------------------------------------------ lifecycle
    @property
    def query_for_bot(self) -> ServiceProcess:
        return self.query[0]

    @property
    def query_other(self) -> ServiceProcess:
        return self.query[1]

    @property
    def webhook_url(self) -> str:
        return f"{self.bot.url}{WEBHOOK_PATH}"

    def start(self) -> Self:
        try:
            self.api.start()
            _start_together(self.redis.start, self.dynamodb.start, self.java.start, self.bedrock.start)
            self.create_table()
            _start_together(*(replica.start for replica in self.query))
            self.bot = self._start_bot_instance("bot-1.log")
            self.wait_for_webhook()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every process (bot first, peers last); whatever fails to stop is killed."""
        for part in (*self._extra, self.bot, *self.query, self.java, self.bedrock, self.redis):
            with contextlib.suppress(Exception):
                part.stop()
        with contextlib.suppress(Exception):
            self.dynamodb.stop()
        with contextlib.suppress(Exception):
            self.api.stop()

    def heal(self) -> None:
        """Bring back every part a test stopped, killed or paused, and forget injected failures."""
        for extra in self._extra:
            extra.stop()
        self._extra.clear()
        if not self.dynamodb.running:
            self.dynamodb.start()
        else:
            self.dynamodb.resume()
        for service in (*self.query, self.bot):
            service.send_signal(signal.SIGCONT)  # a test may have frozen one (SIGSTOP)
        for part in (self.redis, self.java, self.bedrock, *self.query):
            if not part.running:
                part.start()
        if not self.bot.running:
            self.bot = self._start_bot_instance("bot-1.log")
        self.api.reset()
        if self.api.webhook_url != self.webhook_url:
            self.api.set_webhook(self.webhook_url, self.webhook_secret)

    def create_table(self) -> None:
        """`mcstatbot-bot create-table` against DynamoDB Local (what an operator runs once)."""
        result = subprocess.run(
            [sys.executable, "-m", "mcstatbot_bot", "create-table"],
            env={**self.bot.env, **self.dynamodb.env()},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        with (self.log_dir / "create-table.log").open("a") as log:
            log.write(result.stdout + result.stderr)
        if result.returncode != 0:
            raise RuntimeError(f"create-table failed ({result.returncode}):\n{result.stdout}{result.stderr}")

    def wait_for_webhook(self, url: str | None = None, timeout: float = 15.0) -> None:
        """Wait until the bot (or the instance at `url`) has registered its webhook with the test server."""
        wanted = url or self.webhook_url
        deadline = time.monotonic() + timeout
        while self.api.webhook_url != wanted:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the webhook is {self.api.webhook_url!r}, not {wanted!r}")
            time.sleep(0.05)

    def new_bot_instance(self) -> ServiceProcess:
        """A second bot process (a new pod in a rolling update), started: same configuration, its own
        port and webhook URL, which it registers on start. `heal()` stops it."""
        instance = self._start_bot_instance(f"bot-{len(self._extra) + 2}.log")
        self._extra.append(instance)
        return instance

    def _bot_instance(self, log_name: str) -> ServiceProcess:
        port = free_port()
        env = {"WEBHOOK_URL": f"http://{LOOPBACK}:{port}{WEBHOOK_PATH}", **self.bot_env}
        return bot_service(self.log_dir / log_name, env, port=port)

    def _start_bot_instance(self, log_name: str, attempts: int = 3) -> ServiceProcess:
        """A bot on a port picked just now; another pick when something took the port meanwhile."""
        for _ in range(attempts - 1):
            instance = self._bot_instance(log_name)
            try:
                return instance.start()
            except RuntimeError:
                if "address already in use" not in instance.log_text():
                    raise
        return self._bot_instance(log_name).start()

    # ------------------------------------------------------------------ looking inside
    def processes(self) -> dict[str, int]:
        """Name -> pid of every running service and peer process."""
        named: dict[str, ManagedProcess] = {
            "bot": self.bot,
            "query-1": self.query[0],
            "query-2": self.query[1],
            "redis": self.redis,
            "java-peer": self.java,
            "bedrock-peer": self.bedrock,
            "dynamodb": self.dynamodb.process,
        }
        return {name: part.pid for name, part in named.items() if part.running}

    def flush_cache(self) -> None:
        """Empty the shared Redis cache."""
        if redis_command(self.redis.port, "FLUSHALL") != "+OK":
            raise RuntimeError("redis did not accept FLUSHALL")

    def query_status(self, replica: ServiceProcess, address: str) -> httpx.Response:
        """Ask one query-service replica directly (what the bot does), for checks of the shared cache."""
        return httpx.post(
            f"{replica.url}/api/v1/status", json={"server_url": address, "edition": "auto"}, timeout=15
        )

    def log_tails(self, lines: int = 60) -> str:
        """The last `lines` of every log, one section per process."""
        parts = []
        for path in sorted(self.log_dir.glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"----- {path.name} (last {len(tail)} lines) -----\n" + "\n".join(tail))
        return "\n".join(parts)


def _start_together(*starts: Callable[[], object]) -> None:
    """Run the `start` callables in parallel threads; raise the first failure once all are done."""
    with concurrent.futures.ThreadPoolExecutor(len(starts)) as pool:
        futures = [pool.submit(start) for start in starts]
    for future in futures:
        future.result()


# ---------------------------------------------------------------------- the user's session
@dataclass
class SessionReport:
    """What one run of the session scenario saw: each step's reply and the peers' counters."""

    replies: dict[str, str] = field(default_factory=dict)
    java_connections_before_cached_press: int = 0
    java_connections_after_cached_press: int = 0
    steps: int = 0


def _expect(step: str, call: ApiCall, *needles: str) -> str:
    text = call.text
    leaked = leaks(text)
    if leaked:
        raise ScenarioError(f"{step}: the reply leaks {leaked}: {text!r}")
    missing = [n for n in needles if n.casefold() not in text.casefold()]
    if missing:
        raise ScenarioError(f"{step}: the reply lacks {missing}: {text!r}")
    return text


def run_session(system: System, user: TelegramUser) -> SessionReport:
    """/start, /status Java, /status Bedrock, then the Java card's buttons Players, About and Status
    (from the cache: the Java peer sees no new connection), then /status with no argument, which
    answers for the chat's last server: the Java one, which the Status button asked about last.

    Raises ScenarioError naming the step whose reply is missing something or leaks internals.
    """
    report = SessionReport()
    java, bedrock = system.java.address, system.bedrock.address

    def step(name: str, call: Callable[[], ApiCall], *needles: str) -> ApiCall:
        try:
            reply = call()
        except TimeoutError as exc:
            raise ScenarioError(f"{name}: no reply ({exc})") from None
        report.replies[name] = _expect(name, reply, *needles)
        report.steps += 1
        return reply

    step("/start", lambda: user.send("/start"), "/status")
    java_reply = step(
        "/status java", lambda: user.send(f"/status {java}"), java, "1.21.1", "A Minecraft Server"
    )
    step("/status bedrock", lambda: user.send(f"/status {bedrock}"), bedrock, "mcstatbot bedrock peer")
    step("players", lambda: user.press(java_reply, "Players"), "Steve", "Alex")
    step("about", lambda: user.press(java_reply, "About"), "mcstatbot")
    report.java_connections_before_cached_press = system.java.stats()["connections"]
    step("status again", lambda: user.press(java_reply, "Status"), java, "1.21.1")
    report.java_connections_after_cached_press = system.java.stats()["connections"]
    before, after = report.java_connections_before_cached_press, report.java_connections_after_cached_press
    if after != before:
        raise ScenarioError(
            f"status again: the Java peer saw a new connection ({before} -> {after}); "
            "the answer should have come from the cache"
        )
    # The last server this chat asked about is the Java one (the Status button above asked again).
    step("/status (last server)", lambda: user.send("/status"), java, "1.21.1")
    return report
