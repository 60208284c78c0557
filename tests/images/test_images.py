"""The three images (bot, query, watcher) build (repository root as context, BASE_IMAGE set) and run
read-only as UID 10001.

Each image is built once per session; the containers run with `--read-only --tmpfs /tmp --user 10001
--network host`, like the chart runs them (readOnlyRootFilesystem, an emptyDir on /tmp, non-root). The bot
container talks to the Bot API test server on loopback, and to the query container, so one `/status`
crosses both images; the watcher container starts with the bot's configuration and answers /health.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import yaml
from aiobotocore.session import get_session
from mcstatbot_testkit.dynamodb import DynamoDBLocal
from mcstatbot_testkit.net import free_port
from mcstatbot_testkit.telegram import BotApiServer

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.images.conftest import DockerEngine

# Building takes minutes on a fresh machine (debootstrap, then both images): more than the suite's default.
pytestmark = pytest.mark.timeout(1800)

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"query": 8081, "bot": 8080, "watcher": 8082}
TMP = "/tmp"  # noqa: S108 - the containers' tmpfs mount point
WEBHOOK_SECRET = "image-test-secret"  # noqa: S105 - a made-up secret


@pytest.fixture(scope="session")
def images(engine: DockerEngine, base_image: str) -> dict[str, str]:
    """Builds apps/Dockerfile once per service (`--build-arg APP=<service>`); prints time and size of each."""
    built: dict[str, str] = {}
    for service in SERVICES:
        tag = f"mcstatbot-{service}:test"
        started = time.monotonic()
        engine.docker(
            "build",
            "--network",
            "host",
            "--build-arg",
            f"BASE_IMAGE={base_image}",
            "--build-arg",
            f"APP={service}",
            "-f",
            "apps/Dockerfile",
            "-t",
            tag,
            ".",
            timeout=1200,
        )
        size = int(engine.docker("image", "inspect", "-f", "{{.Size}}", tag).stdout.strip())
        print(f"{tag}: built in {time.monotonic() - started:.0f} s, {size / 1e6:.0f} MB")  # noqa: T201 - a measurement for the log
        built[service] = tag
    return built


def run_container(engine: DockerEngine, image: str, name: str, env: dict[str, str]) -> str:
    args = [
        "run",
        "-d",
        "--name",
        name,
        "--read-only",
        "--tmpfs",
        TMP,
        "--user",
        "10001:10001",
        "--network",
        "host",
    ]
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    return engine.docker(*args, image).stdout.strip()


def wait_for_health(engine: DockerEngine, name: str, port: int, timeout: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        state = json.loads(engine.docker("inspect", "-f", "{{json .State}}", name).stdout)
        if not state["Running"]:
            logs = engine.docker("logs", name, check=False)
            pytest.fail(f"{name} exited ({state['ExitCode']}):\n{logs.stdout[-3000:]}\n{logs.stderr[-3000:]}")
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
            if response.status_code == 200:
                return response
        except httpx.HTTPError as error:
            last = error
        time.sleep(0.3)
    logs = engine.docker("logs", name, check=False)
    pytest.fail(f"{name} did not answer /health within {timeout} s ({last}):\n{logs.stderr[-3000:]}")


@pytest.fixture(scope="session")
def bot_api() -> Iterator[BotApiServer]:
    with BotApiServer() as server:
        yield server


@pytest.fixture(scope="session")
def running(engine: DockerEngine, images: dict[str, str], bot_api: BotApiServer) -> Iterator[dict[str, int]]:
    """The three containers, started like the chart starts them; service -> port on loopback."""
    ports = {service: free_port() for service in SERVICES}
    common = {"HOST": "127.0.0.1", "LOG_FORMAT": "text", "OTEL_TRACES_EXPORTER": "none"}
    run_container(engine, images["query"], "query", {**common, "PORT": str(ports["query"])})
    run_container(
        engine,
        images["bot"],
        "bot",
        {
            **common,
            "PORT": str(ports["bot"]),
            "TELEGRAM_BOT_TOKEN": bot_api.token,
            "TELEGRAM_API_BASE_URL": bot_api.base_url,
            "BOT_MODE": "webhook",
            "WEBHOOK_SECRET": WEBHOOK_SECRET,
            "QUERY_SERVICE_URL": f"http://127.0.0.1:{ports['query']}",
            "STATE_BACKEND": "memory",
        },
    )
    # The watcher with the bot's configuration (its own memory store: it checks nothing here).
    run_container(
        engine,
        images["watcher"],
        "watcher",
        {
            **common,
            "PORT": str(ports["watcher"]),
            "TELEGRAM_BOT_TOKEN": bot_api.token,
            "TELEGRAM_API_BASE_URL": bot_api.base_url,
            "QUERY_SERVICE_URL": f"http://127.0.0.1:{ports['query']}",
            "STATE_BACKEND": "memory",
        },
    )
    try:
        for service, port in ports.items():
            wait_for_health(engine, service, port)
        yield ports
    finally:
        # Before the Bot API test server stops: the bot keeps connections to it open.
        engine.docker("rm", "-f", *SERVICES, check=False)


@pytest.mark.parametrize("service", list(SERVICES))
def test_image_answers_health_read_only_as_non_root(
    engine: DockerEngine, running: dict[str, int], service: str
) -> None:
    response = httpx.get(f"http://127.0.0.1:{running[service]}/health", timeout=5)
    assert response.status_code == 200
    # The main process runs as 10001, not root, on a read-only root filesystem.
    inspect = json.loads(engine.docker("inspect", service).stdout)[0]
    assert inspect["HostConfig"]["ReadonlyRootfs"] is True
    pid = inspect["State"]["Pid"]
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    assert status["Uid"].split()[:2] == ["10001", "10001"]
    probe = engine.docker("exec", service, "python", "-c", "open('/app/x', 'w')", check=False)
    assert probe.returncode != 0
    assert "Read-only file system" in probe.stderr
    tmp = engine.docker("exec", service, "python", "-c", "open('/tmp/x', 'w').write('ok')", check=False)
    assert tmp.returncode == 0, tmp.stderr


CHART_SCRIPT = """
from mcstatbot_bot.history_chart import ChartRequest, render
labels = ("Гравці онлайн", "Максимум гравців", "Офлайн", "Затримка, мс", "Час (UTC)", "Перевірок ще немає")
png = render(ChartRequest([(3600, True, 1, 2, 3.0)], 0, 86400, "uk", "Тест · останні 24 години", *labels))
print(len(png), png[:8] == bytes.fromhex("89504e470d0a1a0a"))
"""


def test_the_bot_image_draws_a_cyrillic_history_chart_read_only(
    engine: DockerEngine, images: dict[str, str]
) -> None:
    """matplotlib and its DejaVu Sans fonts ship in the bot image: a chart in Ukrainian is drawn on a
    read-only root filesystem as the non-root user (font cache under HOME=/tmp), every glyph found
    (`-W error`: matplotlib's "Glyph missing" warning would fail it)."""
    run = ["run", "--rm", "--read-only", "--tmpfs", TMP, "--user", "10001:10001", "--entrypoint", "python"]
    result = engine.docker(*run, images["bot"], "-W", "error", "-c", CHART_SCRIPT, check=False, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    size, is_png = result.stdout.split()
    assert is_png == "True"
    assert int(size) > 10_000


# What each service's layers add to the base image (docs/kubernetes.md: about 62 MB, and 308 MB for the bot
# with the /history chart's matplotlib, numpy, Pillow and fontTools; the watcher ships the bot's
# dependencies too), with room to grow: more means the runtime stage ships what it should not (uv,
# sources, build tools, dev dependencies).
LAYERS_MB = {"query": 100, "bot": 360, "watcher": 360}


@pytest.mark.parametrize("service", list(SERVICES))
def test_image_size_over_the_base_stays_small(
    engine: DockerEngine, images: dict[str, str], base_image: str, service: str
) -> None:
    def size(image: str) -> int:
        return int(engine.docker("image", "inspect", "-f", "{{.Size}}", image).stdout.strip())

    added = (size(images[service]) - size(base_image)) / 1e6
    assert 0 < added < LAYERS_MB[service], f"{service}: {added:.0f} MB over the base image"


@pytest.mark.parametrize("service", list(SERVICES))
def test_image_is_built_as_documented(engine: DockerEngine, images: dict[str, str], service: str) -> None:
    config = json.loads(engine.docker("image", "inspect", images[service]).stdout)[0]["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == [f"mcstatbot-{service}"]
    assert f"{SERVICES[service]}/tcp" in config["ExposedPorts"]
    # The runtime stage ships the virtual environment only: no uv, no sources, no build tools.
    script = (
        "import json, os, shutil, sys; print(json.dumps([os.path.exists('/opt/uv'),"
        " os.path.exists('/app/apps'), shutil.which('uv'), shutil.which(sys.argv[1]) is not None]))"
    )
    check = engine.docker(
        "run", "--rm", "--entrypoint", "python", images[service], "-c", script, f"mcstatbot-{service}"
    )
    assert json.loads(check.stdout) == [False, False, None, True]
    # PYTHONOPTIMIZE=2 (no docstrings nor asserts in memory), with its bytecode already compiled, for the
    # standard library and the environment alike: nothing is compiled at start
    script = (
        "import importlib.util, json, os, sys, fastapi; print(json.dumps([sys.flags.optimize]"
        " + [os.path.exists(importlib.util.cache_from_source(m.__file__)) for m in (json, fastapi)]))"
    )
    check = engine.docker("run", "--rm", "--entrypoint", "python", images[service], "-c", script)
    assert json.loads(check.stdout) == [2, True, True]


def test_status_crosses_both_images(running: dict[str, int], bot_api: BotApiServer) -> None:
    """A webhook update reaches the bot container, which asks the query container and answers the chat."""
    bot_api.set_webhook(f"http://127.0.0.1:{running['bot']}/telegram/webhook", secret_token=WEBHOOK_SECRET)
    since = bot_api.last_seq
    bot_api.send_text(4242, "/status 127.0.0.1:25565")
    reply = bot_api.wait_for_call_sync(
        "sendMessage", lambda call: str(call.chat_id) == "4242", since=since, timeout=30
    )
    assert reply.text  # the bot answered the chat; 127.0.0.1 is refused by the private-address rule
    forbidden = httpx.post(
        f"http://127.0.0.1:{running['query']}/api/v1/status",
        json={"server_url": "127.0.0.1:25565"},
        timeout=10,
    )
    assert forbidden.status_code == 403
    assert forbidden.json()["detail"]["code"] == "forbidden_address"


def pod_env(workload: dict[str, Any], secrets: dict[str, str]) -> dict[str, str]:
    """A rendered Job's container environment, secret references resolved from `secrets` (by key)."""
    container = workload["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        else:
            env[item["name"]] = secrets[item["valueFrom"]["secretKeyRef"]["key"]]
    return env


def test_the_webhook_hook_job_runs_from_the_image(
    engine: DockerEngine, images: dict[str, str], bot_api: BotApiServer
) -> None:
    """The chart's post-install Job, as rendered (its env and args), registers the webhook."""
    helm = ROOT / ".tools" / "bin" / "helm"
    rendered = subprocess.run(
        [
            str(helm),
            "template",
            "mcstatbot",
            str(ROOT / "charts" / "mcstatbot"),
            "-n",
            "mcstatbot",
            "-f",
            str(ROOT / "charts" / "mcstatbot" / "ci" / "default-values.yaml"),
            "--set",
            "ingress.enabled=true",
            "--set",
            "ingress.className=traefik",
            "--set",
            "ingress.hosts[0].host=bot.example.com",
            "--set",
            f"telegram.apiBaseUrl={bot_api.base_url}",
            "--show-only",
            "templates/bot/webhook-job.yaml",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    job = yaml.safe_load(rendered.stdout)
    env = pod_env(job, {"telegram-bot-token": bot_api.token, "webhook-secret": WEBHOOK_SECRET})
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    run = ["run", "--rm", "--read-only", "--tmpfs", TMP, "--user", "10001:10001", "--network", "host"]
    for key, value in env.items():
        run += ["-e", f"{key}={value}"]
    try:
        result = engine.docker(*run, images["bot"], *args, check=False, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        assert bot_api.webhook_url == "https://bot.example.com/telegram/webhook"
        assert any(c.params.get("secret_token") == WEBHOOK_SECRET for c in bot_api.calls_to("setWebhook"))
    finally:
        bot_api.delete_webhook()


async def test_the_kind_table_job_runs_from_the_image(
    engine: DockerEngine, images: dict[str, str], tmp_path: Path
) -> None:
    """The kind overlay's create-table Job (its command and env) makes the table, TTL on `ttl`."""
    job = yaml.safe_load((ROOT / "k8s/overlays/kind/dynamodb-local/create-table-job.yaml").read_text())
    container = job["spec"]["template"]["spec"]["containers"][0]
    with DynamoDBLocal(tmp_path / "dynamodb.log") as dynamodb:
        env = pod_env(job, {"telegram-bot-token": "1:unused"})
        env["AWS_ENDPOINT_URL_DYNAMODB"] = dynamodb.endpoint_url  # the in-cluster Service, here on loopback
        run = ["run", "--rm", "--read-only", "--tmpfs", TMP, "--user", "10001:10001", "--network", "host"]
        for key, value in env.items():
            run += ["-e", f"{key}={value}"]
        command = container["command"]
        result = engine.docker(*run, "--entrypoint", command[0], images["bot"], *command[1:], check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        session = get_session()
        async with session.create_client(
            "dynamodb",
            region_name=env["AWS_REGION"],
            endpoint_url=dynamodb.endpoint_url,
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - DynamoDB Local accepts any credentials
        ) as client:
            table = (await client.describe_table(TableName=env["DYNAMODB_TABLE"]))["Table"]
            ttl = (await client.describe_time_to_live(TableName=env["DYNAMODB_TABLE"]))[
                "TimeToLiveDescription"
            ]
        assert table["KeySchema"] == [{"AttributeName": "chat_id", "KeyType": "HASH"}]
        assert ttl.get("AttributeName") == "ttl"
        # Running it again is harmless (the Job retries until DynamoDB Local answers).
        again = engine.docker(*run, "--entrypoint", command[0], images["bot"], *command[1:], check=False)
        assert again.returncode == 0, again.stdout + again.stderr


@pytest.mark.parametrize("service", ["query"])
def test_the_dev_stage_serves_synced_sources(engine: DockerEngine, base_image: str, service: str) -> None:
    """skaffold's kind profile builds `--target dev`: sources editable under /app, writable by the app user
    (file sync), the service started by watchfiles. One service is enough: both build the same stages of
    apps/Dockerfile, the service's name aside."""
    tag = f"mcstatbot-{service}:dev-test"
    engine.docker(
        "build",
        "--network",
        "host",
        "--build-arg",
        f"BASE_IMAGE={base_image}",
        "--build-arg",
        f"APP={service}",
        "--target",
        "dev",
        "-f",
        "apps/Dockerfile",
        "-t",
        tag,
        ".",
        timeout=1200,
    )
    config = json.loads(engine.docker("image", "inspect", tag).stdout)[0]["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"][0] == "watchfiles"
    assert f"mcstatbot-{service}" in config["Entrypoint"]
    package = f"mcstatbot_{service}"
    script = (
        f"import json, os, {package} as p; d = os.path.dirname(p.__file__);"
        " print(json.dumps([d, os.access(d, os.W_OK)]))"
    )
    where = engine.docker("run", "--rm", "--user", "10001:10001", "--entrypoint", "python", tag, "-c", script)
    directory, writable = json.loads(where.stdout)
    assert directory == f"/app/apps/{service}/src/{package}"  # where skaffold syncs apps/<service>/src/**
    assert writable is True
    # the reloader its entrypoint runs is installed (the packages' `reload` extra), and runs
    reloader = engine.docker("run", "--rm", "--entrypoint", "watchfiles", tag, "--version")
    assert reloader.stdout.strip().startswith("watchfiles v"), reloader.stdout
