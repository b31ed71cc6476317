"""The automated status: probes -> per-proxy state -> cluster light -> incident history.

Every proxy is probed over its own TCP port with a real memcache round trip (``set`` then
``get`` of a fresh value) by an internal credential of a hidden per-cluster cache. The probe
connection is kept open and re-established after any failure.

Per proxy, debounced with hysteresis (``Sensitivity`` holds the numbers):

- ``down`` after ``enter_down`` (2) failed probes in a row — a refused connection, a
  timeout or a wrong answer. One failure is noise (a probe racing a restart); two in a row
  at a 1 s interval is an outage, reported within 3 intervals of its start.
- ``slow`` after ``enter_slow`` (3) probes in a row slower than both ``slow_factor`` (4×)
  the proxy's own usual latency (median of its last ``baseline_size`` normal probes) and
  the absolute ``slow_floor_ms`` (20 ms). The floor keeps a loopback proxy whose usual is
  0.3 ms from turning yellow at 2 ms; the factor keeps a far proxy whose usual is 30 ms
  from turning yellow at 31 ms; three in a row rule out a single GC pause or spike.
- back to ``up`` after ``leave_down`` (2) / ``leave_slow`` (3) good probes in a row, so a
  flapping proxy does not flip the light on every probe.

Per cluster: ``red`` if a proxy is down, else ``yellow`` if one is slow, else ``blue``
("recently resolved") within ``resolved_window`` of the last red/yellow, else ``green``.
Every change of a light is an incident row (persisted; the RSS feed reads them).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import statistics
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from backend.control.models import Cache, Credential
from backend.control.repository import ControlRepository, IncidentRow, OwnerRow, ProbeRow
from backend.dataplane import DataPlane
from backend.events import EventBus, ProxyFaultSet
from backend.lights import (
    BLUE,
    DOWN,
    GREEN,
    RED,
    SLOW,
    UP,
    YELLOW,
    FaultMode,
    Light,
    ProxyState,
    as_fault,
    as_light,
    as_state,
)
from backend.topology import Cluster, Proxy

log = logging.getLogger(__name__)

PROBE_KEY = b"cachier-probe"


@dataclass(frozen=True)
class Sensitivity:
    enter_down: int = 2
    leave_down: int = 2
    enter_slow: int = 3
    leave_slow: int = 3
    slow_factor: float = 4.0
    slow_floor_ms: float = 20.0
    baseline_size: int = 120
    baseline_min: int = 5  # below this many normal answers, the fastest one is the usual


def slow_cause(slow: list[ProxyHealth]) -> str:
    """The incident's cause for slow proxies. A slow proxy whose latest probe failed is
    still slow until a second failure makes it down: it has no latency to show then."""

    def latency(h: ProxyHealth) -> str:
        return "no answer" if h.latency_ms is None else f"{h.latency_ms:.1f} ms"

    return "slower than usual: " + ", ".join(
        f"{h.proxy.hostname} ({latency(h)}, usually {h.baseline_ms() or 0:.1f} ms)" for h in slow
    )


class ProxyHealth:
    """One proxy's debounced state, fed one probe result at a time."""

    def __init__(self, proxy: Proxy, sensitivity: Sensitivity) -> None:
        self.proxy = proxy
        self.sensitivity = sensitivity
        self.state: ProxyState = UP
        self.observed = False
        self.latency_ms: float | None = None
        self.normal: deque[float] = deque(maxlen=sensitivity.baseline_size)
        self.bad_streak = 0  # consecutive probes pointing away from the current state
        self.failures = 0  # consecutive failed probes
        # A process that does not lead shows the leader's baseline (``show``).
        self.shown_baseline_ms: float | None = None

    def baseline_ms(self) -> float | None:
        if self.shown_baseline_ms is not None:
            return self.shown_baseline_ms
        return statistics.median(self.normal) if self.normal else None

    def show(self, row: ProbeRow) -> None:
        """Take the leading monitor's result as this process's view (it does not probe)."""
        self.observed = True
        self.state = as_state(row.state)
        self.latency_ms = row.latency_ms
        self.shown_baseline_ms = row.baseline_ms

    def is_slow(self, latency_ms: float) -> bool:
        """Clearly above this proxy's usual and above the floor.

        The usual is the median of its recent normal answers; until there are
        ``baseline_min`` of them, the fastest answer seen so far stands in (a proxy that
        was slow from its very first probe is taken as it is: far away, not degraded).
        """
        s = self.sensitivity
        if latency_ms <= s.slow_floor_ms or not self.normal:
            return False
        normal = self.normal
        usual = statistics.median(normal) if len(normal) >= s.baseline_min else min(normal)
        return latency_ms > s.slow_factor * usual

    def observe(self, latency_ms: float | None) -> bool:
        """Take one probe result (None = failed); True when the state changed."""
        s = self.sensitivity
        self.observed = True
        self.latency_ms = latency_ms
        if latency_ms is None:
            self.failures += 1
            if self.state != DOWN and self.failures >= s.enter_down:
                return self._become(DOWN)
            if self.state == DOWN:
                self.bad_streak = 0
            return False
        self.failures = 0
        slow = self.is_slow(latency_ms)
        if not slow:
            self.normal.append(latency_ms)
        target = SLOW if slow else UP
        if self.state == DOWN:
            self.bad_streak += 1  # a success while down counts towards recovery
            if self.bad_streak >= s.leave_down:
                return self._become(target)
            return False
        if target == self.state:
            self.bad_streak = 0
            return False
        self.bad_streak += 1
        needed = s.enter_slow if target == SLOW else s.leave_slow
        return self._become(target) if self.bad_streak >= needed else False

    def _become(self, state: ProxyState) -> bool:
        self.state = state
        self.bad_streak = 0
        return True


