"""Service: builds every part and runs it in ONE asyncio loop.

Used by ``cachier-backend`` and, in-process, by ``cachier-tui``; it never installs signal
handlers or writes to the terminal itself — its caller decides both.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field

import uvicorn

from backend import datadir, demo, metrics, tls
from backend.analytics import Analytics
from backend.api.app import create_app
from backend.config import Config
from backend.control.database import DatabaseUnavailable, open_repository
from backend.control.drains import DrainLine, LogDrains
from backend.control.errors import NotFound
from backend.control.plane import ControlPlane
from backend.control.repository import ControlRepository
from backend.control.secrets import KeyFileError, Secrets
from backend.dataplane import DataPlane
from backend.egress import EgressPolicy
from backend.events import CLIENT_FLUSH_ORIGIN, EventBus, LogLineWritten, ProxyFaultSet
from backend.listeners import MemcacheProtocol
from backend.monitor import Monitor
from backend.status import StatusView
from backend.throttle import AuthThrottle
from backend.topology import Proxy


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


def _format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _reachable(host: str) -> str:
    """The address this machine connects to for a listener bound to ``host``."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    return "::1" if host == "::" else host


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family, backlog=1024)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ServiceError(f"cannot listen on {_format_address(host, port)}: {reason}") from None
    sock.setblocking(False)
    return sock


