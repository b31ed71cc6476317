"""Which addresses the service may connect to on a user's behalf (log drains).

A drain URL is chosen by a cache owner, and the backend POSTs to it with the URL's
credentials: without a rule, an owner could make the service reach its own API, the cloud
metadata service (169.254.169.254) or anything on the operator's private network
(server-side request forgery). The rule is applied to the resolved addresses, twice: when
the URL is set (a clear error for the owner) and at every connection, where the vetted
address is the one connected to, so a name that re-resolves elsewhere later (DNS
rebinding) cannot slip through.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import typing
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class EgressRefused(ValueError):
    """A destination the policy does not allow; the message says which and why."""


@dataclass(frozen=True)
class EgressPolicy:
    """``allow_internal`` (``--allow-internal-drains``) admits loopback and private ranges,
    for a drain receiver on the operator's own network and for tests; link-local
    (the metadata service), multicast, unspecified and reserved addresses stay refused."""

    allow_internal: bool = False

    def refusal(self, address: IPAddress) -> str | None:
        """Why ``address`` may not be reached, or None if it may."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address.is_link_local:
            return "a link-local address"
        if address.is_multicast or address.is_unspecified:
            return "not a unicast address"
        if address.is_loopback:  # before "reserved": Python counts ::1 as reserved
            return None if self.allow_internal else "a loopback address"
        if address.is_reserved:
            return "a reserved address"
        if self.allow_internal or address.is_global:
            return None
        return "a private address (an operator can allow these with --allow-internal-drains)"

    async def vet(self, host: str, port: int) -> list[str]:
        """Every address ``host`` resolves to, if all are allowed; else EgressRefused.

        All of them, not the first: a client may connect to any, and a name with one
        public and one internal address is exactly the rebinding trick."""
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise EgressRefused(f"{host} does not resolve ({exc})") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for text in addresses:
            reason = self.refusal(ipaddress.ip_address(text.split("%", 1)[0]))
            if reason is not None:
                raise EgressRefused(f"{host} resolves to {text}, {reason}")
        if not addresses:
            raise EgressRefused(f"{host} does not resolve")
        return addresses

    async def vet_url(self, url: str) -> None:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        await self.vet(parts.hostname or "", port)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network layer, connecting only to addresses the policy allows: it
    resolves the host itself and connects to the vetted address (TLS still verifies the
    certificate against the host name, which httpcore passes to ``start_tls``)."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend, policy: EgressPolicy) -> None:
        self._inner = inner
        self._policy = policy

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await asyncio.wait_for(self._policy.vet(host, port), timeout)
        except EgressRefused as exc:
            raise httpcore.ConnectError(f"refused by egress policy: {exc}") from None
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        return await self._inner.connect_tcp(
            addresses[0], port, timeout, local_address, socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("refused by egress policy: unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_client(policy: EgressPolicy, timeout: float) -> httpx.AsyncClient:
    """An HTTP client that can reach only what ``policy`` allows. Redirects are not
    followed (a redirect is another destination) and environment proxies are not used (a
    proxy would connect on our behalf, past the guard)."""
    transport = httpx.AsyncHTTPTransport(retries=0)
    pool = transport._pool  # httpx offers no public hook for httpcore's network backend
    pool._network_backend = GuardedBackend(pool._network_backend, policy)
    return httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False)
