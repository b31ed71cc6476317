"""Control-plane change events and the in-process bus that delivers them.

The control plane publishes one typed event per committed fact, **after** its transaction
commits (a rolled-back change publishes nothing). The data plane, the monitor, analytics
and the log drains subscribe; none of them holds the control plane's objects or is called
by it, so the control plane can later live in another process (the same events then travel
over PostgreSQL LISTEN/NOTIFY) without changing a subscriber.

In one process the bus is a plain dispatch: ``publish`` calls each subscriber of the
event's type in subscription order, and the memcache hot path never sees the bus at all.
A subscriber that lives on another event loop than the publisher's (the data plane on the
serving loop, while the control plane publishes from its own thread, ``backend.loops``)
subscribes with ``loop=``: its handler is then called on that loop, through
``call_soon_threadsafe``, so it never runs concurrently with the loop's own work. Those
calls keep publication order (the loop runs callbacks first in, first out); a publisher on
the subscriber's own loop calls it directly, as before. The API waits for delivery before
it answers a change (``EventBus.delivered``), so a capability switched off applies to live
connections from their next command after the answer. Events carry values only (never
mutable records), so a subscriber cannot change what another one sees.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, get_args

log = logging.getLogger(__name__)

# The origin a flush done by a memcache client is recorded with: the data plane has already
# run it when the control plane logs it, so its subscriber must not run it again.
CLIENT_FLUSH_ORIGIN = "memcache client"
# How long ``EventBus.delivered`` waits for another loop at most (it answers in well under
# a millisecond when that loop runs at all).
DELIVERY_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class CacheCreated:
    """A cache exists. Also published for every stored cache when the control plane loads,
    so a subscriber starting empty learns the state exactly as it learns changes."""

    cache_id: str
    name: str
    plan: str
    region: str
    cluster: str


@dataclass(frozen=True, slots=True)
class CacheMoved:
    """The cache left ``from_cluster`` (its items there are gone) for ``to_cluster``; live
    sessions must reconnect through the region endpoint."""

    cache_id: str
    from_cluster: str
    to_cluster: str
    proxy: str  # the old cluster's proxy that ran the flush


@dataclass(frozen=True, slots=True)
class CacheFlushed:
    cache_id: str
    cluster: str
    origin: str  # "web interface", "admin operation", or CLIENT_FLUSH_ORIGIN
    proxy: str


@dataclass(frozen=True, slots=True)
class CacheDeleted:
    cache_id: str
    cluster: str
    usernames: tuple[str, ...]  # its credentials, all revoked with it


@dataclass(frozen=True, slots=True)
class CredentialAdded:
    """A credential exists (created, or loaded at start-up like ``CacheCreated``)."""

    cache_id: str
    username: str
    password: bytes = field(repr=False)
    primary: bool
    write: bool
    flush: bool
    api: bool = False


@dataclass(frozen=True, slots=True)
class CapabilitiesChanged:
    cache_id: str
    username: str
    write: bool
    flush: bool
    api: bool = False


@dataclass(frozen=True, slots=True)
class CredentialRevoked:
    """Deleted: its live sessions stop at their next command and are closed."""

    cache_id: str
    username: str


@dataclass(frozen=True, slots=True)
class PrimaryPromoted:
    """``username`` is the primary now, with the ``api`` capability (a primary always has
    it); ``previous`` is a secondary that keeps its capabilities."""

    cache_id: str
    username: str
    previous: str


@dataclass(frozen=True, slots=True)
class SsoRotated:
    """The cache's dashboard secret changed; the previous dashboard URL is void."""

    cache_id: str


@dataclass(frozen=True, slots=True)
class ProxyFaultSet:
    """An operator injected (or cleared, ``mode="none"``) a fault on a proxy."""

    hostname: str
    mode: str  # "none", "slow" or "down"
    delay_ms: int


@dataclass(frozen=True, slots=True)
class LogLineWritten:
    """A line of a cache's app log, committed; ``drain`` is where the app forwards it."""

    cache_id: str
    line_id: int
    t: str
    source: str
    message: str
    app_name: str
    drain: str | None = field(repr=False)  # may carry user:password or a token


@dataclass(frozen=True, slots=True)
class KeyTrackingRequested:
    """The cache's owner is looking at its hot keys: sample them (``backend.keyactivity``)
    for a while longer. Not a change of state: nothing is stored or audited."""

    cache_id: str
    separator: bytes = b":"


