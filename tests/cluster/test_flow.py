"""The whole flow on the cluster: a Telegram update reaches the bot through Traefik, the bot asks the query
service by its Service name, the query service probes a real Java peer (TCP) and a real Bedrock peer (UDP)
and caches in the in-cluster Redis, and the reply (with buttons that then edit in place) arrives at the Bot
API test server.

The chart is installed with the kind values (webhook mode) adapted as in test_helm_install. The Bot API
test server on the host end of the cluster's link delivers updates to the Ingress on the node's NodePort,
like Telegram calls a cluster's load balancer, with the webhook secret. The peers (tests/peers) listen on
loopback, so a socat forwarder (TCP, or UDP for Bedrock) on the host end of the link gives the pods a route
to them; the query service is allowed private addresses (the link's are private). Chat state is in DynamoDB
Local on the host.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import TYPE_CHECKING

import httpx
import pytest
from mcstatbot_testkit.harness import TelegramUser

from tests.cluster.conftest import (
    CHART,
    HELMS,
    KIND_INGRESS_HOST,
    KIND_VALUES,
    RELEASE,
    bot_ready,
    cluster_values,
    link_service,
    namespace,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from mcstatbot_testkit.dynamodb import DynamoDBLocal
    from mcstatbot_testkit.minecraft import BedrockPeer, JavaPeer

    from tests.cluster.conftest import AppImages, Cluster, LinkBotApiServer

pytestmark = pytest.mark.timeout(7200)


@pytest.fixture(scope="module")
def release(
    cluster: Cluster,
    app_images: AppImages,
    bot_api: LinkBotApiServer,
    dynamodb: DynamoDBLocal,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    values = cluster_values("kind", app_images, bot_api)
    values["query"]["allowPrivateAddresses"] = True
    overrides: Path = tmp_path_factory.mktemp("flow") / "values.yaml"
    overrides.write_text(json.dumps(values))
    secret = secrets.token_hex(16)
    with namespace(cluster, "flow") as ns:
        cluster.kubectl(
            "create", "secret", "generic", "mcstatbot-telegram", "-n", ns,
            f"--from-literal=telegram-bot-token={bot_api.token}", f"--from-literal=webhook-secret={secret}",
        )  # fmt: skip
        cluster.apply(link_service("dynamodb-local", cluster.host_ip, 8000, dynamodb.port), ns)
        cluster.run(
            str(HELMS["helm3"]), "install", RELEASE, str(CHART), "-n", ns, "-f", str(KIND_VALUES),
            "-f", str(overrides), "--wait", "--timeout", "5m",
            timeout=420,
        )  # fmt: skip
        # Telegram would call the Ingress host's public address; here it is the node's NodePort on the link.
        bot_api.webhook_host(KIND_INGRESS_HOST)
        bot_api.set_webhook(f"{cluster.ingress_url}/telegram/webhook", secret_token=secret)
        try:
            yield ns
        finally:
            bot_api.delete_webhook()
            bot_api.webhook_host(None)


def test_status_reply_through_ingress_query_service_and_redis(
    cluster: Cluster, bot_api: LinkBotApiServer, java_on_link: tuple[JavaPeer, str], release: str
) -> None:
    peer, address = java_on_link
    user = TelegramUser(bot_api, chat_id=4242, reply_timeout=60)

    reply = user.send(f"/status {address}")

    assert address in reply.text, reply.text
    assert "1.21.1" in reply.text, reply.text
    assert peer.status_requests >= 1
    # Delivered by webhook to the Ingress (Traefik), and acknowledged.
    assert any(d.status == 200 for d in bot_api.deliveries), bot_api.deliveries
    # The query service cached the answer in the in-cluster Redis.
    ready = cluster.kubectl(
        "exec", "-n", release, "deploy/mcstatbot-query", "--", "python", "-c",
        "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8081/ready').read().decode())",
    ).stdout  # fmt: skip
    assert json.loads(ready)["cache"] == "redis", ready
    assert json.loads(ready)["cache_up"] is True, ready
    # The bot keeps its chat state in DynamoDB Local (the Service on the host end of the link).
    assert bot_ready(cluster, release)["state_store"] == "ok"
    scan = ("exec", "-n", release, "deploy/mcstatbot-redis", "--", "redis-cli", "--scan", "--pattern", "*")
    keys = cluster.kubectl(*scan).stdout
    deadline = time.monotonic() + 20  # the write may land just after the reply
    while not keys.strip() and time.monotonic() < deadline:
        time.sleep(1)
        keys = cluster.kubectl(*scan).stdout
    assert keys.strip(), "the in-cluster Redis holds no cached answer"

    probes = peer.status_requests
    edit = user.press(reply, "Players")

    assert "Steve" in edit.text, edit.text
    assert "Alex" in edit.text, edit.text
    assert peer.status_requests >= probes


def test_bedrock_status_through_the_cluster(
    bot_api: LinkBotApiServer, bedrock_on_link: tuple[BedrockPeer, str], release: str
) -> None:
    """The query pod pings a Bedrock server over UDP (RakNet unconnected ping) through the pod network and
    the node's NAT, and the bot replies with what the server said."""
    del release  # installed for this test by the fixture
    peer, address = bedrock_on_link
    user = TelegramUser(bot_api, chat_id=4343, reply_timeout=60)

    reply = user.send(f"/status {address} bedrock")

    assert address in reply.text, reply.text
    assert "mcstatbot bedrock peer" in reply.text, reply.text
    assert peer.status_requests >= 1


