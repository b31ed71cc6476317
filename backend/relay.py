"""The endpoint relay: a region-endpoint connection whose cache's cluster runs on another
process is carried, after authentication, to a proxy of that cluster on that process.

A client holds one ``servers`` value for good, whichever process runs its cache's cluster
(issue 14). The region endpoint authenticates it as usual (``Session.authenticate``); when
the cluster is run elsewhere (``DataPlane.remote_proxies``) the codec hands the connection
over (``framing.Handoff``) and this module takes its transport: it connects to one of the
owner's proxies, replays the client's authentication request there (the remote proxy
authenticates the client again, from the shared database, and answers it), then splices
bytes both ways without parsing them. A proxy's own port never relays: a proxy is a proxy.

Bounded: each direction buffers at most ``BUFFER_HIGH`` bytes in its writer before the
other side stops reading (``pause_reading``), and the client is not read at all while the
remote connection is being made. Both sides close together. When no proxy of the cluster
answers within ``CONNECT_TIMEOUT`` the client gets the codec's answer for a cluster that is
down, and the connection closes.

Everything here runs on the serving loop and is event driven: no task per byte, only one
task per relayed connection while it connects.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time

from backend.dataplane import DataPlane
from backend.protocol.framing import Handoff

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 2.0  # seconds to reach a proxy of the owning process, all tries together
BUFFER_HIGH = 1024 * 1024  # bytes a writer may hold before the other side stops reading
BUFFER_LOW = 256 * 1024
_WARN_EVERY = 10.0  # seconds between warnings about one unreachable cluster
_last_warned: dict[str, float] = {}


class Relay:
    """One relayed connection: the client's transport (accepted by a region endpoint) and
    the connection to the owning process's proxy."""

    __slots__ = ("dataplane", "username", "cluster", "client", "remote", "connecting", "closed")

    def __init__(
        self, dataplane: DataPlane, client: asyncio.Transport, username: str, cluster: str
    ) -> None:
        self.dataplane = dataplane
        self.username = username
        self.cluster = cluster
        self.client = client
        self.remote: asyncio.Transport | None = None
        self.connecting: asyncio.Task | None = None
        self.closed = False

    def start(self, addresses: list[str], handoff: Handoff) -> None:
        """Take the client's transport over and connect to the owner, on the serving loop."""
        client = self.client
        client.pause_reading()  # nothing more is read until the remote side can take it
        client.set_protocol(_ClientSide(self, handoff))
        client.set_write_buffer_limits(high=BUFFER_HIGH, low=BUFFER_LOW)
        self.dataplane.relays[self.username].add(self)
        self.connecting = asyncio.get_running_loop().create_task(self._connect(addresses, handoff))

    async def _connect(self, addresses: list[str], handoff: Handoff) -> None:
        """Try the owner's proxies, starting at a random one (spreading the load as the
        endpoint's own choice does) until one accepts or the time is up."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CONNECT_TIMEOUT
        start = random.randrange(len(addresses))
        for address in addresses[start:] + addresses[:start]:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            host, _, port = address.rpartition(":")
            try:
                transport, _ = await asyncio.wait_for(
                    loop.create_connection(lambda: _RemoteSide(self), host.strip("[]"), int(port)),
                    remaining,
                )
            except (OSError, TimeoutError, ValueError):
                continue
            if self.closed:  # the client left meanwhile
                transport.close()
                return
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            transport.set_write_buffer_limits(high=BUFFER_HIGH, low=BUFFER_LOW)
            self.remote = transport
            transport.write(handoff.request)
            handoff.request = bytearray()
            self.client.resume_reading()
            return
        self._warn_unreachable(addresses)
        if not self.closed:
            self.client.write(handoff.unavailable)
            self.close()

    def _warn_unreachable(self, addresses: list[str]) -> None:
        now = time.monotonic()
        if now - _last_warned.get(self.cluster, -_WARN_EVERY) >= _WARN_EVERY:
            _last_warned[self.cluster] = now
            log.warning(
                "relay: no proxy of cluster %s answered within %.0f s (%s); the client "
                "was told the cluster is unavailable",
                self.cluster,
                CONNECT_TIMEOUT,
                ", ".join(addresses),
            )

    def close(self) -> None:
        """Close both sides (each sends what it already holds first); idempotent."""
        if self.closed:
            return
        self.closed = True
        live = self.dataplane.relays.get(self.username)
        if live is not None:
            live.discard(self)
            if not live:
                del self.dataplane.relays[self.username]
        if self.connecting is not None and not self.connecting.done():
            self.connecting.cancel()
        self.client.close()
        if self.remote is not None:
            self.remote.close()


class _ClientSide(asyncio.Protocol):
    """The client's connection, from the hand-off on."""

    __slots__ = ("relay", "handoff")

    def __init__(self, relay: Relay, handoff: Handoff) -> None:
        self.relay = relay
        self.handoff = handoff  # holds what arrives before the remote side is connected

    def data_received(self, data: bytes) -> None:
        remote = self.relay.remote
        if remote is not None:
            if not self.relay.closed:
                remote.write(data)
        else:  # rare: a TLS record decrypted after pause_reading; bounded by that record
            self.handoff.request += data

    def eof_received(self) -> bool | None:
        """The client will send nothing more: pass that on and let the remote answer what
        it has, then close (a plain TCP client may half-close after its last request)."""
        remote = self.relay.remote
        if remote is not None and remote.can_write_eof():
            remote.write_eof()
            return True
        return None

    def pause_writing(self) -> None:
        if self.relay.remote is not None:
            self.relay.remote.pause_reading()

    def resume_writing(self) -> None:
        if self.relay.remote is not None:
            self.relay.remote.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        relay = self.relay
        relay.dataplane.transports.discard(relay.client)
        relay.close()


class _RemoteSide(asyncio.Protocol):
    """The connection to the owning process's proxy."""

    __slots__ = ("relay",)

    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    def data_received(self, data: bytes) -> None:
        if not self.relay.closed:
            self.relay.client.write(data)

    def pause_writing(self) -> None:
        self.relay.client.pause_reading()

    def resume_writing(self) -> None:
        self.relay.client.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.relay.close()
