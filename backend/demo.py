"""Demo mode: seeded caches, real memcache traffic over TCP, and a scripted incident timeline.

Nothing here fakes data: the traffic comes from real clients (pymemcache for ASCII,
python-binary-memcached for binary/SASL) talking to the region endpoints, the flushes of
the web interface and of operators go through the HTTP API, and the incidents are made
with the fault-injection API and noticed by the real monitor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from dataclasses import dataclass

import httpx

from backend.control.plane import ControlPlane

log = logging.getLogger(__name__)

# name, plan, region, value size, key space: "tiny" is small enough to evict.
DEMO_CACHES = [
    ("shop", "1gb", "us-east-1", 600, 4000),
    ("sessions", "250mb", "us-east-1", 300, 3000),
    ("catalog", "500mb", "us-east-1", 2000, 2000),
    ("eu-api", "100mb", "eu-west-1", 800, 2500),
    ("tiny", "free", "eu-west-1", 60_000, 1200),
]
# (seconds into the cycle, proxy, mode, delay_ms): one proxy turns slow, another goes down,
# both recover; with the demo's short resolved window every colour shows within 2 minutes.
TIMELINE = [
    (15, "proxy-2.use1-b.us-east-1.cachier.internal", "slow", 250),
    (35, "proxy-1.use1-c.us-east-1.cachier.internal", "down", 0),
    (45, None, "flush:web", 0),
    (50, "proxy-2.use1-b.us-east-1.cachier.internal", "none", 0),
    (55, None, "flush:admin", 0),
    (65, "proxy-1.use1-c.us-east-1.cachier.internal", "none", 0),
]
CYCLE_S = 150
# The cache whose log shows flushes of all three origins within the first minute: its
# client flushes now and then, the timeline flushes it from the web and as an operator.
FLUSHED = "shop"


@dataclass
class DemoClient:
    cache: str
    servers: str
    username: str
    password: str
    value_size: int
    keys: int
    binary: bool = False
    read_only: bool = False


def seed(control: ControlPlane, local_endpoints: dict[str, str]) -> list[DemoClient]:
    """Create the demo caches (once) with a primary, a read-only and a no-flush credential.

    The demo's clients run on this machine, so they connect to ``local_endpoints`` (region
    -> host:port as bound here), not to the advertised address a real client is given.
    """
    existing = {c.name: c for c in control.list_caches()}
    clients = []
    for i, (name, plan, region, size, keys) in enumerate(DEMO_CACHES):
        cache = existing.get(name) or control.create_cache(name, plan, region)
        if len(cache.credentials) == 1:
            read_only = control.add_credential(cache)
            control.set_capabilities(cache, read_only.username, False, False)
            no_flush = control.add_credential(cache)
            control.set_capabilities(cache, no_flush.username, True, False)
        primary = cache.primary()
        servers = local_endpoints.get(cache.region) or control.servers(cache)
        clients.append(
            DemoClient(
                name,
                servers,
                primary.username,
                primary.password.decode(),
                size,
                keys,
                binary=(i % 2 == 1),
            )
        )
        readonly = next(c for c in cache.credentials if not c.write)
        if name == "shop":
            password = readonly.password.decode()
            clients.append(
                DemoClient(name, servers, readonly.username, password, size, keys, read_only=True)
            )
    return clients


class Traffic:
    """Background client threads at a modest, configurable rate (operations per second)."""

    def __init__(self, clients: list[DemoClient], rate: float, seed_value: int = 7) -> None:
        self.clients = clients
        self.rate = rate
        self.seed = seed_value
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        per_client = self.rate / max(len(self.clients), 1)
        for i, client in enumerate(self.clients):
            thread = threading.Thread(
                target=self._run,
                args=(client, per_client, self.seed + i),
                name=f"demo-{client.cache}",
                daemon=True,
            )
            thread.start()
            self.threads.append(thread)

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=2)

    def _run(self, spec: DemoClient, rate: float, seed_value: int) -> None:
        rng = random.Random(seed_value)
        health = ClientHealth(spec)
        while not self.stop_event.is_set():
            try:
                client = _connect(spec)
            except ImportError as exc:  # retrying cannot help: say so once, and stop
                log.warning(
                    "demo traffic for %s cannot run: the %s package is missing "
                    "(reinstall cachier with its dependencies)",
                    health.name,
                    exc.name or exc,
                )
                return
            try:
                self._drive(client, spec, rate, rng, health)
            except Exception as exc:  # reconnect after any error, as a real app would
                health.failed(exc)
                self.stop_event.wait(0.5)

    def _drive(
        self, client, spec: DemoClient, rate: float, rng: random.Random, health: ClientHealth
    ) -> None:
        value = b"v" * spec.value_size
        interval = 1.0 / rate if rate > 0 else 1.0
        next_flush = time.monotonic() + rng.uniform(25, 40)
        while not self.stop_event.is_set():
            started = time.monotonic()
            key = f"key:{min(int(rng.paretovariate(1.6)), spec.keys)}"  # a few hot keys
            roll = rng.random()
            if spec.read_only:
                if roll < 0.05:
                    with contextlib.suppress(Exception):  # refused: the credential is read-only
                        client.set(key, value)
                else:
                    client.get(key)
            elif roll < 0.85:
                if client.get(key) is None:
                    client.set(key, value)  # cache-aside: a miss is filled
            elif roll < 0.97:
                client.set(key, value)
            elif roll < 0.99:
                client.delete(key)
            else:
                client.incr("counter", 1) or client.set("counter", "1")
            if not spec.read_only and time.monotonic() > next_flush and spec.cache == FLUSHED:
                client.flush_all()
                next_flush = time.monotonic() + rng.uniform(90, 150)
            health.worked()
            self.stop_event.wait(max(0.0, interval - (time.monotonic() - started)))


class ClientHealth:
    """What a demo client reports. A dropped connection that comes back at once is the demo
    working (its timeline takes a proxy down): logged at INFO. A client still failing after
    ``WARN_AFTER_S`` cannot do its job: one WARNING (the dashboard shows it as a notice),
    then its recovery once."""

    WARN_AFTER_S = 5.0

    def __init__(self, spec: DemoClient) -> None:
        protocol = "binary" if spec.binary else "ASCII"
        role = ", read-only" if spec.read_only else ""
        self.name = f"{spec.cache!r} ({protocol}{role})"
        self.failing_since: float | None = None
        self.warned = False

    def failed(self, exc: Exception) -> None:
        failure = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        now = time.monotonic()
        if self.failing_since is None:
            self.failing_since = now
            log.info("demo client %s failing, retrying: %s", self.name, failure)
        elif not self.warned and now - self.failing_since >= self.WARN_AFTER_S:
            self.warned = True
            log.warning(
                "demo client %s has been failing for %.0f s: %s",
                self.name,
                now - self.failing_since,
                failure,
            )
        else:
            log.debug("demo client %s failing, retrying: %s", self.name, failure)

    def worked(self) -> None:
        if self.failing_since is not None:
            level = logging.WARNING if self.warned else logging.INFO
            log.log(level, "demo client %s working again", self.name)
            self.failing_since, self.warned = None, False


def _connect(spec: DemoClient):
    host, _, port = spec.servers.rpartition(":")
    if spec.binary:
        import bmemcached

        return bmemcached.Client([spec.servers], spec.username, spec.password, socket_timeout=5)
    from pymemcache.client.base import Client

    class Authenticating(Client):
        def _connect(self) -> None:
            super()._connect()
            user, secret = spec.username.encode(), spec.password.encode()
            self.sock.sendall(b"set %s 0 0 %d noreply\r\n%s\r\n" % (user, len(secret), secret))

    return Authenticating((host, int(port)), connect_timeout=5, timeout=5, default_noreply=False)


async def incident_timeline(api_url: str, admin_token: str, control: ControlPlane) -> None:
    """Faults on a schedule, plus web-interface and operator flushes, through the HTTP API."""
    headers = {"Authorization": f"Bearer {admin_token}"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=10) as http:
        while True:
            cycle_start = time.monotonic()
            for at, proxy, mode, delay in TIMELINE:
                await asyncio.sleep(max(0.0, cycle_start + at - time.monotonic()))
                with contextlib.suppress(httpx.HTTPError):
                    if proxy is not None:
                        await http.post(
                            f"/api/v1/admin/proxies/{proxy}/fault",
                            json={"mode": mode, "delay_ms": delay},
                        )
                    else:
                        await _flush(http, control, admin=mode == "flush:admin")
            await asyncio.sleep(max(0.0, cycle_start + CYCLE_S - time.monotonic()))


async def _flush(http: httpx.AsyncClient, control: ControlPlane, admin: bool) -> None:
    """Flush the demo's flushed cache as an operator would, or from its dashboard."""
    cache = next((c for c in control.list_caches() if c.name == FLUSHED), None)
    if cache is None:
        return
    if admin:
        await http.post(f"/api/v1/admin/caches/{cache.id}/flush")
    else:
        dashboard = control.dashboard_url(cache).removeprefix(control.api_base_url)
        await http.post(dashboard + "/api/flush")
