"""Which process's monitor leads: a PostgreSQL advisory lock (issue 14 item 5).

Several ``cachier-backend`` processes on one database must say one thing about the
service's health: one monitor probes every proxy of every process and records each
change of light once; the others show what it found (``Monitor.follow``). Leading is
holding ``LEADER_LOCK``, a session-level advisory lock taken on a connection of its own:

* every process tries ``pg_try_advisory_lock`` once per probe interval until it holds it
  (never waiting on it: a waiting connection could not notice anything else);
* the leader runs ``SELECT 1`` on that connection each interval: the lock lives exactly
  as long as the connection, so a lost connection (the database restarted, the network
  broke) means no longer leading, and it steps down at once and tries again;
* a killed leader's connection closes with its process (the kernel closes the socket,
  the server ends the session and frees the lock), so another process holds it at its
  next try: within one probe interval, plus the server noticing the closed socket.
  A leader that hangs with its connection open keeps the lock; its clusters' heartbeat
  and the probes of its proxies cannot run either, and that is the limit of this design
  (a leader that hangs while its socket stays open is not replaced).

Every statement has a deadline (``timeout``): a database that stops answering makes the
leader step down rather than keep leading on a lock it may have lost. Everything runs on
the control thread, in one task that the service cancels at stop; the connection closes
with it, which frees the lock for the next process at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from backend.control.models import Credential
from backend.monitor import Monitor

if TYPE_CHECKING:
    from psycopg import AsyncConnection

log = logging.getLogger(__name__)

# pg_advisory_lock key of the leading monitor ("cachier" + 3, see control/postgres.py).
LEADER_LOCK = 0x6361_6368_6965_7203
RECONNECT_MAX_S = 2.0


class Leadership:
    """Try for the lock, lead while holding it, follow otherwise."""

    def __init__(
        self,
        url: str,
        process_id: str,
        monitor: Monitor,
        credentials: dict[str, Credential],
        on_change: Callable[[bool], None] = lambda leading: None,
    ) -> None:
        self.url = url
        self.process_id = process_id
        self.monitor = monitor
        self.credentials = credentials
        self.on_change = on_change
        self.interval_s = monitor.interval_s
        self.timeout_s = max(1.0, 5 * monitor.interval_s)
        self.leading = False
        self.backend_pid: int | None = None  # the lock connection's server pid (tests)
        self._duty: list[asyncio.Task] = []

    async def run(self) -> None:
        """Until cancelled: follow, and lead whenever the lock is ours."""
        import psycopg

        self._duty = self.monitor.follow()
        delay = 0.0
        try:
            while True:
                try:
                    conn = await asyncio.wait_for(
                        psycopg.AsyncConnection.connect(
                            self.url,
                            autocommit=True,
                            application_name=f"cachier-leader {self.process_id}"[:63],
                        ),
                        self.timeout_s,
                    )
                    async with conn:
                        self.backend_pid = conn.info.backend_pid
                        delay = 0.0
                        while True:
                            await self._try(conn)
                            await asyncio.sleep(self.interval_s)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # psycopg.Error, OSError, TimeoutError
                    reason = " ".join(str(exc).split()) or type(exc).__name__
                    if self.leading:
                        log.warning("stopped leading the status monitor (%s)", reason)
                    else:
                        log.warning("cannot try for the monitor's lead (%s); retrying", reason)
                    self._become(False)
                await asyncio.sleep(delay)
                delay = min(max(0.1, delay * 2), RECONNECT_MAX_S)
        finally:
            await self._stop_duty()

    async def _try(self, conn: AsyncConnection) -> None:
        """One interval: keep the lock (the connection answers), or try to take it."""
        if self.leading:
            await asyncio.wait_for(conn.execute("SELECT 1"), self.timeout_s)
            return
        cursor = await asyncio.wait_for(
            conn.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK,)), self.timeout_s
        )
        row = await cursor.fetchone()
        if row is not None and row[0]:
            log.info("this process leads the status monitor")
            self._become(True)

    def _become(self, leading: bool) -> None:
        if leading == self.leading:
            return
        self.leading = leading
        for task in self._duty:
            task.cancel()  # probers close their connections as they end
        self._duty = self.monitor.lead(self.credentials) if leading else self.monitor.follow()
        self.on_change(leading)

    async def _stop_duty(self) -> None:
        for task in self._duty:
            task.cancel()
        if self._duty:
            await asyncio.wait(self._duty, timeout=2)
        self._duty = []
