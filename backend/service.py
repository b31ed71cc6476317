"""Service: builds every part and runs it on two asyncio loops (``backend.loops``): the
data plane on the caller's loop, everything else on a control thread.

Used by ``cachier-backend`` and, in-process, by ``cachier-tui``; it never installs signal
handlers or writes to the terminal itself — its caller decides both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import uvicorn

from backend import datadir, demo, metrics, tls, warm
from backend.activity import ActivitySampler, RepositoryUses
from backend.alerts import Alerts
from backend.analytics import Analytics
from backend.api.app import create_app
from backend.config import Config, format_address
from backend.control.database import DatabaseUnavailable, open_repository
from backend.control.drains import DrainLine, LogDrains
from backend.control.errors import Conflict, NotFound
from backend.control.models import Credential
from backend.control.ownership import STALE_AFTER_S, OwnershipRefused
from backend.control.plane import ControlPlane
from backend.control.repository import ControlRepository
from backend.control.secrets import KeyFileError, Secrets
from backend.dataplane import DataPlane
from backend.egress import EgressPolicy
from backend.events import CLIENT_FLUSH_ORIGIN, EventBus, LogLineWritten, ProxyFaultSet
from backend.listeners import MemcacheProtocol
from backend.loops import ControlThread
from backend.monitor import Monitor, probe_caches
from backend.peers import Peers
from backend.peerstats import PeerStats
from backend.status import StatusView
from backend.throttle import AuthThrottle
from backend.topology import Proxy, Region
from backend.webhooks import Webhooks

log = logging.getLogger(__name__)


class ServiceError(RuntimeError):
    """A start-up failure worth one line to the operator (port taken, bad data dir)."""


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn that leaves signals to its host (the CLI, or Textual in the TUI)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class Listening:
    """Where the service listens, once started (ports resolved), and what clients are told.

    The first four are for this machine (the in-process dashboard, the demo's clients, the
    tests): the bind host, with a wildcard replaced by loopback. The ``public``/
    ``advertised`` ones are handed to clients: --public-url and --advertise-host.
    """

    api_url: str
    endpoints: dict[str, str]  # region -> host:port
    tls_endpoints: dict[str, str]  # region -> host:port, when TLS is on
    proxies: dict[str, str]  # proxy hostname -> host:port
    public_api_url: str = ""
    advertised_endpoints: dict[str, str] = field(default_factory=dict)
    advertised_tls_endpoints: dict[str, str] = field(default_factory=dict)
    # With --api-tls: the certificate the API serves and the name it is issued for (the
    # advertised host), so an in-process client can verify it while connecting locally.
    api_certificate: Path | None = None
    api_server_name: str = ""


def _reachable(host: str) -> str:
    """The address this machine connects to for a listener bound to ``host``."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    return "::1" if host == "::" else host


def _public_api_url(config: Config, api_sock: socket.socket) -> str:
    """The API's base URL as clients (and the other processes) are told it."""
    port = api_sock.getsockname()[1]
    advertised = format_address(config.advertised_host()[0], port)
    return config.public_url or f"{config.api_scheme}://{advertised}"


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family, backlog=1024)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ServiceError(f"cannot listen on {format_address(host, port)}: {reason}") from None
    sock.setblocking(False)
    return sock


@dataclass
class _Sockets:
    """Every listening socket, bound before anything serves (a taken port fails fast)."""

    api: socket.socket
    regions: list[tuple[Region, socket.socket]]
    tls: list[tuple[Region, socket.socket]]
    proxies: list[tuple[Proxy, socket.socket]]
    tls_context: ssl.SSLContext | None
    certificate: Path | None  # the file of tls_context's certificate chain

    def all(self) -> list[socket.socket]:
        return [
            self.api,
            *(sock for _, sock in self.regions),
            *(sock for _, sock in self.tls),
            *(sock for _, sock in self.proxies),
        ]


