"""The data plane's shared state: cluster stores, live sessions, proxy choice.

Listeners and sessions reach everything through one ``DataPlane``; the control plane
updates the registries it shares (``caches``, ``credentials``) and asks it to close
sessions, so the hot path never touches the database.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING

from backend.store import ClusterStore
from backend.throttle import AuthThrottle
from backend.topology import Proxy, Topology

if TYPE_CHECKING:
    from backend.control.models import Cache, Credential
    from backend.engine import Engine
    from backend.session import Session

FlushRecorder = Callable[[str, str], None]


class ProxyState:
    """Live per-proxy facts: its sessions and its injected fault (operators test with it)."""

    __slots__ = ("connections", "sessions", "delay_s", "down")

    def __init__(self) -> None:
        self.connections = 0
        self.sessions: set[Session] = set()
        self.delay_s = 0.0  # fault "slow": every reply of this proxy waits this long
        self.down = False  # fault "down": no listener, no sessions, endpoints route around it


class DataPlane:
    def __init__(
        self, topology: Topology, throttle: AuthThrottle, lenient_keys: bool = False
    ) -> None:
        self.topology = topology
        self.throttle = throttle
        self.lenient_keys = lenient_keys
        self.stores = {c.name: ClusterStore(c.name) for c in topology.clusters()}
        self.proxy_state: dict[Proxy, ProxyState] = {p: ProxyState() for p in topology.proxies()}
        # Shared with (and maintained by) the control plane.
        self.caches: dict[str, Cache] = {}
        self.credentials: dict[str, Credential] = {}
        self.sessions: defaultdict[str, set[Session]] = defaultdict(set)
        # Every open memcache connection, authenticated or not, so a stop can close them.
        self.transports: set[asyncio.BaseTransport] = set()
        self.record_flush: FlushRecorder = lambda cache_id, proxy: None
        # Caches of the service itself (the monitor's probes): never listed, never placed.
        self.internal_caches: dict[str, Cache] = {}

    def engine_for(self, cache: Cache) -> Engine:
        """The storage engine of a cache on its cluster (the data plane's one way in)."""
        return self.stores[cache.cluster].engine(cache.id, cache.limit_bytes)

    def choose_proxy(self, cluster_name: str) -> Proxy | None:
        """The proxy of the cluster with the fewest sessions, skipping proxies that are down:
        spreads load like DNS would, and routes around an outage."""
        cluster = self.topology.cluster(cluster_name)
        if cluster is None:
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

    def drop_proxy_sessions(self, proxy: Proxy) -> int:
        """Close every session a proxy serves (it went down); clients reconnect elsewhere."""
        live = list(self.proxy_state[proxy].sessions)
        for session in live:
            session.close_connection()
        return len(live)

    def disconnect(self, username: str) -> int:
        """Close every live session of a credential (it was deleted)."""
        live = list(self.sessions.get(username, ()))
        for session in live:
            session.close_connection()
        return len(live)
