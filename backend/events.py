"""Control-plane change events and the in-process bus that delivers them.

The control plane publishes one typed event per committed fact, **after** its transaction
commits (a rolled-back change publishes nothing). The data plane, the monitor, analytics
and the log drains subscribe; none of them holds the control plane's objects or is called
by it, so the control plane can later live in another process (the same events then travel
over PostgreSQL LISTEN/NOTIFY) without changing a subscriber.

In one process the bus is a plain synchronous dispatch: ``publish`` calls each subscriber
of the event's type in subscription order before it returns, so a capability change is
applied to live connections before the API answers, and the memcache hot path never sees
the bus at all. Events carry values only (never mutable records), so a subscriber cannot
change what another one sees.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, get_args

log = logging.getLogger(__name__)

# The origin a flush done by a memcache client is recorded with: the data plane has already
# run it when the control plane logs it, so its subscriber must not run it again.
CLIENT_FLUSH_ORIGIN = "memcache client"


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


@dataclass(frozen=True, slots=True)
class CapabilitiesChanged:
    cache_id: str
    username: str
    write: bool
    flush: bool


@dataclass(frozen=True, slots=True)
class CredentialRevoked:
    """Deleted: its live sessions stop at their next command and are closed."""

    cache_id: str
    username: str


@dataclass(frozen=True, slots=True)
class PrimaryPromoted:
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


Event = (
    CacheCreated | CacheMoved | CacheFlushed | CacheDeleted | CredentialAdded
    | CapabilitiesChanged | CredentialRevoked | PrimaryPromoted | SsoRotated | ProxyFaultSet
    | LogLineWritten
)  # fmt: skip
EVENT_TYPES: tuple[type, ...] = get_args(Event)

E = TypeVar("E")


class EventBus:
    """Synchronous, in-order, in-process dispatch by exact event type."""

    def __init__(self) -> None:
        self._subscribers: defaultdict[type, list[Callable[[Any], None]]] = defaultdict(list)

    def subscribe(self, event_type: type[E], handler: Callable[[E], None]) -> None:
        self._subscribers[event_type].append(handler)

    def publish(self, event: Event) -> None:
        """Deliver to every subscriber of its type, in order.

        The change is already committed: a subscriber that raises is logged and the others
        still run, and the publisher never sees the error (it could not undo the change).
        """
        for handler in self._subscribers.get(type(event), ()):
            try:
                handler(event)
            except Exception:
                log.exception("subscriber %r failed on %r", handler, type(event).__name__)