class Service:
    """Every part of the service, on two loops (``backend.loops``).

    The data plane (proxies, region endpoints, sessions, stores) runs on the loop that
    calls ``start``: the serving loop. The control plane, the HTTP API, the monitor,
    analytics, log drains and the demo's incident timeline run on ``control_thread``, so
    no control-plane work (a database call, a 10 000-cache listing, a ``/metrics``
    scrape) ever holds the loop that serves memcache traffic. ``start`` and ``stop`` keep
    their meaning: awaited on the serving loop, they return once everything runs, or has
    stopped.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.bus = EventBus()
        self.control_thread = ControlThread()
        self.db: ControlRepository | None = None
        self.dataplane: DataPlane | None = None
        self.control: ControlPlane | None = None
        self.listening: Listening | None = None
        self.warnings: list[str] = []
        self.drains: LogDrains | None = None
        self.analytics: Analytics | None = None
        self.activity: ActivitySampler | None = None
        self.alerts: Alerts | None = None
        self.webhooks: Webhooks | None = None
        self._background: list[asyncio.Task] = []  # on the control loop
        self._proxy_servers: dict[str, asyncio.AbstractServer] = {}
        self.traffic: demo.Traffic | None = None
        self.monitor: Monitor | None = None
        self.status_view: StatusView | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._api: _EmbeddedUvicorn | None = None
        self._api_task: asyncio.Task | None = None
        self._serving_loop: asyncio.AbstractEventLoop | None = None
        # The other processes on one PostgreSQL database (issue 14); None in the embedded
        # mode, where this process owns every cluster and hears only its own changes.
        self.peers: Peers | None = None
        self.peer_stats: PeerStats | None = None
        self._snapshot_key = b""  # from the key file: encrypts warm-restart snapshots
        self._probe_key = b""  # from the key file: the probes' passwords, one per cluster
        self._save_contents_on_stop = False  # set once the last snapshot has been loaded

    async def start(self) -> Listening:
        config = self.config
        loop = self._serving_loop = asyncio.get_running_loop()
        throttle = AuthThrottle(
            config.auth_failure_limit, config.auth_failure_window, config.auth_user_failure_limit
        )
        self.dataplane = DataPlane(config.topology, throttle, config.lenient_keys, config.clusters)
        # Subscribers first: loading announces every stored cache and credential. The
        # control plane publishes from its thread; the data plane hears it on this loop.
        self.dataplane.subscribe(self.bus, loop)
        self.control_thread.start()
        try:
            await self.control_thread.call(self._open_control)
            try:
                sockets = self._bind_all()
            except ServiceError:
                await self.control_thread.call(self._close_db)
                raise
            await self.control_thread.call(self._claim_clusters, sockets)
            await self._restore_contents()
            self.listening = await self._serve(sockets)
            await self.control_thread.run(self._follow_peers())
        except BaseException:
            await self.stop()
            raise
        if config.demo:
            await self._start_demo()
        return self.listening

    # -- start-up, in order: control (its thread), sockets and listeners (here), API ----
    def _open_control(self) -> None:
        """On the control thread: the data dir, the repository (its connection belongs to
        this thread), the control plane loaded, analytics and the log drains."""
        config = self.config
        try:
            datadir.make_private(config.data_dir)
            secrets = Secrets.load_or_create(config.data_dir)
            self._snapshot_key = secrets.snapshot_key()
            self._probe_key = secrets.probe_key()
        except (OSError, KeyFileError) as exc:
            raise ServiceError(f"cannot use data directory {config.data_dir}: {exc}") from None
        try:
            self.db = open_repository(config.database_url, config.data_dir)
        except DatabaseUnavailable as exc:
            raise ServiceError(str(exc)) from None
        assert self.dataplane is not None
        control_loop = asyncio.get_running_loop()
        bus = self.bus
        self.control = control = ControlPlane(
            self.db, secrets, config.topology, bus, self.dataplane
        )

        # Data -> control: a client's flush is logged on the control loop, never by a
        # database call on the serving loop.
        def record_flush(cache_id: str, proxy: str) -> None:
            try:
                control_loop.call_soon_threadsafe(
                    control.record_flush, cache_id, proxy, CLIENT_FLUSH_ORIGIN
                )
            except RuntimeError:  # the control loop is closed: the service is stopping
                log.warning("flush of cache %s on %s not logged: stopping", cache_id, proxy)

        self.dataplane.record_flush = record_flush
        self.egress = EgressPolicy(allow_internal=config.allow_internal_drains)
        self.drains = LogDrains(egress=self.egress)
        bus.subscribe(LogLineWritten, self._forward_to_drain)  # submit() is thread-safe
        self.analytics = Analytics(self.dataplane, config.sample_interval)
        self.analytics.subscribe(bus, control_loop)
        self.activity = ActivitySampler(self.dataplane, store=RepositoryUses(self.db))
        self.webhooks = Webhooks(egress=self.egress)
        self.alerts = Alerts(control, self.analytics, self.dataplane, self.webhooks)
        self.warnings = control.load()
        self.peers = Peers.open(config, bus, control, self.db)

    # -- several processes on one PostgreSQL database (issue 14): ``backend.peers`` -----
    def _claim_clusters(self, sockets: _Sockets) -> None:
        """On the control thread, once the ports are known and before anything serves:
        claim this process's clusters, or refuse to start naming their owner."""
        if self.peers is None:
            return
        advertised = self.config.advertised_host()[0]
        proxies: dict[str, dict[str, str]] = {}
        for proxy, sock in sockets.proxies:
            address = format_address(advertised, sock.getsockname()[1])
            proxies.setdefault(proxy.cluster.name, {})[proxy.hostname] = address
        try:
            self.peers.claim(_public_api_url(self.config, sockets.api), proxies)
        except OwnershipRefused as exc:
            for sock in sockets.all():
                sock.close()
            raise ServiceError(str(exc)) from None

    async def _follow_peers(self) -> None:
        """On the control thread: the heartbeat and the other processes' changes."""
        if self.peers is not None:
            self._background += await self.peers.start(self.set_fault)

    def _release_clusters(self) -> None:
        if self.peers is not None and self.db is not None:
            self.peers.release()

    async def _restore_contents(self) -> None:
        """Warm restart (``backend/warm.py``): the items the last clean stop saved, loaded
        before any listener opens. From then on a stop saves them again, and only then: a
        start that failed before this point must not replace a snapshot with nothing."""
        if self.config.temporary_data_dir or self.dataplane is None:
            return  # --demo's data dir is new and is removed at the end: nothing to keep
        _, warnings = await warm.restore(
            self.dataplane, self._snapshot_key, self.config.data_dir, self.config.clusters
        )
        self.warnings += warnings
        self._save_contents_on_stop = True

    async def _save_contents(self) -> None:
        """Warm restart: once nothing can change an engine any more (listeners, sessions
        and the control thread stopped), every served cluster's items to the data dir."""
        if not self._save_contents_on_stop or self.dataplane is None:
            return
        self._save_contents_on_stop = False
        _, warnings = await asyncio.to_thread(
            warm.save,
            self.dataplane,
            self._snapshot_key,
            self.config.data_dir,
            self.config.clusters,
        )
        self.warnings += warnings

    def _close_db(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None

    def _bind_all(self) -> _Sockets:
        config = self.config
        sockets: list[socket.socket] = []
        try:
            api_sock = _bind(config.host, config.api_port)
            sockets.append(api_sock)
            region_socks = []
            for i, region in enumerate(config.topology.regions):
                region_socks.append((region, _bind(config.host, config.endpoint_port_for(i))))
                sockets.append(region_socks[-1][1])
            tls_socks = []
            if config.tls_port is not None:
                for i, region in enumerate(config.topology.regions):
                    tls_socks.append((region, _bind(config.host, config.tls_port_for(i))))
                    sockets.append(tls_socks[-1][1])
            proxy_socks = []
            for proxy in config.topology.proxies():
                if not config.serves(proxy.cluster.name):
                    continue  # another process runs this cluster (--clusters)
                proxy_socks.append((proxy, _bind(config.host, proxy.port)))
                sockets.append(proxy_socks[-1][1])
            tls_context, certificate = (
                self._tls_context() if tls_socks or config.api_tls else (None, None)
            )
        except ServiceError:
            for sock in sockets:
                sock.close()
            raise
        return _Sockets(api_sock, region_socks, tls_socks, proxy_socks, tls_context, certificate)

    async def _serve(self, socks: _Sockets) -> Listening:
        """Listeners on the serving loop, then the API and the monitor on the control one."""
        config = self.config
        loop = asyncio.get_running_loop()
        dataplane = self.dataplane
        assert dataplane is not None
        local = _reachable(config.host)
        advertised, warning = config.advertised_host()
        if warning:
            self.warnings.append(warning)
        if insecure := config.plain_api_warning():
            self.warnings.append(insecure)
        endpoints: dict[str, str] = {}
        advertised_endpoints: dict[str, str] = {}
        for region, sock in socks.regions:
            endpoints[region.name] = format_address(local, sock.getsockname()[1])
            index = config.topology.regions.index(region)
            advertised_port = config.advertised_endpoint_port(index, sock.getsockname()[1])
            advertised_endpoints[region.name] = format_address(advertised, advertised_port)
            self._servers.append(
                await loop.create_server(
                    partial(MemcacheProtocol, dataplane, region.name, config.auth_timeout),
                    sock=sock,
                )
            )
        tls_endpoints: dict[str, str] = {}
        advertised_tls: dict[str, str] = {}
        for region, sock in socks.tls:
            tls_endpoints[region.name] = format_address(local, sock.getsockname()[1])
            advertised_tls[region.name] = format_address(advertised, sock.getsockname()[1])
            self._servers.append(
                await loop.create_server(
                    lambda r=region.name: MemcacheProtocol(dataplane, r, config.auth_timeout),
                    sock=sock,
                    ssl=socks.tls_context,
                    ssl_handshake_timeout=config.auth_timeout,
                )
            )
        proxies: dict[str, str] = {}
        for proxy, sock in socks.proxies:
            proxy.address = format_address(config.host, sock.getsockname()[1])
            proxies[proxy.hostname] = proxy.address
            self._proxy_servers[proxy.hostname] = await self._serve_proxy(proxy, sock)
        # Data-plane records, made on this loop; the same in every process sharing the key
        # file, so the proxies here accept the probes of whichever process leads.
        probes = probe_caches(dataplane, self._probe_key)

        api_port = socks.api.getsockname()[1]
        api_url = f"{config.api_scheme}://{format_address(local, api_port)}"
        public_url = _public_api_url(config, socks.api)
        api_tls = socks.tls_context if config.api_tls else None
        await self.control_thread.run(
            self._start_api(
                socks.api,
                api_url,
                public_url,
                advertised_endpoints,
                advertised_tls,
                probes,
                api_tls,
            )
        )
        return Listening(
            api_url,
            endpoints,
            tls_endpoints,
            proxies,
            public_url,
            advertised_endpoints,
            advertised_tls,
            api_certificate=socks.certificate if api_tls else None,
            api_server_name=advertised if api_tls else "",
        )

    async def _start_api(
        self,
        api_sock: socket.socket,
        api_url: str,
        public_url: str,
        advertised_endpoints: dict[str, str],
        advertised_tls: dict[str, str],
        probes: dict[str, Credential],
        api_tls: ssl.SSLContext | None,
    ) -> None:
        """On the control thread: what clients are told, the monitor, analytics, drains,
        and uvicorn serving the API (over TLS with ``api_tls``: HTTPS only)."""
        config = self.config
        control, dataplane, db = self.control, self.dataplane, self.db
        assert control is not None and dataplane is not None and db is not None
        assert self.analytics is not None and self.drains is not None
        # Everything the control plane hands out (servers, tls_servers, config vars,
        # dashboard and feed URLs) is what clients are told, never the bind address.
        control.api_base_url = public_url
        control.endpoints = advertised_endpoints
        control.tls_endpoints = advertised_tls
        if self.peers is None or not self.peers.others_alive():
            control.refresh_servers()
        else:  # the apps' servers are the service's, not this process's to rewrite
            stale = control.servers_differ()
            if stale:
                self.warnings.append(
                    f"this process advertises {stale[1]} but the caches' servers are "
                    f"{stale[0]}, as another process running now told them: give every "
                    "process the same --advertise-host and --advertise-endpoint-port"
                )
        monitor = self.monitor = Monitor(
            dataplane,
            db,
            config.probe_interval,
            config.resolved_window,
            shared=self.peers is not None,
            stale_after_s=STALE_AFTER_S,
        )
        monitor.subscribe(self.bus, asyncio.get_running_loop())
        control.cluster_is_red = monitor.is_red
        alerts = self.alerts
        assert alerts is not None and self.webhooks is not None
        # The alerts' one series is appended to the service's (a text exposition may
        # list families one after another), leaving metrics.py as it is.
        exposition = metrics.Exposition(dataplane, monitor, config.metrics_per_cache)
        status = self.status_view = StatusView(
            config.topology,
            monitor,
            lambda: [*exposition.parts(), alerts.exposition()],
        )
        app = create_app(
            control,
            self.analytics,
            status,
            self,
            self.egress,
            config.admin_token,
            config.max_body_bytes,
            events_delivered=self.bus.delivered,
            activity=self.activity,
            alerts_evaluator=alerts,
            auth_throttle=dataplane.throttle,
        )
        if self.peers is not None:  # any cache's stats from any process: ask its owner
            self.peer_stats = PeerStats(dataplane, self.peers.owner_api, self.peers.process_id)
            app.state.peer_stats = self.peer_stats
        await self.drains.start()
        await self.webhooks.start()
        self._background.append(asyncio.create_task(self.analytics.run()))
        if self.activity is not None:
            self._background.append(asyncio.create_task(self.activity.run()))
        self._background.append(asyncio.create_task(alerts.run()))
        if self.peers is not None:  # one process leads the monitor (backend/leadership.py)
            self._background.append(self.peers.monitor_duty(monitor, probes))
        else:
            self._background += monitor.start(probes)
        self._api = _EmbeddedUvicorn(
            uvicorn.Config(
                app,
                log_config=None,
                access_log=False,
                lifespan="off",
                ssl_context_factory=None if api_tls is None else lambda *_: api_tls,
            )
        )
        self._api_task = asyncio.create_task(self._api.serve(sockets=[api_sock]))
        while not self._api.started:
            if self._api_task.done():
                raise ServiceError(f"the HTTP API could not start on {api_url}")
            await asyncio.sleep(0.01)

    async def _start_demo(self) -> None:
        assert self.control is not None and self.listening is not None
        control, listening = self.control, self.listening
        clients = await self.control_thread.call(demo.seed, control, listening.endpoints)
        self.traffic = demo.Traffic(clients, self.config.demo_rate)
        self.traffic.start()
        timeline = demo.incident_timeline(listening.api_url, self.config.admin_token, control)
        await self.control_thread.call(
            lambda: self._background.append(asyncio.create_task(timeline))
        )

    async def _serve_proxy(self, proxy: Proxy, sock: socket.socket) -> asyncio.AbstractServer:
        config, dataplane = self.config, self.dataplane
        assert dataplane is not None
        return await asyncio.get_running_loop().create_server(
            lambda: MemcacheProtocol(
                dataplane, proxy.cluster.region.name, config.auth_timeout, proxy
            ),
            sock=sock,
        )

    async def set_fault(self, hostname: str, mode: str, delay_ms: int = 0) -> Proxy:
        """Fault injection: ``slow`` delays every reply of the proxy, ``down`` closes its
        listener and its sessions (endpoints route around it), ``none`` restores it.

        The API calls it on the control loop; the fault is data-plane state (listeners,
        sessions, reply delays), so it is set on the serving loop, which publishes it.
        """
        peers, proxy = self.peers, self.config.topology.proxy(hostname)
        if peers is not None and proxy is not None and not peers.owns(proxy):
            await self.control_thread.run(peers.faults.request(proxy, mode, delay_ms))
            return proxy  # another process serves it (issue 14)
        loop = self._serving_loop
        assert loop is not None
        work = self._set_fault(hostname, mode, delay_ms)
        if asyncio.get_running_loop() is loop:
            return await work
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, loop))

    async def _set_fault(self, hostname: str, mode: str, delay_ms: int) -> Proxy:
        assert self.dataplane is not None
        proxy = self.dataplane.topology.proxy(hostname)
        if proxy is None:
            raise NotFound(f"no proxy named {hostname!r}")
        if not self.dataplane.serves(proxy.cluster.name):
            raise Conflict(
                f"proxy {hostname} runs in another process (cluster {proxy.cluster.name} "
                "is not in this process's --clusters); set its fault through that process"
            )
        state = self.dataplane.proxy_state[proxy]
        state.delay_s = delay_ms / 1000 if mode == "slow" else 0.0
        if mode == "down" and not state.down:
            state.down = True
            self._proxy_servers.pop(hostname).close()
            self.dataplane.drop_proxy_sessions(proxy)
        elif mode != "down" and state.down:
            host, _, port = proxy.address.rpartition(":")
            self._proxy_servers[hostname] = await self._serve_proxy(
                proxy, _bind(host.strip("[]"), int(port))
            )
            state.down = False
        mode = "down" if state.down else ("slow" if state.delay_s else "none")
        self.bus.publish(ProxyFaultSet(hostname, mode, round(state.delay_s * 1000)))
        return proxy

    def _forward_to_drain(self, line: LogLineWritten) -> None:
        if line.drain and self.drains is not None:
            self.drains.submit(
                line.drain, DrainLine(line.t, line.source, line.message, line.app_name)
            )

    def _tls_context(self) -> tuple[ssl.SSLContext, Path]:
        """The server context of --tls-cert/--tls-key or --tls-self-signed, and the file
        of its certificate (chain), shared by the TLS endpoints and the HTTPS API."""
        config = self.config
        try:
            if config.tls_self_signed:
                names = [config.host, config.advertised_host()[0]]
                cert, key = tls.self_signed(config.data_dir, *names)
            else:
                assert config.tls_cert is not None and config.tls_key is not None
                cert, key = config.tls_cert, config.tls_key
            return tls.server_context(cert, key), cert
        except (tls.TlsError, OSError) as exc:
            raise ServiceError(f"TLS: {exc}") from None

    async def stop(self) -> None:
        """Stop the API, the monitor, analytics and drains (control thread), then the
        listeners and sessions (here), then close the database and the control thread,
        then save the caches' contents for a warm restart."""
        if self.traffic is not None:
            await asyncio.to_thread(self.traffic.stop)
            self.traffic = None
        if self.control_thread.running:
            await self.control_thread.run(self._stop_api())
        for server in [*self._servers, *self._proxy_servers.values()]:
            server.close()
        if self.dataplane is not None:
            for transport in list(self.dataplane.transports):
                transport.close()
        for server in [*self._servers, *self._proxy_servers.values()]:
            await server.wait_closed()
        self._servers.clear()
        self._proxy_servers.clear()
        await self._stop_control()
        await self._save_contents()
        if self.config.temporary_data_dir:
            shutil.rmtree(self.config.data_dir, ignore_errors=True)

    async def _stop_api(self) -> None:
        """On the control thread: uvicorn, then background tasks, then the log drains."""
        if self._api is not None and self._api_task is not None:
            self._api.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._api_task
            self._api_task = None
        if self.peer_stats is not None:
            await self.peer_stats.close()
        for task in self._background:
            task.cancel()
        if self._background:  # bounded: a stop must never hang on a stuck task
            await asyncio.wait(self._background, timeout=5)
        self._background.clear()
        if self.drains is not None:
            await self.drains.stop()
        if self.webhooks is not None:
            await self.webhooks.stop()

    async def _stop_control(self) -> None:
        """Close the database on its thread, then end the thread (whatever still runs
        there is cancelled)."""
        if not self.control_thread.running:
            return
        with contextlib.suppress(Exception):
            await self.control_thread.run(self._stop_api())
        await self.control_thread.call(self._release_clusters)
        await self.control_thread.call(self._close_db)
        await asyncio.to_thread(self.control_thread.stop)
