"""Name resolution for probes, and the private-address rule.

A name is resolved once; every address it resolves to is checked against the rule; the probe then
connects to one of those checked addresses (never resolving the name a second time, so a second DNS
answer cannot move the connection somewhere else: no DNS rebinding). SRV targets are resolved and
checked the same way.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver
from mcstatbot_common.models import ErrorCode

from mcstatbot_query.errors import ForbiddenAddressError, ProbeFailedError

if TYPE_CHECKING:
    from collections.abc import Coroutine

T = TypeVar("T")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_METADATA = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})
_LOCAL_NAMES = ("localhost", ".localhost")
MAX_ADDRESSES = 8
"""At most this many of the resolved addresses are tried (every one of them is checked)."""


def forbidden_reason(ip: IPAddress) -> str | None:
    """Why `ip` may not be probed when private addresses are not allowed, or None when it may."""
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            reason = forbidden_reason(mapped)
            if reason is not None:
                return reason
        if ip.teredo is not None:
            return "a Teredo tunnel address"
    checks: list[tuple[bool, str]] = [
        (ip in _METADATA, "a cloud metadata address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_unspecified, "an unspecified address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT, "a shared (CGNAT) address"),
        (ip.is_private, "a private address"),
        (ip.is_reserved, "a reserved address"),
        (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local, "a site-local address"),
        (not ip.is_global, "not a public address"),
    ]
    for failed, reason in checks:
        if failed:
            return reason
    return None


@dataclass(frozen=True, slots=True)
class SrvTarget:
    target: str
    port: int


class Resolver:
    """Resolves names (A/AAAA, SRV) within a deadline and applies the private-address rule.

    With `nameservers` every lookup goes to them through dnspython; without, names go through the
    system's getaddrinfo (so /etc/hosts and search domains work) and SRV through dnspython with the
    system's resolv.conf.
    """

    def __init__(self, *, allow_private: bool, nameservers: list[tuple[str, int]] | None = None) -> None:
        self.allow_private = allow_private
        self._nameservers = nameservers or []
        self._dns: dns.asyncresolver.Resolver | None = None
        self._lookups: set[asyncio.Future[Any]] = set()

    def _dns_resolver(self) -> dns.asyncresolver.Resolver:
        if self._dns is None:
            if self._nameservers:
                resolver = dns.asyncresolver.Resolver(configure=False)
                resolver.nameservers = [
                    dns.nameserver.Do53Nameserver(host, port) for host, port in self._nameservers
                ]
            else:
                resolver = dns.asyncresolver.Resolver()
            self._dns = resolver
        return self._dns

    def check(self, ips: list[IPAddress], host: str) -> None:
        """Raise ForbiddenAddressError when any of `ips` is refused by the rule."""
        if self.allow_private:
            return
        for ip in ips:
            reason = forbidden_reason(ip)
            if reason is not None:
                shown = host if str(ip) == host else f"{host} resolves to {ip}, which"
                raise ForbiddenAddressError(f"{shown} is {reason}; such addresses may not be checked")

    async def resolve(self, host: str, timeout: float) -> list[IPAddress]:  # noqa: ASYNC109 - a deadline share
        """Every address `host` resolves to (IPv4 first), checked against the rule."""
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            self.check([literal], host)
            return [literal]
        try:
            if self._nameservers:
                ips = await self._run_out(self._resolve_dns(host, timeout), timeout)
            else:
                async with asyncio.timeout(timeout):
                    ips = await self._resolve_system(host)
        except (TimeoutError, ForbiddenAddressError, ProbeFailedError):
            raise
        except (OSError, dns.exception.DNSException, UnicodeError, ValueError) as exc:
            raise ProbeFailedError(ErrorCode.DNS, f"the name {host} could not be resolved") from exc
        if not ips:
            raise ProbeFailedError(ErrorCode.DNS, f"the name {host} has no addresses")
        ips = sorted(dict.fromkeys(ips), key=lambda ip: ip.version)
        self.check(ips, host)  # every address, not only those tried
        return ips[:MAX_ADDRESSES]

    async def _run_out(self, lookup: Coroutine[Any, Any, T], timeout: float) -> T:  # noqa: ASYNC109
        """Await a dnspython `lookup` for at most `timeout` seconds, never cancelling it.

        dnspython opens a UDP socket per query; under uvloop, a socket whose creation is cancelled is
        never closed (its create_datagram_endpoint does not clean up), so a probe cut off by its deadline
        leaked one. The look-up is given the same `timeout` as its own lifetime instead: cut off, it
        runs on by itself for at most that long and closes its sockets.
        """
        task = asyncio.ensure_future(lookup)
        self._lookups.add(task)
        task.add_done_callback(self._lookup_done)
        async with asyncio.timeout(timeout):
            return await asyncio.shield(task)

    def _lookup_done(self, task: asyncio.Future[Any]) -> None:
        self._lookups.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: the awaiting probe, if still there, has it too

    async def _resolve_system(self, host: str) -> list[IPAddress]:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        result: list[IPAddress] = []
        for _family, _type, _proto, _canon, sockaddr in infos:
            text = str(sockaddr[0]).split("%", 1)[0]
            result.append(ipaddress.ip_address(text))
        return result

    async def _resolve_dns(self, host: str, lifetime: float) -> list[IPAddress]:
        resolver = self._dns_resolver()
        result: list[IPAddress] = []
        errors: list[BaseException] = []
        answers = await asyncio.gather(
            *(
                resolver.resolve(host, rdtype, lifetime=lifetime, raise_on_no_answer=False)
                for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)
            ),
            return_exceptions=True,
        )
        for answer in answers:
            if isinstance(answer, dns.resolver.NXDOMAIN):
                raise answer
            if isinstance(answer, dns.exception.DNSException):
                errors.append(answer)
            elif isinstance(answer, BaseException):
                raise answer
            else:
                result.extend(ipaddress.ip_address(record.to_text()) for record in answer)
        if not result and errors:
            raise errors[0]
        return result

    async def srv(self, host: str, timeout: float) -> SrvTarget | None:  # noqa: ASYNC109 - a deadline share
        """The `_minecraft._tcp.<host>` SRV record, or None when there is none (or for IPs and localhost).

        Like the game's own client, a failed or slow SRV lookup (at most half of `timeout`) falls back to
        the name itself.
        """
        if _is_literal(host) or host == _LOCAL_NAMES[0] or host.endswith(_LOCAL_NAMES[1]):
            return None
        resolver = self._dns_resolver()
        lifetime = timeout / 2
        try:
            answer = await self._run_out(
                resolver.resolve(
                    f"_minecraft._tcp.{host}", dns.rdatatype.SRV, lifetime=lifetime, raise_on_no_answer=False
                ),
                lifetime,
            )
        except (dns.exception.DNSException, TimeoutError):
            return None
        records = sorted(answer, key=lambda r: (r.priority, -r.weight)) if answer.rrset else []
        for record in records:
            target = record.target.to_text(omit_final_dot=True).lower()
            if target and target != "." and 0 < record.port <= 65535:  # noqa: PLR2004
                return SrvTarget(target=target, port=int(record.port))
        return None


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
