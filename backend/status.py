"""What the status routes read and what the fault route drives, as the API sees them.

The API depends on these two small things rather than on the whole ``Service``: the
public status (lights, proxy health and faults, incidents, Prometheus text) and the
operator's fault injection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from backend.monitor import Monitor
from backend.topology import Proxy, Topology


class FaultController(Protocol):
    async def set_fault(self, hostname: str, mode: str, delay_ms: int = 0) -> Proxy:
        """``slow`` delays every reply of the proxy, ``down`` takes it away, ``none``
        restores it; raises ``NotFound`` for an unknown proxy."""
        ...


class StatusView:
    """The monitor's view of the service, plus the metrics exposition."""

    def __init__(
        self, topology: Topology, monitor: Monitor, metrics: Callable[[], list[bytes]]
    ) -> None:
        self.topology = topology
        self.monitor = monitor
        self.metrics = metrics
