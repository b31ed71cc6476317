"""Who still uses a credential: the figures that tell an owner a rotation is finished.

Two halves on the two threads (``backend.loops``):

* ``CredentialActivity``, on the serving loop: one record per credential that has
  authenticated on this process, which every session of it shares. A command costs one
  attribute increment (``commands += 1``, in ``protocol.commands``); a refused one (a
  missing ``write`` / ``flush``) another; a successful authentication replaces
  ``last_auth`` with a new frozen ``LastAuth`` (one attribute store, so a reader on the
  control thread sees the old one or the new one, never half of each).
* ``ActivitySampler``, on the control thread: every ``interval_s`` it reads the cumulative
  counters (plain int reads) into two small rings per credential — the last minute at
  ``interval_s`` resolution, the last hour at one sample a minute — so "commands in the
  last minute / hour" cost the data plane nothing and each credential a bounded few
  hundred bytes, however long it lives. It also saves each credential's last
  authentication in the database (``UseStore``), at most once every ``SAVE_EVERY_S`` per
  credential and once more when the service stops, so "last used" survives a restart
  (the counters and connections are this run's: they start again from zero).

Figures are this process's: a credential used through another process (``--clusters``)
is counted where its sessions are served.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, cast

from backend.control.repository import ControlRepository, CredentialUseRow

log = logging.getLogger(__name__)

Protocol_ = Literal["ascii", "binary", "meta"]
MINUTE_S = 60.0
HOUR_S = 3600.0
SAMPLE_INTERVAL_S = 10.0
SAVE_EVERY_S = 60.0  # a credential's last authentication is written at most this often
MAX_PEERS = 100  # client addresses listed per credential (``connections`` counts them all)


@dataclass(frozen=True, slots=True)
class LastAuth:
    """A successful authentication: when (unix time), how, through which proxy, from where."""

    at: float
    protocol: Protocol_
    proxy: str
    peer: str


class CredentialActivity:
    """One credential's usage on this process; written on the serving loop only."""

    __slots__ = ("commands", "refused_write", "refused_flush", "last_auth", "since")

    def __init__(self, now: float) -> None:
        self.commands = 0  # cumulative: every command that reached ``protocol.commands``
        self.refused_write = 0
        self.refused_flush = 0
        self.last_auth: LastAuth | None = None
        self.since = now  # monotonic time the record began (its counts are all newer)


@dataclass(frozen=True, slots=True)
class ActivityReport:
    """What the API answers for one credential."""

    last_auth: LastAuth | None
    connections: int
    peers: list[str]  # one per live connection, sorted, at most ``MAX_PEERS``
    commands_last_minute: int
    commands_last_hour: int
    refused_write: int
    refused_flush: int


NEVER_USED = ActivityReport(None, 0, [], 0, 0, 0, 0)


