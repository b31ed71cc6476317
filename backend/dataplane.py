"""The data plane's state: cluster stores, live sessions, proxy choice, and its own view
of caches and credentials.

Listeners and sessions reach everything through one ``DataPlane``. Its ``caches`` and
``credentials`` are its own records, kept up to date by the control plane's events
(``subscribe``): the control plane never holds them nor calls into the data plane, so the
hot path never touches the database and the two planes could live in different processes.
A session holds the data plane's ``Credential``; an event changes that object in place, so
a capability change or a revocation applies from the session's next command at the cost of
one attribute read, as before.

Threads (``backend.loops``): everything here runs on the serving loop, events included
(``subscribe(bus, loop)`` has them delivered there). The control thread only *reads*, and
only through the queries below (``choose_proxy``, ``sessions_of``, ``usage``,
``peek_engine``, ``caches_now``, and for ``backend.activity`` ``activity_now``,
``activity_of``, ``live_peers``): plain reads of ints, attributes and dict lookups, each
atomic under the GIL (a figure may be a few microseconds old, never torn), and copies made
by one C call (``dict.copy``) of what it iterates. None of them creates or changes
anything, and none wakes the serving loop: a 10 000-cache ``/metrics`` scrape costs that
loop nothing but the GIL it shares.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from backend.activity import CredentialActivity, LastAuth, Protocol_
from backend.changes import Changes
from backend.control.models import Cache, Credential
from backend.events import (
    CLIENT_FLUSH_ORIGIN,
    CacheCreated,
    CacheDeleted,
    CacheFlushed,
    CacheMoved,
    CapabilitiesChanged,
    ClusterOwners,
    ControlLink,
    CredentialAdded,
    CredentialRevoked,
    EventBus,
    KeyTrackingRequested,
    PrimaryPromoted,
)
from backend.keyactivity import TRACK_FOR_S, KeyActivity, KeyReport
from backend.store import ClusterStore, LruEngine
from backend.throttle import AuthThrottle
from backend.topology import Proxy, Topology

if TYPE_CHECKING:
    from backend.engine import Engine
    from backend.session import Session

FlushRecorder = Callable[[str, str], None]


class Closable(Protocol):
    """A connection the data plane can close (a relayed one: ``backend.relay``)."""

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Usage:
    """What a cache uses right now, as the operator's cache listing shows it."""

    memory_used: int
    items: int
    connections: int
    get_hits: int
    get_misses: int


class ProxyState:
    """Live per-proxy facts: its sessions and its injected fault (operators test with it)."""

    __slots__ = ("connections", "sessions", "delay_s", "down")

    def __init__(self) -> None:
        self.connections = 0
        self.sessions: set[Session] = set()
        self.delay_s = 0.0  # fault "slow": every reply of this proxy waits this long
        self.down = False  # fault "down": no listener, no sessions, endpoints route around it


