"""This process among the others on one PostgreSQL database (issue 14), in one object.

``Peers`` wires the parts that only exist when several processes share a control plane:
the cluster claim and heartbeat (``control.ownership``), NOTIFY out of every control-plane
transaction and LISTEN in (``control.notify``), following the others' changes
(``control.follow``), and routing a fault to the proxy's owner (``faults``). The service
calls it at four points (open, claim, start, release); in the embedded SQLite mode there
is no ``Peers`` at all and nothing here runs. Everything runs on the control thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from backend.config import Config
from backend.control.follow import Follower
from backend.control.notify import Forwarder, Listener, Receiver
from backend.control.ownership import HEARTBEAT_INTERVAL_S, Ownership, new_process_id
from backend.control.plane import ControlPlane
from backend.control.repository import ControlRepository
from backend.events import ClusterOwners, ControlLink, EventBus, ProxyFaultSet
from backend.faults import FaultRouter
from backend.topology import Proxy

log = logging.getLogger(__name__)

FaultSetter = Callable[[str, str, int], Awaitable[Proxy]]


class Peers:
    def __init__(
        self, config: Config, bus: EventBus, control: ControlPlane, db: ControlRepository
    ) -> None:
        self.config = config
        self.bus = bus
        self.process_id = new_process_id()
        owned = config.owned_clusters()
        control.forward = Forwarder(db.notify, self.process_id)
        self.follower = Follower(control)
        self.ownership = Ownership(db, self.process_id, owned)
        self.faults = FaultRouter(self.process_id, owned, db.notify)
        self.listener = Listener(
            config.database_url.url,
            self.process_id,
            Receiver(
                self.process_id,
                self.follower.reconcile,
                self.follower.flush,
                self.follower.resync,
                lambda: self._publish(self.ownership.refresh()),
                self._fault_requested,
                lambda hostname, mode, delay_ms: bus.publish(
                    self.faults.confirmed(hostname, mode, delay_ms)
                ),
            ),
            self.follower.resync,
            lambda up: bus.publish(ControlLink(up)),
        )
        self._set_fault: FaultSetter | None = None
        self._fault_tasks: set[asyncio.Task] = set()

    @classmethod
    def open(
        cls, config: Config, bus: EventBus, control: ControlPlane, db: ControlRepository
    ) -> Peers | None:
        """The peers of a process on PostgreSQL; None in the embedded mode."""
        if config.database_url.kind != "postgresql":
            return None
        return cls(config, bus, control, db)

    def claim(self, api_url: str, proxies: dict[str, dict[str, str]]) -> None:
        """Claim this process's clusters (``OwnershipRefused`` names a live owner), then
        tell the data plane where the other clusters are."""
        self.ownership.claim(api_url, proxies)
        self._publish(self.ownership.refresh())

    async def start(self, set_fault: FaultSetter) -> list[asyncio.Task]:
        """The LISTEN connection and the heartbeat, as tasks for the service to cancel at
        stop; returns once listening (or after 5 s: it keeps trying, serving goes on)."""
        self._set_fault = set_fault
        topology = self.config.topology
        self.bus.subscribe(
            ProxyFaultSet,
            lambda event: self.faults.announce(event, topology.proxy(event.hostname)),
            asyncio.get_running_loop(),
        )
        tasks = [asyncio.create_task(self.listener.run()), asyncio.create_task(self._beat())]
        try:
            await asyncio.wait_for(self.listener.connected.wait(), timeout=5)
        except TimeoutError:
            log.warning("not listening to the other processes yet; still trying")
        return tasks

    def others_alive(self) -> bool:
        """Whether another process serves clusters now (its heartbeat is fresh)."""
        return any(self.ownership.live_owner(row) for row in self.ownership.repository.owners())

    def owns(self, proxy: Proxy) -> bool:
        return self.faults.owns(proxy)

    def release(self) -> None:
        """A clean stop: the clusters are free at once for a restart or another process."""
        try:
            self.ownership.release()
        except Exception as exc:  # stale in 3 heartbeats anyway
            log.warning("could not release clusters: %s", " ".join(str(exc).split()))

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_INTERVAL_S)
            try:
                owners = self.ownership.beat()
            except Exception as exc:  # the database is away: the next beat retries
                log.warning("cluster heartbeat failed: %s", " ".join(str(exc).split()))
                continue
            self._publish(owners)

    def _publish(self, owners: ClusterOwners | None) -> None:
        if owners is not None:
            self.bus.publish(owners)

    def _fault_requested(self, hostname: str, mode: str, delay_ms: int) -> None:
        """Another process's API asked for a fault: set it if the proxy is ours."""
        proxy = self.config.topology.proxy(hostname)
        if proxy is None or not self.owns(proxy) or self._set_fault is None:
            return
        task = asyncio.ensure_future(self._set_fault(hostname, mode, delay_ms))
        self._fault_tasks.add(task)
        task.add_done_callback(self._fault_tasks.discard)
