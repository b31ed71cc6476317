"""asyncio Protocols for proxy and region-endpoint listeners.

A region endpoint and a proxy speak the same protocol; they differ only in how a session is
bound: an endpoint picks a proxy of the cache's current cluster at authentication, a
proxy's own port serves only caches of its cluster. When another process runs that
cluster, the endpoint hands the connection to ``backend.relay`` instead.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import traceback
from bisect import bisect_left
from time import perf_counter_ns

from backend.dataplane import DataPlane, ProxyState
from backend.engine import Engine
from backend.latency import BOUNDS_NS, BUCKET_OF_SLOT, MAX, SLOT_NS, SLOTS, SUM, CommandLatency
from backend.protocol.ascii import AsciiCodec
from backend.protocol.binary import BinaryCodec
from backend.relay import Relay
from backend.session import Session
from backend.topology import Proxy

log = logging.getLogger(__name__)

AUTH_TIMEOUT_REPLY = b"CLIENT_ERROR authentication timeout\r\n"
HANDLER_ERROR_REPLY = b"SERVER_ERROR internal error; closing the connection\r\n"
BINARY_MAGIC = 0x80
_reported_failures: set[tuple[str, str, int]] = set()  # each distinct bug is logged once


def handler_failed(codec: AsciiCodec | BinaryCodec, data: bytes, exc: Exception) -> bytes:
    """What a connection whose command raised gets: every reply already computed in this
    read, then (ASCII) a SERVER_ERROR line, then the connection closes. The failure is
    logged once per place in the code, with the input's shape but none of its bytes (they
    are a tenant's keys and values)."""
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    where = (type(exc).__name__, frame.filename.rsplit("/", 1)[-1], frame.lineno or 0)
    if where not in _reported_failures and len(_reported_failures) < 1000:
        _reported_failures.add(where)
        if isinstance(codec, BinaryCodec):
            shape = f"binary, opcode 0x{data[1]:02x}" if len(data) > 1 else "binary"
        else:
            command = data.split(b" ", 1)[0].split(b"\n", 1)[0][:12]
            name = command.decode() if command.isalpha() and command.isascii() else "?"
            shape = f"ASCII, first command {name!r}"
        log.error(
            "memcache command failed (%s at %s:%d) on a %d-byte read (%s); connection closed",
            *where,
            len(data),
            shape,
        )
    codec.closing = True
    done = b"".join(codec.out)
    return done if isinstance(codec, BinaryCodec) else done + HANDLER_ERROR_REPLY


def _closed() -> None:
    """A released session's way to close: its connection is already gone."""


