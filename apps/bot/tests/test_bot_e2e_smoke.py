"""First end-to-end check: PTB over HTTP to the Bot API test server, the real query service, a Java peer."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from mcstatbot_testkit.minecraft import JavaPeer
    from mcstatbot_testkit.services import ServiceProcess
    from mcstatbot_testkit.telegram import BotApiServer


async def test_status_polling(
    api: BotApiServer, start_bot: Callable[..., ServiceProcess], java_peer: JavaPeer
) -> None:
    start_bot()
    api.send_text(101, f"/status {java_peer.address}")
    reply = await api.wait_for_call("sendMessage", lambda c: c.chat_id == 101, timeout=15)
    assert "Online" in reply.text