Event = (
    CacheCreated
    | CacheMoved
    | CacheFlushed
    | CacheDeleted
    | CredentialAdded
    | CapabilitiesChanged
    | CredentialRevoked
    | PrimaryPromoted
    | SsoRotated
    | ProxyFaultSet
    | LogLineWritten
    | KeyTrackingRequested
)
EVENT_TYPES: tuple[type, ...] = get_args(Event)


@dataclass(frozen=True, slots=True)
class ClusterOwners:
    """Which clusters other processes serve, and at which proxy addresses (issue 14).

    Not a control-plane change (so not in ``Event``): each process learns it from the
    ``cluster_owners`` table (at start, on an owner's notification, at each heartbeat)
    and publishes it only in-process, when it changed. ``remote`` pairs a cluster with
    the advertised "host:port" of its proxies on the owning process; a cluster absent
    from it is served here. The embedded (SQLite) mode never publishes it.
    """

    remote: tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True, slots=True)
class ControlLink:
    """Whether this process hears the other processes' changes (issue 14): ``up=False``
    when its LISTEN connection is lost, ``up=True`` once it reconnected *and* re-read
    every cache and credential. Between the two the data plane refuses new
    authentications, so a credential revoked meanwhile can never log in here. Process-
    local, like ``ClusterOwners``; never published in the embedded mode."""

    up: bool


# What the bus carries: the control plane's facts, and the process-local ones above.
BusEvent = Event | ClusterOwners | ControlLink

E = TypeVar("E")


class _OnLoop:
    """A handler called on its own loop, whichever thread publishes."""

    __slots__ = ("loop", "handler")

    def __init__(self, loop: asyncio.AbstractEventLoop, handler: Callable[[Any], None]) -> None:
        self.loop = loop
        self.handler = handler

    def __call__(self, event: BusEvent) -> None:
        if asyncio._get_running_loop() is self.loop:  # the publisher runs on our loop
            self.handler(event)
            return
        try:
            self.loop.call_soon_threadsafe(_deliver, self.handler, event)
        except RuntimeError:  # the loop is closed: the service is stopping
            log.debug("event %r not delivered: its loop is closed", type(event).__name__)

    def __repr__(self) -> str:
        return f"{self.handler!r} on {self.loop!r}"


def _deliver(handler: Callable[[Any], None], event: BusEvent) -> None:
    try:
        handler(event)
    except Exception:
        log.exception("subscriber %r failed on %r", handler, type(event).__name__)


class EventBus:
    """In-order, in-process dispatch by exact event type: synchronous, or on the
    subscriber's loop when it gave one."""

    def __init__(self) -> None:
        self._subscribers: defaultdict[type, list[Callable[[Any], None]]] = defaultdict(list)
        self._loops: list[asyncio.AbstractEventLoop] = []

    def subscribe(
        self,
        event_type: type[E],
        handler: Callable[[E], None],
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """Call ``handler`` for every event of ``event_type``; on ``loop`` if given (from
        any publishing thread), else synchronously in the publisher's thread."""
        target: Callable[[Any], None] = handler
        if loop is not None:
            target = _OnLoop(loop, handler)
            if loop not in self._loops:
                self._loops.append(loop)
        self._subscribers[event_type].append(target)

    async def delivered(self) -> None:
        """Return once every event published before the call has reached its subscribers,
        also those on other loops (each loop has run every callback queued before ours).

        The API awaits it before answering a change, so "the answer came back" keeps
        meaning "live sessions already follow it". About one loop round trip each.
        """
        current = asyncio.get_running_loop()
        waits = [
            asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_nothing(), loop))
            for loop in self._loops
            if loop is not current and not loop.is_closed()
        ]
        if waits:  # bounded: a loop that stopped running must not hang the API
            await asyncio.wait(waits, timeout=DELIVERY_TIMEOUT_S)

    def publish(self, event: BusEvent) -> None:
        """Deliver to every subscriber of its type, in order.

        The change is already committed: a subscriber that raises is logged and the others
        still run, and the publisher never sees the error (it could not undo the change).
        """
        for handler in self._subscribers.get(type(event), ()):
            try:
                handler(event)
            except Exception:
                log.exception("subscriber %r failed on %r", handler, type(event).__name__)


async def _nothing() -> None:
    """Scheduled behind queued deliveries: when it has run, they have too."""
