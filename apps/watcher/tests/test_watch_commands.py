"""/watch, /unwatch and /watches through a real bot process, the query service and a Java peer."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from mcstatbot_testkit.net import LOOPBACK, free_port
from mcstatbot_testkit.watching import WatchStack, ask

if TYPE_CHECKING:
    from mcstatbot_testkit.minecraft import JavaPeer
    from mcstatbot_testkit.services import ServiceProcess
    from mcstatbot_testkit.telegram import BotApiServer

T = TypeVar("T")


GROUP = -100777


def test_watch_list_unwatch(stack: WatchStack, api: BotApiServer, peer: JavaPeer) -> None:
    stack.bot()
    chat = 501
    assert "watches no server" in ask(api, chat, "/watches")
    added = ask(api, chat, f"/watch {peer.address}")
    assert f"Watching {peer.address}" in added
    assert "online now" in added
    assert "already watches" in ask(api, chat, f"/watch {peer.address}")
    assert "also tell who joins" in ask(api, chat, f"/watch {peer.address} players")
    listed = ask(api, chat, "/watches")
    assert "1 of at most 10" in listed
    assert peer.address in listed
    assert "joins and leaves" in listed
    assert "No longer watching" in ask(api, chat, f"/unwatch {peer.address}")
    assert "does not watch" in ask(api, chat, f"/unwatch {peer.address}")
    assert "watches no server" in ask(api, chat, "/watches")


def test_limit_bad_addresses_and_offline_servers(
    stack: WatchStack, api: BotApiServer, peer: JavaPeer
) -> None:
    stack.bot(WATCH_MAX_PER_CHAT="2")
    chat = 502
    offline = f"{LOOPBACK}:{free_port()}"  # nothing listens there: accepted, it alerts when it comes up
    text = ask(api, chat, f"/watch {offline}")
    assert "offline now" in text
    assert "Watching" in ask(api, chat, f"/watch {peer.address}")
    refused = ask(api, chat, f"/watch {LOOPBACK}:{free_port()}")
    assert "watches 2 servers already, the most it may" in refused
    assert "is not a server address" in ask(api, chat, "/watch bad_host!:99999")
    assert "Which server?" in ask(api, chat, "/watch")
    assert "Which server?" in ask(api, chat, f"/watch {peer.address} nonsense")
    assert "2 of at most 2" in ask(api, chat, "/watches")


def test_forbidden_address_refused_like_status(
    stack: WatchStack, api: BotApiServer, strict_query: ServiceProcess, peer: JavaPeer
) -> None:
    stack.bot(QUERY_SERVICE_URL=strict_query.url)
    chat = 503
    watch = ask(api, chat, f"/watch {peer.address}")
    status = ask(api, chat, f"/status {peer.address}")
    assert "private or reserved network address" in watch
    assert watch == status
    assert "watches no server" in ask(api, chat, "/watches")


def test_only_admins_change_watches_in_groups(stack: WatchStack, api: BotApiServer, peer: JavaPeer) -> None:
    stack.bot()
    api.set_admins(GROUP, [11])
    member = ask(api, GROUP, f"/watch {peer.address}", chat_type="supergroup", user_id=12)
    assert "only its administrators" in member
    assert "watches no server" in ask(api, GROUP, "/watches", chat_type="supergroup", user_id=12)
    admin = ask(api, GROUP, f"/watch {peer.address}", chat_type="supergroup", user_id=11)
    assert "Watching" in admin
    assert "only its administrators" in ask(
        api, GROUP, f"/unwatch {peer.address}", chat_type="supergroup", user_id=12
    )
    assert peer.address in ask(api, GROUP, "/watches", chat_type="supergroup", user_id=12)
    assert "No longer" in ask(api, GROUP, f"/unwatch {peer.address}", chat_type="supergroup", user_id=11)
