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
  next try: within one probe interval, plus the server noticing the closed socket;
* a leader that hangs (stopped, stuck) keeps its connection open, and with it the lock,
  but stops publishing its results: a process that does not lead and finds them older
  than ``depose_after_s`` (by the database's clock) ends the session holding the lock
  (``LeaderLock.depose``), and the lock is free for the next try. Should the old leader
  wake up, its next check fails on the ended session and it steps down.

The statements are in ``control/leaderlock.py``; each has a deadline: a database that
stops answering makes the leader step down rather than keep leading on a lock it may
have lost. Everything runs on the control thread, in one task that the service cancels
at stop; the connection closes with it, which frees the lock for the next process at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from backend.control.leaderlock import LEADER_LOCK, LeaderLock
from backend.control.models import Credential
from backend.control.ownership import STALE_AFTER_S
from backend.monitor import Monitor

__all__ = ["LEADER_LOCK", "Leadership"]

log = logging.getLogger(__name__)

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
        self.monitor = monitor
        self.credentials = credentials
        self.on_change = on_change
        self.interval_s = monitor.interval_s
        self.lock = LeaderLock(url, process_id, max(1.0, 5 * monitor.interval_s))
        # A leader silent this long is deposed: longer than an owner's staleness (a busy
        # database is not a hung leader) and than a few probe intervals.
        self.depose_after_s = max(STALE_AFTER_S, 10 * monitor.interval_s)
        self.leading = False
        self._duty: list[asyncio.Task] = []

    async def run(self) -> None:
        """Until cancelled: follow, and lead whenever the lock is ours."""
        self._duty = self.monitor.follow()
        delay = 0.0
        try:
            while True:
                try:
                    await self.lock.connect()
                    delay = 0.0
                    while True:
                        await self._try()
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
                finally:
                    await self.lock.close()
                await asyncio.sleep(delay)
                delay = min(max(0.1, delay * 2), RECONNECT_MAX_S)
        finally:
            await self._stop_duty()

    async def _try(self) -> None:
        """One interval: keep the lock (the connection answers), or try to take it, and
        depose a leader that stopped publishing."""
        if self.leading:
            await self.lock.check()
            return
        if await self.lock.try_take():
            log.info("this process leads the status monitor")
            self._become(True)
            return
        age = await self.lock.results_age()
        if age is not None and age > self.depose_after_s and await self.lock.depose():
            log.warning(
                "the leading monitor published nothing for %.1f s: its lock session ended",
                age,
            )

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