class Prober:
    """A persistent, authenticated memcache connection to one proxy's own port.

    ``address`` is where the proxy listens: this process's own for its clusters, the
    owner's advertised one for a cluster another process runs (``cluster_owners``); a
    new address (the owner restarted elsewhere) drops the connection and dials it."""

    def __init__(self, proxy: Proxy, credential: Credential, timeout_s: float) -> None:
        self.proxy = proxy
        self.credential = credential
        self.timeout_s = timeout_s
        self.address = proxy.address
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def aim(self, address: str) -> None:
        if address != self.address:
            self.close()
            self.address = address

    async def probe(self) -> float | None:
        """Round-trip latency in ms, or None when the proxy failed to answer correctly."""
        if not self.address:
            return None  # no process has ever served its cluster: nothing to dial
        try:
            return await asyncio.wait_for(self._round_trip(), self.timeout_s)
        except (TimeoutError, OSError, EOFError, asyncio.IncompleteReadError, ValueError):
            self.close()
            return None

    async def _round_trip(self) -> float:
        if self.writer is None:
            await self._connect()
        assert self.reader is not None and self.writer is not None
        token = secrets.token_hex(8).encode()
        started = time.perf_counter()
        self.writer.write(
            b"set %b 0 60 16 noreply\r\n%b\r\nget %b\r\n" % (PROBE_KEY, token, PROBE_KEY)
        )
        reply = await self.reader.readuntil(b"END\r\n")
        elapsed_ms = (time.perf_counter() - started) * 1000
        if reply != b"VALUE %b 0 16\r\n%b\r\nEND\r\n" % (PROBE_KEY, token):
            raise ValueError("wrong probe answer")
        return elapsed_ms

    async def _connect(self) -> None:
        host, _, port = self.address.rpartition(":")
        reader, writer = await asyncio.open_connection(host.strip("[]"), int(port))
        self.reader, self.writer = reader, writer
        user, password = self.credential.username.encode(), self.credential.password
        writer.write(b"set %b 0 0 %d\r\n%b\r\n" % (user, len(password), password))
        if await reader.readuntil(b"\r\n") != b"STORED\r\n":
            raise ValueError("probe credential refused")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def probe_password(key: bytes, cluster: str) -> bytes:
    """The probes' password for ``cluster``: derived from the key file, so every process
    sharing it accepts the probes of whichever process leads the monitor."""
    return hmac.new(key, cluster.encode(), hashlib.sha256).hexdigest()[:32].encode()


