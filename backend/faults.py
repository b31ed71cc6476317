"""An operator's fault injection, routed to the process that serves the proxy (issue 14).

A fault is data-plane state (a proxy's listener, its sessions, its reply delay), so only
the process that owns the proxy's cluster can set it. With several processes on one
PostgreSQL database, any process's API may receive the request:

* the receiving process, if it does not own the cluster, sends a ``fault`` notification
  and waits (``CONFIRM_TIMEOUT_S`` at most) for the owner's confirmation, so its answer
  shows the fault as set;
* the owner applies it like a local request (``Service.set_fault``), which publishes
  ``ProxyFaultSet`` on its bus; ``announce`` then sends a ``fault_set`` notification;
* every other process publishes that ``ProxyFaultSet`` on its own bus, so every
  process's status page shows the fault.

No database row: a fault lives as long as the owning process (as in one process).
Everything here runs on the control thread.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from backend.control.notify import CHANNEL
from backend.events import ProxyFaultSet
from backend.topology import Proxy

CONFIRM_TIMEOUT_S = 1.0


class FaultRouter:
    def __init__(
        self, process_id: str, owned: list[str], notify: Callable[[str, str], None]
    ) -> None:
        self.process_id = process_id
        self.owned = frozenset(owned)
        self.notify = notify
        self._waiting: dict[str, list[asyncio.Future[None]]] = {}

    def owns(self, proxy: Proxy) -> bool:
        return proxy.cluster.name in self.owned

    async def request(self, proxy: Proxy, mode: str, delay_ms: int) -> None:
        """Ask the owner of ``proxy`` to set the fault; returns once it confirmed, or
        after ``CONFIRM_TIMEOUT_S`` (an owner that is down applies nothing, and says so
        on the status page, where its proxies are red)."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(proxy.hostname, []).append(waiter)
        self._send("fault", proxy.hostname, mode, delay_ms)
        try:
            await asyncio.wait_for(waiter, CONFIRM_TIMEOUT_S)
        except TimeoutError:
            pass
        finally:
            waiters = self._waiting.get(proxy.hostname, [])
            if waiter in waiters:
                waiters.remove(waiter)

    def announce(self, event: ProxyFaultSet, proxy: Proxy | None) -> None:
        """A fault was set here (bus subscriber): tell the others, if the proxy is ours."""
        if proxy is not None and self.owns(proxy):
            self._send("fault_set", event.hostname, event.mode, event.delay_ms)

    def confirmed(self, hostname: str, mode: str, delay_ms: int) -> ProxyFaultSet:
        """The owner set a fault: wake whoever asked; the event to publish here."""
        for waiter in self._waiting.pop(hostname, []):
            if not waiter.done():
                waiter.set_result(None)
        return ProxyFaultSet(hostname, mode, delay_ms)

    def _send(self, kind: str, hostname: str, mode: str, delay_ms: int) -> None:
        """Outside any transaction (autocommit): delivered at once."""
        payload = {"p": self.process_id, kind: [hostname, mode, delay_ms]}
        self.notify(CHANNEL, json.dumps(payload))