class DataPlane:
    """``clusters`` are the clusters this process runs (``--clusters``; None: all): only
    they get a store and serve sessions here. A cache on another cluster is known (its
    records, for authentication on the region endpoints) but has no engine here;
    ``remote_proxies`` says where its cluster runs, for the relay (``backend.relay``)."""

    def __init__(
        self,
        topology: Topology,
        throttle: AuthThrottle,
        lenient_keys: bool = False,
        clusters: frozenset[str] | None = None,
    ) -> None:
        self.topology = topology
        self.throttle = throttle
        self.lenient_keys = lenient_keys
        self.stores = {
            c.name: ClusterStore(c.name)
            for c in topology.clusters()
            if clusters is None or c.name in clusters
        }
        # Cluster name -> "host:port" of its proxies on the process that runs it, for the
        # clusters run elsewhere; a cluster absent here is served here, or by nobody.
        self.remote_proxies: dict[str, list[str]] = {}
        self.proxy_state: dict[Proxy, ProxyState] = {p: ProxyState() for p in topology.proxies()}
        # The data plane's own view, maintained from the control plane's events.
        self.caches: dict[str, Cache] = {}
        self.credentials: dict[str, Credential] = {}
        self.sessions: defaultdict[str, set[Session]] = defaultdict(set)
        # Every open memcache connection, authenticated or not, so a stop can close them.
        self.transports: set[asyncio.BaseTransport] = set()
        self.record_flush: FlushRecorder = lambda cache_id, proxy: None
        # Caches of the service itself (the monitor's probes): never listed, never placed.
        self.internal_caches: dict[str, Cache] = {}
        # Relayed connections by username, so a revocation or a move here closes them too.
        self.relays: defaultdict[str, set[Closable]] = defaultdict(set)
        # False while this process may have missed another's change (``ControlLink``):
        # new authentications wait for the re-read; live sessions go on.
        self.control_link_up = True
        # Username -> its usage here (``backend.activity``), from its first authentication.
        self.activity: dict[str, CredentialActivity] = {}
        # Engines whose sampled figures moved, for the analytics sampler (``backend.changes``):
        # every change of an engine's traffic, usage or connections outside a connection's
        # read is noted here by whoever makes it; the listener notes reads.
        self.changes = Changes()

    # -- following the control plane ----------------------------------------------------
    def subscribe(self, bus: EventBus, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Follow the control plane's events, on ``loop`` (the serving loop) when the
        control plane publishes from another thread."""
        bus.subscribe(CacheCreated, self._cache_created, loop)
        bus.subscribe(CredentialAdded, self._credential_added, loop)
        bus.subscribe(CapabilitiesChanged, self._capabilities_changed, loop)
        bus.subscribe(PrimaryPromoted, self._primary_promoted, loop)
        bus.subscribe(CredentialRevoked, self._credential_revoked, loop)
        bus.subscribe(CacheFlushed, self._cache_flushed, loop)
        bus.subscribe(CacheMoved, self._cache_moved, loop)
        bus.subscribe(CacheDeleted, self._cache_deleted, loop)
        bus.subscribe(KeyTrackingRequested, self._key_tracking_requested, loop)
        bus.subscribe(ClusterOwners, self._cluster_owners, loop)
        bus.subscribe(ControlLink, self._control_link, loop)
        self._follow_activity(bus, loop)

    def _control_link(self, event: ControlLink) -> None:
        self.control_link_up = event.up

    def _cluster_owners(self, event: ClusterOwners) -> None:
        """Replaced whole (one assignment): a reader never sees half of an update. Set from
        ``ClusterOwners`` events (several processes on PostgreSQL, issue 14)."""
        self.remote_proxies = {cluster: list(addresses) for cluster, addresses in event.remote}

    def _cache_created(self, event: CacheCreated) -> None:
        cache = Cache(event.cache_id, event.name, event.plan, event.region, event.cluster)
        # Its engine first, then the record: a reader on the control thread that finds the
        # cache finds its engine (``peek_engine``) and never has to create one.
        engine = self.engine_for(cache) if self.serves(cache.cluster) else None
        self.caches[event.cache_id] = cache
        if engine is not None:
            self.changes.note(engine)  # after the record: a reader taking it finds the cache

    def _credential_added(self, event: CredentialAdded) -> None:
        credential = Credential(
            event.username, event.password, event.cache_id, event.primary, event.write, event.flush
        )
        self.credentials[event.username] = credential
        self.caches[event.cache_id].credentials.append(credential)

    def _capabilities_changed(self, event: CapabilitiesChanged) -> None:
        credential = self.credentials[event.username]  # the very object sessions hold
        credential.write, credential.flush = event.write, event.flush

    def _primary_promoted(self, event: PrimaryPromoted) -> None:
        for credential in self.caches[event.cache_id].credentials:
            credential.primary = credential.username == event.username

    def _credential_revoked(self, event: CredentialRevoked) -> None:
        self._revoke(event.username)

    def _revoke(self, username: str) -> int:
        credential = self.credentials.pop(username, None)
        if credential is None:
            return 0
        credential.revoked = True  # a session mid-batch stops at its next command
        cache = self.caches.get(credential.cache_id)
        if cache is not None:
            cache.credentials.remove(credential)
        return self.disconnect(username)

    def _cache_flushed(self, event: CacheFlushed) -> None:
        cache = self.caches[event.cache_id]
        # A client's flush has run already; a cache run elsewhere is flushed there.
        if event.origin != CLIENT_FLUSH_ORIGIN and self.serves(cache.cluster):
            engine = self.engine_for(cache)
            engine.flush()
            self.changes.note(engine)

    def _cache_moved(self, event: CacheMoved) -> None:
        """The old cluster's copy is emptied and dropped; sessions are closed, so clients
        reconnect through the region endpoint and land on the new cluster."""
        cache = self.caches[event.cache_id]
        old_store = self.stores.get(event.from_cluster)
        old = self.engine_for(cache) if old_store is not None else None
        if old is not None:
            old.flush()
        new_store = self.stores.get(event.to_cluster)
        new = None
        if new_store is not None:
            new = new_store.engine(cache.id, cache.limit_bytes)  # before the move
        cache.cluster = event.to_cluster
        if old_store is not None:
            old_store.drop(cache.id)
        for engine in (old, new):  # after the move: readers find it gone, or replaced
            if engine is not None:
                self.changes.note(engine)
        for credential in cache.credentials:
            self.disconnect(credential.username)

    def _cache_deleted(self, event: CacheDeleted) -> None:
        for username in event.usernames:
            self._revoke(username)
        cache = self.caches.pop(event.cache_id, None)
        if cache is not None and self.serves(cache.cluster):
            engine = self.peek_engine(cache)
            self.stores[cache.cluster].drop(cache.id)
            if engine is not None:
                self.changes.note(engine)

    def _key_tracking_requested(self, event: KeyTrackingRequested) -> None:
        """Start (or prolong) sampling the cache's keys; it stops by itself once nobody
        has asked for ``TRACK_FOR_S``, so the hot path stops paying for it."""
        cache = self.caches.get(event.cache_id)
        engine = self.peek_engine(cache) if cache is not None else None
        if engine is None:
            return
        now = time.monotonic()
        activity = engine.key_activity
        if activity is not None and activity.separator == event.separator:
            activity.asked = now
            return
        engine.key_activity = KeyActivity(now, event.separator)
        if activity is None:
            asyncio.get_running_loop().call_later(TRACK_FOR_S, self._expire_keys, engine)

    def _expire_keys(self, engine: Engine) -> None:
        activity = engine.key_activity
        if activity is None:
            return
        left = TRACK_FOR_S - (time.monotonic() - activity.asked)
        if left <= 0:
            engine.key_activity = None
        else:
            asyncio.get_running_loop().call_later(left, self._expire_keys, engine)

    # -- credential activity (``backend.activity``) ---------------------------------------
    def _follow_activity(self, bus: EventBus, loop: asyncio.AbstractEventLoop | None) -> None:
        """A deleted credential's record goes with it (usernames are never reused)."""
        bus.subscribe(CredentialRevoked, self._forget_activity, loop)
        bus.subscribe(CacheDeleted, self._forget_cache_activity, loop)

    def _forget_activity(self, event: CredentialRevoked) -> None:
        self.activity.pop(event.username, None)

    def _forget_cache_activity(self, event: CacheDeleted) -> None:
        for username in event.usernames:
            self.activity.pop(username, None)

    def record_auth(
        self, username: str, protocol: Protocol_, proxy: str, peer: str
    ) -> CredentialActivity:
        """A successful authentication: the record every session of the credential shares
        (created at its first), its ``last_auth`` replaced in one store."""
        activity = self.activity.get(username)
        if activity is None:
            activity = self.activity[username] = CredentialActivity(time.monotonic())
        activity.last_auth = LastAuth(time.time(), protocol, proxy, peer)
        return activity

    def activity_now(self) -> dict[str, CredentialActivity]:
        """Every record, copied in one C call (for the sampler on the control thread)."""
        return self.activity.copy()

    def activity_of(self, username: str) -> CredentialActivity | None:
        return self.activity.get(username)

    def live_peers(self, username: str) -> list[str]:
        """The peer address of each live session of a credential (a set copied in one C
        call, then immutable attributes read)."""
        return sorted(s.peer_host for s in list(self.sessions.get(username, ())))

    # -- queries (also what the control plane may ask: ``DataPlaneView``) -----------------
    def key_report(self, cache_id: str) -> KeyReport | None:
        """The cache's sampled key activity, or None while it is not tracked."""
        cache = self.caches.get(cache_id)
        engine = self.peek_engine(cache) if cache is not None else None
        activity = engine.key_activity if engine is not None else None
        return activity.report(time.monotonic()) if activity is not None else None

    def command_counts(self, cache_id: str) -> dict[str, tuple[int, int]]:
        """memcached's hits and misses per command (``cas`` misses include bad values)."""
        cache = self.caches.get(cache_id)
        engine = self.peek_engine(cache) if cache is not None else None
        if engine is None:
            return {}
        s = engine.stats
        return {
            "get": (s.get_hits, s.get_misses),
            "delete": (s.delete_hits, s.delete_misses),
            "incr": (s.incr_hits, s.incr_misses),
            "decr": (s.decr_hits, s.decr_misses),
            "cas": (s.cas_hits, s.cas_misses + s.cas_badval),
            "touch": (s.touch_hits, s.touch_misses),
        }

    def sessions_of(self, username: str) -> int:
        return len(self.sessions.get(username, ()))

    def usage(self, cache_id: str) -> Usage:
        """The one place the API's usage figures come from: the cache's engine. Read-only,
        safe from the control thread: a cache the data plane has not heard of yet uses
        nothing."""
        cache = self.caches.get(cache_id)
        engine = self.peek_engine(cache) if cache is not None else None
        if engine is None:
            return Usage(0, 0, 0, 0, 0)
        usage, stats = engine.usage(), engine.stats
        return Usage(
            usage.bytes, usage.items, stats.curr_connections, stats.get_hits, stats.get_misses
        )

    def caches_now(self) -> list[Cache]:
        """The caches as of now, copied in one C call (atomic under the GIL), for readers
        on the control thread that iterate them while the serving loop changes the dict."""
        return list(self.caches.copy().values())

    def engines_now(self) -> dict[str, Engine]:
        """{cache id: engine} of every cache that has an engine here, as of now: what
        ``peek_engine`` answers for each of ``caches_now``, in one pass (the analytics
        sampler reads every cache each second; a call per cache was a tenth of its time).
        A dict, not a list of pairs: 10 000 new tuples a second would be young objects
        for the collector to walk. The dicts read are copied in single C calls, atomic
        under the GIL, as the serving loop changes them."""
        engines = {name: store.engines.copy() for name, store in self.stores.items()}
        none: dict[str, LruEngine] = {}
        return {
            cache.id: engine
            for cache in self.caches.copy().values()
            if (engine := engines.get(cache.cluster, none).get(cache.id)) is not None
        }

    def engine_of(self, cache_id: str) -> Engine | None:
        """``peek_engine`` by id: None for a cache unknown here or without an engine here."""
        cache = self.caches.get(cache_id)
        return self.peek_engine(cache) if cache is not None else None

    def peek_engine(self, cache: Cache) -> Engine | None:
        """The cache's engine if it has one, never creating it: for readers on another
        thread (metrics, analytics, usage), where ``engine_for`` would race the serving loop."""
        store = self.stores.get(cache.cluster)
        return store.engines.get(cache.id) if store is not None else None

    def engine_for(self, cache: Cache) -> Engine:
        """The storage engine of a cache on its cluster (the data plane's one way in)."""
        return self.stores[cache.cluster].engine(cache.id, cache.limit_bytes)

    def serves(self, cluster_name: str) -> bool:
        """Whether this process runs the cluster (its store, its proxies)."""
        return cluster_name in self.stores

    def choose_proxy(self, cluster_name: str) -> Proxy | None:
        """The proxy of the cluster with the fewest sessions, skipping proxies that are down:
        spreads load like DNS would, and routes around an outage. None for a cluster not
        run here (``remote_proxies`` may know where it runs)."""
        cluster = self.topology.cluster(cluster_name)
        if cluster is None or cluster_name not in self.stores:
            return None
        up = [p for p in cluster.proxies if not self.proxy_state[p].down]
        return min(up, key=lambda p: self.proxy_state[p].connections) if up else None

    def cache_of(self, credential: Credential) -> Cache | None:
        cache_id = credential.cache_id
        return self.caches.get(cache_id) or self.internal_caches.get(cache_id)

    def attach(self, session: Session) -> None:
        auth = session.auth
        assert auth is not None
        self.sessions[auth.credential.username].add(session)
        state = self.proxy_state[auth.proxy]
        state.connections += 1
        state.sessions.add(session)
        stats = auth.engine.stats
        stats.curr_connections += 1
        stats.total_connections += 1
        self.changes.note(auth.engine)

    def detach(self, session: Session) -> None:
        auth = session.auth
        assert auth is not None
        username = auth.credential.username
        live = self.sessions.get(username)
        if live is not None:
            live.discard(session)
            if not live:
                del self.sessions[username]
        state = self.proxy_state[auth.proxy]
        state.connections -= 1
        state.sessions.discard(session)
        auth.engine.stats.curr_connections -= 1
        self.changes.note(auth.engine)

    def drop_proxy_sessions(self, proxy: Proxy) -> int:
        """Close every session a proxy serves (it went down); clients reconnect elsewhere."""
        live = list(self.proxy_state[proxy].sessions)
        for session in live:
            session.close_connection()
        return len(live)

    def disconnect(self, username: str) -> int:
        """Close every live session of a credential (it was deleted, its cache moved),
        and every connection relayed for it to another process."""
        live = list(self.sessions.get(username, ()))
        for session in live:
            session.close_connection()
        for relay in list(self.relays.pop(username, ())):
            relay.close()
        return len(live)