def probe_caches(dataplane: DataPlane, key: bytes | None = None) -> dict[str, Credential]:
    """One hidden cache and credential per cluster, in memory only: the probes' identity.

    With ``key`` (``Secrets.probe_key``) the credential is the same in every process of
    the service (``probe-<cluster>`` and ``probe_password``), so a proxy accepts the
    leading monitor's probes whichever process leads; a real username (ten capitals and
    digits) can never be one of these. Without it, a random one, good in this process only.
    """
    credentials = {}
    for cluster in dataplane.topology.clusters():
        cache = Cache(
            f"probe:{cluster.name}",
            f"probe-{cluster.name}",
            "free",
            cluster.region.name,
            cluster.name,
        )
        if key is None:
            username = f"probe-{cluster.name}-{secrets.token_hex(6)}"
            password = secrets.token_hex(16).encode()
        else:
            username, password = f"probe-{cluster.name}", probe_password(key, cluster.name)
        credential = Credential(username, password, cache.id, primary=True)
        cache.credentials.append(credential)
        dataplane.internal_caches[cache.id] = cache
        dataplane.credentials[credential.username] = credential
        credentials[cluster.name] = credential
    return credentials


class ClusterStatus:
    def __init__(
        self, cluster: Cluster, light: Light, since: float, trouble_ended: float | None
    ) -> None:
        self.cluster = cluster
        self.light = light
        self.since = since
        self.trouble_ended = trouble_ended
        self.involved: list[str] = []  # proxies of the last trouble, for the "resolved" entry