def _upgrade_source_ranges(cluster: Cluster, ns: str, ranges: list[str]) -> None:
    cluster.run(
        str(HELMS["helm3"]), "upgrade", RELEASE, str(CHART), "-n", ns, "--reuse-values",
        "--set-json", f"ingress.allowedSourceRanges={json.dumps(ranges)}", "--wait", "--timeout", "5m",
        timeout=420,
    )  # fmt: skip


def test_the_ingress_admits_only_the_allowed_source_ranges(
    cluster: Cluster, bot_api: LinkBotApiServer, java_on_link: tuple[JavaPeer, str], release: str
) -> None:
    """Traefik enforces the chart's Middleware: a caller outside the ranges gets 403; its update is not lost.

    With Telegram's ranges (the chart's default) this host is refused at the Ingress, so the Bot API test
    server keeps redelivering, as Telegram does; once the host's address is admitted, the update is answered.
    """
    _, address = java_on_link
    chat_id = 4343
    _upgrade_source_ranges(cluster, release, ["149.154.160.0/20", "91.108.4.0/22"])
    middlewares = cluster.kubectl("get", "middlewares.traefik.io", "-n", release, "-o", "name").stdout
    assert "source-range" in middlewares, middlewares
    # Traefik applies the new Middleware a moment after the API server has it: wait until a plain GET from
    # this host is refused by Traefik (403; the bot itself would answer a GET 405) before the update is sent.
    deadline = time.monotonic() + 60
    refused = False
    while not refused and time.monotonic() < deadline:
        probe = httpx.get(f"{cluster.ingress_url}/telegram/webhook", headers={"Host": KIND_INGRESS_HOST})
        refused = probe.status_code == 403
        time.sleep(0.5)
    assert refused, "Traefik never applied the source-range Middleware"
    try:
        since_seq = bot_api.last_seq
        since = len(bot_api.deliveries)
        bot_api.send_text(chat_id, f"/status {address}")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(d.status == 403 for d in bot_api.deliveries[since:]):
                break
            time.sleep(0.5)
        statuses = {d.status for d in bot_api.deliveries[since:]}
        assert 403 in statuses, statuses
        assert 200 not in statuses, statuses
        assert not bot_api.calls_to("sendMessage", chat_id, since=since_seq)
    finally:
        _upgrade_source_ranges(cluster, release, [f"{cluster.host_ip}/32"])
    reply = bot_api.wait_for_call_sync(
        "sendMessage", lambda c: c.chat_id == chat_id, timeout=90, since=since_seq
    )
    assert address in reply.text, reply.text