class Service:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.bus = EventBus()
        self.db: ControlRepository | None = None
        self.dataplane: DataPlane | None = None
        self.control: ControlPlane | None = None
        self.listening: Listening | None = None
        self.warnings: list[str] = []
        self.drains: LogDrains | None = None
        self.analytics: Analytics | None = None
        self._background: list[asyncio.Task] = []
        self._proxy_servers: dict[str, asyncio.AbstractServer] = {}
        self.traffic: demo.Traffic | None = None
        self.monitor: Monitor | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._api: _EmbeddedUvicorn | None = None
        self._api_task: asyncio.Task | None = None

    async def start(self) -> Listening:
        config = self.config
        try:
            datadir.make_private(config.data_dir)
            secrets = Secrets.load_or_create(config.data_dir)
        except (OSError, KeyFileError) as exc:
            raise ServiceError(f"cannot use data directory {config.data_dir}: {exc}") from None
        try:
            self.db = open_repository(config.database_url, config.data_dir)
        except DatabaseUnavailable as exc:
            raise ServiceError(str(exc)) from None
        throttle = AuthThrottle(config.auth_failure_limit, config.auth_failure_window,
                                config.auth_user_failure_limit)  # fmt: skip
        self.dataplane = DataPlane(config.topology, throttle, config.lenient_keys)
        # Subscribers first: loading announces every stored cache and credential.
        bus = self.bus
        self.dataplane.subscribe(bus)
        self.control = ControlPlane(self.db, secrets, config.topology, bus, self.dataplane)
        control = self.control
        self.dataplane.record_flush = lambda cache_id, proxy: control.record_flush(
            cache_id, proxy, CLIENT_FLUSH_ORIGIN
        )
        self.egress = EgressPolicy(allow_internal=config.allow_internal_drains)
        self.drains = LogDrains(egress=self.egress)
        bus.subscribe(LogLineWritten, self._forward_to_drain)
        self.analytics = Analytics(self.dataplane, config.sample_interval)
        self.analytics.subscribe(bus)
        self.warnings = self.control.load()

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
                proxy_socks.append((proxy, _bind(config.host, proxy.port)))
                sockets.append(proxy_socks[-1][1])
            tls_context = self._tls_context() if tls_socks else None
        except ServiceError:
            for sock in sockets:
                sock.close()
            self.db.close()
            raise

        loop = asyncio.get_running_loop()
        local = _reachable(config.host)
        advertised, warning = config.advertised_host()
        if warning:
            self.warnings.append(warning)
        endpoints: dict[str, str] = {}
        advertised_endpoints: dict[str, str] = {}
        for region, sock in region_socks:
            endpoints[region.name] = _format_address(local, sock.getsockname()[1])
            advertised_endpoints[region.name] = _format_address(advertised, sock.getsockname()[1])
            self._servers.append(await loop.create_server(
                lambda r=region.name: MemcacheProtocol(self.dataplane, r, config.auth_timeout),
                sock=sock,
            ))  # fmt: skip
        tls_endpoints: dict[str, str] = {}
        advertised_tls: dict[str, str] = {}
        for region, sock in tls_socks:
            tls_endpoints[region.name] = _format_address(local, sock.getsockname()[1])
            advertised_tls[region.name] = _format_address(advertised, sock.getsockname()[1])
            self._servers.append(await loop.create_server(
                lambda r=region.name: MemcacheProtocol(self.dataplane, r, config.auth_timeout),
                sock=sock, ssl=tls_context, ssl_handshake_timeout=config.auth_timeout,
            ))  # fmt: skip
        proxies: dict[str, str] = {}
        for proxy, sock in proxy_socks:
            proxy.address = _format_address(config.host, sock.getsockname()[1])
            proxies[proxy.hostname] = proxy.address
            self._proxy_servers[proxy.hostname] = await self._serve_proxy(proxy, sock)

        api_port = api_sock.getsockname()[1]
        api_url = f"http://{_format_address(local, api_port)}"
        public_url = config.public_url or f"http://{_format_address(advertised, api_port)}"
        # Everything the control plane hands out (servers, tls_servers, config vars,
        # dashboard and feed URLs) is what clients are told, never the bind address.
        self.control.api_base_url = public_url
        self.control.endpoints = advertised_endpoints
        self.control.tls_endpoints = advertised_tls
        self.control.refresh_servers()
        dataplane = self.dataplane
        monitor = self.monitor = Monitor(dataplane, self.db, config.probe_interval,
                                         config.resolved_window)  # fmt: skip
        monitor.subscribe(bus)
        self.control.cluster_is_red = monitor.is_red
        status = StatusView(config.topology, monitor,
                            lambda: metrics.exposition(dataplane, monitor))  # fmt: skip
        app = create_app(self.control, self.analytics, status, self, self.egress,
                         config.admin_token, config.max_body_bytes)  # fmt: skip
        await self.drains.start()
        self._background.append(asyncio.create_task(self.analytics.run()))
        self._background += self.monitor.start()
        self._api = _EmbeddedUvicorn(
            uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
        )
        self._api_task = asyncio.create_task(self._api.serve(sockets=[api_sock]))
        while not self._api.started:
            if self._api_task.done():
                await self.stop()
                raise ServiceError(f"the HTTP API could not start on {api_url}")
            await asyncio.sleep(0.01)
        self.listening = Listening(api_url, endpoints, tls_endpoints, proxies, public_url,
                                   advertised_endpoints, advertised_tls)  # fmt: skip
        if config.demo:
            self._start_demo()
        return self.listening

    def _start_demo(self) -> None:
        assert self.control is not None and self.listening is not None
        self.traffic = demo.Traffic(demo.seed(self.control, self.listening.endpoints),
                                    self.config.demo_rate)  # fmt: skip
        self.traffic.start()
        self._background.append(asyncio.create_task(demo.incident_timeline(
            self.listening.api_url, self.config.admin_token, self.control)))  # fmt: skip

    async def _serve_proxy(self, proxy: Proxy, sock: socket.socket) -> asyncio.AbstractServer:
        config = self.config
        return await asyncio.get_running_loop().create_server(
            lambda: MemcacheProtocol(self.dataplane, proxy.cluster.region.name,
                                     config.auth_timeout, proxy),
            sock=sock,
        )  # fmt: skip

    async def set_fault(self, hostname: str, mode: str, delay_ms: int = 0) -> Proxy:
        """Fault injection: ``slow`` delays every reply of the proxy, ``down`` closes its
        listener and its sessions (endpoints route around it), ``none`` restores it."""
        assert self.dataplane is not None
        proxy = self.dataplane.topology.proxy(hostname)
        if proxy is None:
            raise NotFound(f"no proxy named {hostname!r}")
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
            self.drains.submit(line.drain, DrainLine(line.t, line.source, line.message,
                                                     line.app_name))  # fmt: skip

    def _tls_context(self) -> ssl.SSLContext:
        config = self.config
        try:
            if config.tls_self_signed:
                names = [config.host, config.advertised_host()[0]]
                cert, key = tls.self_signed(config.data_dir, *names)
            else:
                assert config.tls_cert is not None and config.tls_key is not None
                cert, key = config.tls_cert, config.tls_key
            return tls.server_context(cert, key)
        except (tls.TlsError, OSError) as exc:
            raise ServiceError(f"TLS: {exc}") from None

    async def stop(self) -> None:
        if self.traffic is not None:
            await asyncio.to_thread(self.traffic.stop)
            self.traffic = None
        if self._api is not None and self._api_task is not None:
            self._api.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._api_task
            self._api_task = None
        for task in self._background:
            task.cancel()
        if self._background:  # bounded: a stop must never hang on a stuck task
            await asyncio.wait(self._background, timeout=5)
        self._background.clear()
        if self.drains is not None:
            await self.drains.stop()
        for server in [*self._servers, *self._proxy_servers.values()]:
            server.close()
        if self.dataplane is not None:
            for transport in list(self.dataplane.transports):
                transport.close()
        for server in [*self._servers, *self._proxy_servers.values()]:
            await server.wait_closed()
        self._servers.clear()
        self._proxy_servers.clear()
        if self.db is not None:
            self.db.close()
            self.db = None
        if self.config.temporary_data_dir:
            shutil.rmtree(self.config.data_dir, ignore_errors=True)