class Monitor:
    """Probes, lights and incidents; leading or following.

    Embedded (SQLite, one process): it leads from start to stop and probes this process's
    proxies, as it always did. Several processes on PostgreSQL (``shared``): exactly one
    process's monitor leads at a time (``backend.leadership``). The leader probes every
    proxy of every process (another owner's at the addresses in ``cluster_owners``),
    counts a cluster whose owner stopped beating (or that has no owner) as red, alone
    records incidents, and writes its probe results each interval (``probe_results``).
    The others follow: each interval, and at once when the leader announces a change of
    light, they read the lights (the newest incidents) and those results, so every
    process's status page, RSS and JSON feeds say the same.
    """

    def __init__(
        self,
        dataplane: DataPlane,
        db: ControlRepository,
        interval_s: float = 1.0,
        resolved_window_s: float = 3600.0,
        sensitivity: Sensitivity | None = None,
        clock: Callable[[], float] = time.time,
        shared: bool = False,
        stale_after_s: float = 3.0,
    ) -> None:
        self.dataplane = dataplane
        self.db = db
        self.interval_s = interval_s
        self.resolved_window_s = resolved_window_s
        self.sensitivity = sensitivity or Sensitivity()
        self.clock = clock
        self.timeout_s = max(0.5, 2 * interval_s)
        self.shared = shared
        self.stale_after_s = stale_after_s
        self.leading = not shared  # embedded: always; shared: once the lock is ours
        self.health = self._new_health()
        self.clusters = self._load_clusters()
        # hostname -> (mode, delay_ms) of the fault an operator injected; the status page
        # shows it next to what the probes measure. Kept from ``ProxyFaultSet`` events.
        self.faults: dict[str, tuple[FaultMode, int]] = {}
        # Shared mode: who serves each cluster (the leader reads it every interval) and
        # where each proxy was last probed (hostname -> "host:port").
        self.owners: dict[str, OwnerRow] = {}
        self.addresses: dict[str, str] = {}
        self.process_id = ""  # shared mode: this process's, as the leader marks it
        # Called after the leader records a change of light (the followers re-read).
        self.announce: Callable[[], None] = lambda: None

    def _new_health(self) -> dict[str, ProxyHealth]:
        return {
            p.hostname: ProxyHealth(p, self.sensitivity) for p in self.dataplane.topology.proxies()
        }

    def subscribe(self, bus: EventBus, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Follow injected faults, on ``loop`` (the monitor's) when given: the fault is
        set on the serving loop, which publishes it."""
        bus.subscribe(ProxyFaultSet, self._fault_set, loop)

    def _fault_set(self, event: ProxyFaultSet) -> None:
        if event.mode == "none":
            self.faults.pop(event.hostname, None)
        else:
            self.faults[event.hostname] = (as_fault(event.mode), event.delay_ms)

    def fault(self, hostname: str) -> tuple[FaultMode, int]:
        """The injected fault of a proxy: ``("none", 0)``, ``("slow", ms)`` or ``("down", 0)``."""
        return self.faults.get(hostname, ("none", 0))

    def _load_clusters(self) -> dict[str, ClusterStatus]:
        last = self.db.last_incidents()
        statuses = {}
        now = self.clock()
        for cluster in self.dataplane.topology.clusters():
            row = last.get(cluster.name)
            light, since = (as_light(row.light), row.started_at) if row else (GREEN, now)
            ended = self.db.last_trouble_ended(cluster.name)
            statuses[cluster.name] = ClusterStatus(cluster, light, since, ended)
        return statuses

    # -- queries ------------------------------------------------------------------------
    def light(self, cluster: str) -> str:
        return self.clusters[cluster].light

    def is_red(self, cluster: str) -> bool:
        status = self.clusters.get(cluster)
        return status is not None and status.light == RED

    def address(self, proxy: Proxy) -> str:
        """Where the proxy is probed: this process's own listener, or the owner's."""
        if not self.shared or self.dataplane.serves(proxy.cluster.name):
            return proxy.address
        return self.addresses.get(proxy.hostname, "")

    # -- leading: probing ---------------------------------------------------------------
    def start(self, credentials: dict[str, Credential] | None = None) -> list[asyncio.Task]:
        """Lead until the caller cancels the tasks (the embedded mode, from start to stop).

        ``credentials`` are the probes' (``probe_caches``), made by the caller on the
        serving loop when the monitor runs on another thread: they are data-plane records.
        """
        if credentials is None:
            credentials = probe_caches(self.dataplane)
        return self.lead(credentials)

    def lead(self, credentials: dict[str, Credential]) -> list[asyncio.Task]:
        """One probing task per proxy (and, shared, the publishing task); cancel to stop.

        Embedded: this process's proxies. Shared: every proxy of every process, starting
        from the lights the database holds (a new leader keeps them: a light that did not
        change is no new incident) and from no probe result (nothing is said about a
        cluster until each of its proxies has been probed).
        """
        self.leading = True
        if self.shared:
            self.health = self._new_health()
            self.clusters = self._load_clusters()
            self._read_owners()
        proxies = [
            p
            for p in self.dataplane.topology.proxies()
            if self.shared or self.dataplane.serves(p.cluster.name)
        ]
        tasks = [
            asyncio.create_task(
                self._probe_forever(Prober(p, credentials[p.cluster.name], self.timeout_s))
            )
            for p in proxies
        ]
        if self.shared:
            tasks.append(asyncio.create_task(self._publish_forever()))
        return tasks

    async def _probe_forever(self, prober: Prober) -> None:
        """Probe at a steady interval; a slow probe shortens the wait, never stacks probes."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        try:
            while True:
                started = loop.time()
                prober.aim(self.address(prober.proxy))
                latency = await prober.probe()
                if task.cancelling():  # Python 3.11's wait_for can swallow a cancellation
                    raise asyncio.CancelledError
                try:
                    self.observe(prober.proxy, latency)
                except Exception:  # a bug here must not stop the status page
                    log.exception("status evaluation failed")
                await asyncio.sleep(max(0.0, self.interval_s - (loop.time() - started)))
        finally:
            prober.close()

    async def _publish_forever(self) -> None:
        """The leader, each interval: who serves which cluster (a stale owner turns its
        cluster red even when nothing answers the probes' questions), then every
        proxy's result for the followers, in one statement."""
        while True:
            try:
                self._read_owners()
                for name in self.clusters:
                    self.evaluate(name)
                self.db.save_probe_results(self.results())
                self.db.mark_leader(self.process_id)
            except Exception as exc:  # the database is away: the next interval retries
                log.warning("could not share the probe results: %s", " ".join(str(exc).split()))
            await asyncio.sleep(self.interval_s)

    def _read_owners(self) -> None:
        self.owners = {row.cluster: row for row in self.db.owners()}
        for row in self.owners.values():
            self.addresses.update(row.proxies)

    def results(self) -> list[ProbeRow]:
        now = self.clock()
        return [
            ProbeRow(hostname, self.address(h.proxy), h.state, h.latency_ms, h.baseline_ms(), now)
            for hostname, h in self.health.items()
            if h.observed
        ]

    def observe(self, proxy: Proxy, latency_ms: float | None) -> None:
        self.health[proxy.hostname].observe(latency_ms)
        self.evaluate(proxy.cluster.name)

    def orphaned(self, cluster: str) -> str | None:
        """Why no process serves ``cluster`` (shared mode), or None when one does."""
        if not self.shared or self.dataplane.serves(cluster):
            return None
        row = self.owners.get(cluster)
        if row is None:
            return f"no process serves {cluster}"
        if row.heartbeat_at <= 0:
            return f"no process serves {cluster}: process {row.process_id} stopped"
        if row.age_s >= self.stale_after_s:
            return (
                f"the process serving {cluster} ({row.process_id}) has not been heard "
                f"from for {row.age_s:.1f} s"
            )
        return None

    def evaluate(self, cluster_name: str) -> None:
        """Recompute a cluster's light; record an incident when it changes."""
        status = self.clusters[cluster_name]
        healths = [self.health[p.hostname] for p in status.cluster.proxies]
        orphaned = self.orphaned(cluster_name)
        if orphaned is None and not all(h.observed for h in healths):
            return  # not every proxy has been probed since start: nothing to say yet
        now = self.clock()
        down = [h.proxy.hostname for h in healths if h.state == DOWN]
        slow = [h for h in healths if h.state == SLOW]
        if orphaned is not None:
            light, involved, cause = RED, [h.proxy.hostname for h in healths], orphaned
        elif down:
            light, involved = RED, down
            cause = f"{len(down)} of {len(healths)} proxies unreachable: {', '.join(down)}"
        elif slow:
            light, involved = YELLOW, [h.proxy.hostname for h in slow]
            cause = slow_cause(slow)
        elif status.light in (RED, YELLOW) or (
            status.trouble_ended is not None and now - status.trouble_ended < self.resolved_window_s
        ):
            light, involved = BLUE, status.involved
            cause = "recently resolved: every proxy answers normally again"
        else:
            light, involved = GREEN, []
            cause = "every proxy answers normally"
        if light in (RED, YELLOW):
            status.involved = involved
        elif status.light in (RED, YELLOW):
            status.trouble_ended = now
        if light == status.light:
            return
        self.db.start_incident(cluster_name, light, status.light, now, cause, " ".join(involved))
        status.light, status.since = light, now
        self.announce()

    # -- following ----------------------------------------------------------------------
    def follow(self) -> list[asyncio.Task]:
        """Show the leader's lights and results, read each interval; cancel to stop."""
        self.leading = False
        return [asyncio.create_task(self._follow_forever())]

    async def _follow_forever(self) -> None:
        while True:
            try:
                self.read_leader()
            except Exception as exc:  # the database is away: the next interval retries
                log.warning("could not read the status: %s", " ".join(str(exc).split()))
            await asyncio.sleep(self.interval_s)

    def read_leader(self) -> None:
        """The lights (each cluster's newest incident) and the leader's probe results."""
        if self.leading:
            return  # a late announcement reaching a process that now leads
        last = self.db.last_incidents()
        for name, status in self.clusters.items():
            row = last.get(name)
            if row is not None:
                status.light, status.since = as_light(row.light), row.started_at
        for result in self.db.probe_results():
            health = self.health.get(result.hostname)
            if health is not None:
                health.show(result)
                self.addresses[result.hostname] = result.address

    def incidents(
        self, limit: int = 50, clusters: Sequence[str] | None = None
    ) -> list[IncidentRow]:
        return self.db.incidents(limit, clusters)