class MemcacheProtocol(asyncio.Protocol):
    __slots__ = (
        "dataplane",
        "region",
        "proxy",
        "auth_timeout",
        "transport",
        "session",
        "codec",
        "auth_timer",
        "fault",
        "delayed_until",
        "engine",
        "changes",
        "latency",
        "untimed",
    )

    def __init__(
        self, dataplane: DataPlane, region: str, auth_timeout: float, proxy: Proxy | None = None
    ) -> None:
        self.dataplane = dataplane
        self.region = region
        self.proxy = proxy
        self.auth_timeout = auth_timeout
        # Both set by connection_made, which asyncio calls before anything else.
        self.transport: asyncio.Transport
        self.session: Session
        self.codec: AsciiCodec | BinaryCodec | None = None
        self.auth_timer: asyncio.TimerHandle | None = None
        self.fault: ProxyState | None = None  # the serving proxy's fault, once authenticated
        self.delayed_until = 0.0  # loop time the last held-back reply is due
        self.engine: Engine | None = None  # the cache's engine, once authenticated
        self.changes = dataplane.changes  # where a read notes its engine for the sampler
        self.latency: CommandLatency | None = None  # the cache's latency, once authenticated
        self.untimed = 0  # reads to pass before the next one timed (``CommandLatency.every``)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport
        self.dataplane.transports.add(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        host = peer[0] if isinstance(peer, tuple) else str(peer)
        self.session = Session(self.dataplane, host, self.region, transport.close, self.proxy)
        self.auth_timer = asyncio.get_running_loop().call_later(
            self.auth_timeout, self._auth_expired
        )
        # Bound what a client that does not read its replies can make us buffer.
        transport.set_write_buffer_limits(high=4 * 1024 * 1024)

    def data_received(self, data: bytes) -> None:
        # Authenticated, the read is timed, or one in ``latency.every`` of them is when the
        # cache is busy (``backend.latency``); ``started`` 0: not timed.
        untimed = self.untimed
        if untimed:
            self.untimed = untimed - 1
            started = 0
        else:
            started = perf_counter_ns() if self.latency is not None else 0
        codec = self.codec
        if codec is None:
            codec_class = BinaryCodec if data[0] == BINARY_MAGIC else AsciiCodec
            codec = self.codec = codec_class(self.session)
        elif codec.closing:
            return  # closing after a held-back reply: nothing more is read
        try:
            reply = codec.feed(data)
        except Exception as exc:  # a bug must cost this connection only, and lose no reply
            reply = handler_failed(codec, data, exc)
        fault = self.fault
        if fault is not None and (fault.delay_s or self.delayed_until):
            if started and (latency := self.latency) is not None:  # timed when it is written
                self.untimed = latency.every - 1
            self._send_later(reply, codec.closing, fault.delay_s, started)
        else:
            if reply:
                self.transport.write(reply)
                if started and (latency := self.latency) is not None:  # record(), inlined
                    took = perf_counter_ns() - started
                    self.untimed = latency.every - 1
                    slot = (took - 1) // SLOT_NS
                    window = latency.window
                    window[
                        BUCKET_OF_SLOT[slot] if slot < SLOTS else bisect_left(BOUNDS_NS, took)
                    ] += 1
                    window[SUM] += took
                    if took > window[MAX]:
                        window[MAX] = took
            if codec.closing:
                if codec.handoff is not None:
                    self._hand_off(codec)
                    return
                self.transport.close()
        engine = self.engine
        if engine is not None:  # counted here, once per read, whatever the codec buffered
            counters = engine.stats
            counters.bytes_read += len(data)
            counters.bytes_written += len(reply)
            if engine.noted != self.changes.epoch:  # Changes.note's test, inlined
                self.changes.note(engine)
        elif self.session.auth is not None:  # just authenticated: bind the hot path
            auth = self.session.auth
            if self.auth_timer is not None:
                self.auth_timer.cancel()
                self.auth_timer = None
            self.fault = self.dataplane.proxy_state[auth.proxy]
            self.engine = auth.engine
            if auth.engine.latency is None:  # the cache's first connection
                auth.engine.latency = CommandLatency()
            self.latency = auth.engine.latency
            auth.engine.stats.bytes_read += len(data)
            auth.engine.stats.bytes_written += len(reply)
            # ``attach`` noted it mid-read: what was counted since (these bytes, commands
            # pipelined after the login) must be seen too.
            self.changes.note(auth.engine)

    def _hand_off(self, codec: AsciiCodec | BinaryCodec) -> None:
        """The cache's cluster runs on another process: the relay takes this connection
        (its transport, from now on) there. Nothing was attached here: the owner's proxy
        holds the session."""
        handoff, relay_to = codec.handoff, self.session.relay_to
        assert handoff is not None and relay_to is not None
        if self.auth_timer is not None:
            self.auth_timer.cancel()
            self.auth_timer = None
        credential, addresses = relay_to
        cache = self.dataplane.cache_of(credential)
        cluster = cache.cluster if cache is not None else "?"
        codec.handoff = None
        codec.release()
        self.session.close_connection = _closed
        Relay(self.dataplane, self.transport, credential.username, cluster).start(
            addresses, handoff
        )

    def _send_later(self, reply: bytes, close: bool, delay_s: float, started: int) -> None:
        """Fault "slow": hold this reply back; replies keep their order even if the delay
        changes meanwhile. ``started``: when its read came (``perf_counter_ns``; 0: not
        timed), so the delay counts in the cache's latency, as the client waits it."""
        loop = asyncio.get_running_loop()
        due = max(loop.time() + delay_s, self.delayed_until)
        self.delayed_until = due
        loop.call_at(due, self._send_delayed, reply, close, due, started)

    def _send_delayed(self, reply: bytes, close: bool, due: float, started: int) -> None:
        if due >= self.delayed_until:
            self.delayed_until = 0.0
        if self.transport.is_closing():
            return
        if reply:
            self.transport.write(reply)
            if started and self.latency is not None:
                self.latency.record(perf_counter_ns() - started)
                if self.engine is not None:  # its read was noted before it was timed
                    self.changes.note(self.engine)
        if close:
            self.transport.close()

    def pause_writing(self) -> None:
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()

    def _auth_expired(self) -> None:
        self.auth_timer = None
        if self.session.auth is None:
            if not isinstance(self.codec, BinaryCodec):  # binary has no unsolicited replies
                self.transport.write(AUTH_TIMEOUT_REPLY)
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.dataplane.transports.discard(self.transport)
        if self.auth_timer is not None:
            self.auth_timer.cancel()
            self.auth_timer = None
        self.session.connection_lost()
        self.session.close_connection = _closed
        if self.codec is not None:
            self.codec.release()
