"""Whatever a user types, the API answers 2xx/4xx, never 5xx (hypothesis).

The probing layer is replaced here by a recorder (a stand-in, said so): random inputs include public IP
addresses and names, and this machine may send packets only to loopback. The recorder answers "offline",
so what is tested is everything between the HTTP request and the probe: parsing, validation, the
private-address rule for literals, the error handlers and the cache.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcstatbot_common.models import Edition, ErrorCode, PlayerList, ProbeError, ServerStatus
from mcstatbot_query.app import create_app
from mcstatbot_query.resolver import Resolver
from mcstatbot_query.settings import QuerySettings

if TYPE_CHECKING:
    from mcstatbot_common.addresses import ServerAddress


class RecordingProber:
    """Stands in for the Prober: checks IP literals with the real rule, records, answers offline."""

    def __init__(self) -> None:
        self.resolver = Resolver(allow_private=False)
        self.calls: list[str] = []

    async def _check(self, address: ServerAddress) -> ServerStatus:
        if address.ip is not None:
            await self.resolver.resolve(address.host, 1.0)  # literal: no DNS, may raise ForbiddenAddressError
        self.calls.append(str(address))
        return ServerStatus(
            address=address.with_port(25565),
            host=address.host,
            port=address.port or 25565,
            edition=Edition.JAVA,
            online=False,
            error=ProbeError(code=ErrorCode.TIMEOUT, message="stand-in"),
        )

    async def status(self, address: ServerAddress, edition: Edition) -> ServerStatus:
        del edition
        return await self._check(address)

    async def players(self, address: ServerAddress, edition: Edition) -> tuple[PlayerList, ServerStatus]:
        del edition
        status = await self._check(address)
        return PlayerList(address=status.address, online=False, error=status.error), status


inputs = st.one_of(
    st.text(max_size=320),
    st.from_regex(r"\[?[0-9a-fA-F:.%]{0,45}\]?(:[0-9]{0,6})?", fullmatch=True),
    st.sampled_from(["localhost", "[::1]:1", "169.254.169.254", "a" * 300, "ü.com:1", "%00", "..", "/"]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=inputs, edition=st.sampled_from(["auto", "java", "bedrock", "pocket", ""]))
def test_no_input_makes_a_5xx(text: str, edition: str) -> None:
    async def run() -> None:
        app = create_app(QuerySettings(allow_private_addresses=False, redis_url=None))
        async with app.router.lifespan_context(app):
            app.state.service.prober = RecordingProber()
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://query.test") as client:
                responses = [
                    await client.post("/api/v1/status", json={"server_url": text, "edition": edition}),
                    await client.post("/api/v1/players", json={"server_url": text}),
                    await client.get(f"/api/v1/status/{quote(text, safe='')}", params={"edition": edition}),
                    await client.get(f"/api/v1/players/{quote(text, safe=':[]')}"),
                ]
        for response in responses:
            assert response.status_code < 500, (response.status_code, response.text)
            assert "X-Cache" in response.headers
            if response.status_code >= 400:
                assert response.json()["detail"]["code"]
                assert response.json()["detail"]["message"]

    asyncio.run(run())