class Ring:
    """The last ``size`` samples of a cumulative counter, in a fixed ``array``."""

    __slots__ = ("values", "times", "count", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.values = array("q", bytes(8 * size))
        self.times = array("d", bytes(8 * size))
        self.count = 0  # samples pushed so far (the newest is at ``(count - 1) % size``)

    def push(self, t: float, value: int) -> None:
        i = self.count % self.size
        self.values[i], self.times[i] = value, t
        self.count += 1

    def at_or_before(self, t: float) -> int | None:
        """The newest sample taken at or before ``t``; None if every sample is newer."""
        for back in range(min(self.count, self.size)):
            i = (self.count - 1 - back) % self.size
            if self.times[i] <= t:
                return self.values[i]
        return None

    def oldest(self) -> tuple[float, int] | None:
        if not self.count:
            return None
        i = self.count % self.size if self.count >= self.size else 0
        return self.times[i], self.values[i]


class Rates:
    """A credential's command counts over time: enough to answer the last minute and hour."""

    __slots__ = ("minute", "hour", "last_hour_sample")

    def __init__(self, interval_s: float) -> None:
        self.minute = Ring(math.ceil(MINUTE_S / interval_s) + 2)
        self.hour = Ring(int(HOUR_S / MINUTE_S) + 2)
        self.last_hour_sample = -math.inf

    def sample(self, t: float, commands: int) -> None:
        self.minute.push(t, commands)
        if t - self.last_hour_sample >= MINUTE_S:
            self.hour.push(t, commands)
            self.last_hour_sample = t

    def since(self, ring: Ring, now: float, window: float, record: CredentialActivity) -> int:
        """The counter's value ``window`` ago: a sample then, or 0 when the record began
        within the window, or else the oldest sample (the sampler is younger than it)."""
        if record.since >= now - window:
            return 0
        value = ring.at_or_before(now - window)
        if value is not None:
            return value
        oldest = ring.oldest()
        return oldest[1] if oldest is not None else record.commands


class ActivityView(Protocol):
    """What the sampler reads of the data plane (``DataPlane``'s queries)."""

    def activity_now(self) -> dict[str, CredentialActivity]: ...

    def activity_of(self, username: str) -> CredentialActivity | None: ...

    def live_peers(self, username: str) -> list[str]: ...


class UseStore(Protocol):
    """Where last authentications are kept across restarts."""

    def load(self) -> dict[str, LastAuth]: ...

    def save(self, uses: list[tuple[str, LastAuth]]) -> None: ...


class RepositoryUses:
    """``UseStore`` in the control repository (its ``credential_use`` table)."""

    def __init__(self, repository: ControlRepository) -> None:
        self.repository = repository

    def load(self) -> dict[str, LastAuth]:
        return {
            row.username: LastAuth(row.at, cast(Protocol_, row.protocol), row.proxy, row.peer)
            for row in self.repository.credential_uses()
        }

    def save(self, uses: list[tuple[str, LastAuth]]) -> None:
        rows = [CredentialUseRow(u, a.at, a.protocol, a.proxy, a.peer) for u, a in uses]
        with self.repository.transaction():
            self.repository.save_credential_uses(rows)


class ActivitySampler:
    """Turns the data plane's cumulative counters into per-minute and per-hour figures,
    and saves last authentications (``store``) so they outlive the process.

    Runs on the control thread; reads the records only (``activity_now``: a dict copy)."""

    def __init__(
        self,
        view: ActivityView,
        interval_s: float = SAMPLE_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        store: UseStore | None = None,
    ) -> None:
        self.view = view
        self.interval_s = interval_s
        self.clock = clock
        self.rates: dict[str, Rates] = {}
        self.store = store
        # The last authentication saved (or loaded) per credential, and when it was saved.
        self.saved: dict[str, LastAuth] = store.load() if store is not None else {}
        self.saved_at: dict[str, float] = {}

    def sample(self) -> None:
        now = self.clock()
        records = self.view.activity_now()
        for username, record in records.items():
            rates = self.rates.get(username)
            if rates is None:
                rates = self.rates[username] = Rates(self.interval_s)
            rates.sample(now, record.commands)
        for gone in self.rates.keys() - records.keys():  # deleted credentials
            del self.rates[gone]
            self.saved.pop(gone, None)
            self.saved_at.pop(gone, None)
        self.save(records, now)

    def save(self, records: dict[str, CredentialActivity], now: float, force: bool = False) -> None:
        """Write the last authentications that changed since saved, each at most once
        every ``SAVE_EVERY_S`` (all of them with ``force``). A failed write is logged and
        tried again at the next sample."""
        if self.store is None:
            return
        due = [
            (username, last)
            for username, record in records.items()
            if (last := record.last_auth) is not None
            and self.saved.get(username) is not last
            and (force or now - self.saved_at.get(username, -math.inf) >= SAVE_EVERY_S)
        ]
        if not due:
            return
        try:
            self.store.save(due)
        except Exception as exc:  # the database is away: the figures stay in memory
            log.warning("could not save %d credentials' last use: %s", len(due), exc)
            return
        for username, last in due:
            self.saved[username] = last
            self.saved_at[username] = now

    async def run(self) -> None:
        """Sample every ``interval_s`` until cancelled; then save what is left."""
        try:
            while True:
                self.sample()
                await asyncio.sleep(self.interval_s)
        finally:
            self.save(self.view.activity_now(), self.clock(), force=True)

    def report(self, username: str) -> ActivityReport:
        record = self.view.activity_of(username)
        every = self.view.live_peers(username)
        count, peers = len(every), every[:MAX_PEERS]
        if record is None:
            last = self.saved.get(username)  # used before a restart, not since (or never)
            return ActivityReport(last, count, peers, 0, 0, 0, 0)
        now = self.clock()
        commands = record.commands
        rates = self.rates.get(username) or Rates(self.interval_s)
        return ActivityReport(
            last_auth=record.last_auth or self.saved.get(username),
            connections=count,
            peers=peers,
            commands_last_minute=commands - rates.since(rates.minute, now, MINUTE_S, record),
            commands_last_hour=commands - rates.since(rates.hour, now, HOUR_S, record),
            refused_write=record.refused_write,
            refused_flush=record.refused_flush,
        )
