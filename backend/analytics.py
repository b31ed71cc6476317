"""Per-cache analytics: every cache sampled each second into bounded time series.

One background task (``Analytics.run``) calls ``sample()`` once per ``interval_s``; the API
reads ``series()``. Both run on the control thread (``backend.loops``), so no locking here;
what is read of the data plane, on the serving loop's thread, is read without changing it
(``DataPlane.engines_now``, ``engine_of``, counters that are plain ints), but for this
sampler's own queue of changed engines, which it empties (``backend.changes``).

Exposed values (PRODUCT.md §5 "stats"): counters are cumulative, as memcached's ``stats``
reports them, and gauges are the value seen at sampling time; clients derive rates.
``hit_rate`` is the only derived field, computed here because a client cannot recover it
for a rolled-up bucket: hits / (hits + misses) over the interval the point covers (since
the previous point), or None when that interval saw no gets.

Counters stay monotonic even when the numbers underneath restart from zero:

* ``stats reset`` zeroes the counters of the same ``CacheStats`` object. Any counter seen
  going backwards is taken as a reset of all of them (``CacheStats.reset`` zeroes them
  together), and the last values seen are added to a per-cache offset. Increments made
  between the last sample and the reset are lost: nobody recorded them.
* A migration (or anything else that replaces the cache's engine) gives the cache
  a fresh ``CacheStats`` that starts at zero. A new stats object is detected by identity;
  the old object is still referenced here, so its final values (including what happened
  after our last sample) are carried into the offset and nothing is lost.

Storage per cache, three tiers, each a compressed ``backend.tsdb.Series`` (bounded by
design):

=========  ==========  ===========  ========================================
tier       resolution  points       retention
=========  ==========  ===========  ========================================
fine       1 s         900          15 minutes (``FINE_RETENTION_S / interval_s``)
minute     60 s        1 440        24 hours
hour       3 600 s     720          30 days
=========  ==========  ===========  ========================================

A stored row is 16 integers (4 gauges, 9 counters, the latency's p50, p99 and max as
levels, ``backend.latency.level``: the nearest of 24 a decade, within 5.1 %, -1 for an
interval without a read); ``t`` and ``hit_rate`` are not stored. A level is a small
integer, whose deltas compress better than noisy µs (a busy cache's p99 and max move
every second): 78.6 -> 74.3 KB for the full history below from that alone.
A fine row sits at a sampling tick, whose time the shared ``Timeline`` holds once for every
cache; a bucket sits at its number (start = number x resolution). ``hit_rate`` is
recomputed on reading from the row and the one before it, with the same arithmetic as
when it was computed at sampling time, so answers are identical to the float. The series
keep rows in chunks (128 ticks, 2 hours, 5 days) encoded as delta columns (the rollups:
zigzag delta-of-delta) laid out by byte plane and deflated (the rollups' closed chunks:
LZMA, ~10 % smaller, paid once per chunk); a run of unchanged rows is one shared tuple.
Measured with tracemalloc after a full history
(``tests/backend/test_analytics_history.py``, ``bench/analytics_history.py``):
~64 KB for a cache with every field moving at every sample (~20 gets/s, sets, deletes,
latency; ~79 KB with latency in µs, ~59 KB without latency; was ~1.5 MB with tuples in
deques), ~4.2 KB for an idle one (was ~573 KB; shared tick times included);
``Analytics.history_bytes`` estimates it for one cache. A deleted cache's track is
dropped at once (``CacheDeleted`` -> ``forget``); tracks of caches gone from
``dataplane.caches`` any other way are dropped after ``FINE_RETENTION_S``.

A rollup bucket (minute, hour) is stamped with its start (aligned to its resolution)
and holds: counters = the last value seen in the bucket; gauges = the **maximum** seen in
the bucket (not the mean: a capacity graph must show the peak that caused evictions, and a
max of maxes rolls minutes into hours exactly, where a mean of means would need weights);
``hit_rate`` recomputed from the counters over the bucket (from the last point before it);
latency p50 / p99 / max from the bucket's latency windows merged (every read of the minute
or hour counted once: true percentiles of the bucket, not a maximum of per-second p99s;
the merged window of the bucket being filled is kept, ~700 bytes while it saw reads).
``series`` also returns the bucket still filling as the last (partial) point.

Sampling cost: a tick visits the caches the data plane noted as changed since the last
one (``backend.changes``) and ``1 / ROUND_S`` of every cache in turn (10 000 caches: ~17
a second), not every cache; an idle cache's ticks are recorded when it is next visited or
read (``_catch_up``: runs of one row, O(1) a chunk, and one rollup row a minute), as a
visit at every tick would have recorded them. A visit is O(1) with no dict built (rows
are tuples, counters read with one ``attrgetter`` call); a visited cache whose
``bytes_read`` did not move (every command is read from a connection first, so the other
counters cannot move without it) costs one counter compared, a usage read, one tuple
comparison and a run extended by one. A changing cache also reads its counters, folds
into the minute rollup and, every 16 rows, encodes them (``tsdb.PART``). Measured
(``bench/sampling_tick.py``, 10 000 caches, bench/README.md): a tick of idle caches 8.6
ms when every cache was visited, 0.1 ms now; every cache changing ~29 ms (encoding is the
price of the bytes). ``tests/backend/test_analytics.py::test_sampling_cost`` (1 000
active caches) and ``tests/backend/test_analytics_idle.py`` (10 000 idle: a tick visits
only the busy ones and a few in turn) measure it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import operator
import sys
import time
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from backend.events import CacheDeleted, EventBus
from backend.latency import (
    LEVELS_US,
    NO_LATENCY,
    TIMED_PER_S,
    TIMED_PER_S_PROCESS,
    levels,
    merge,
)
from backend.tsdb import Block, Row, Series, Timeline

if TYPE_CHECKING:
    from backend.dataplane import DataPlane
    from backend.engine import Engine, Usage
    from backend.store import CacheStats

log = logging.getLogger(__name__)

SAMPLE_FIELDS = (
    "memory_used",
    "memory_limit",
    "items",
    "get_hits",
    "get_misses",
    "hit_rate",
    "cmd_get",
    "cmd_set",
    "cmd_delete",
    "cmd_flush",
    "evictions",
    "curr_connections",
    "bytes_read",
    "bytes_written",
)
# Command latency over the interval a point covers (``backend.latency``), µs; None when
# it saw no read. Served after SAMPLE_FIELDS.
LATENCY_FIELDS = ("latency_p50_us", "latency_p99_us", "latency_max_us")

# Full resolution is kept this long; coarser tiers are (resolution_s, points).
FINE_RETENTION_S = 15 * 60
# Each cache is visited at least this often, noted as changed or not (``Analytics._visits``).
ROUND_S = 10 * 60
MINUTE_TIER = (60.0, 24 * 60)
HOUR_TIER = (3600.0, 30 * 24)

# Counters as named in CacheStats, in the order they are stored (after the gauges).
COUNTERS = (
    "get_hits",
    "get_misses",
    "cmd_get",
    "cmd_set",
    "cmd_delete",
    "cmd_flush",
    "evictions",
    "bytes_read",
    "bytes_written",
)
_read_counters: Callable[[CacheStats], tuple[int, ...]] = operator.attrgetter(*COUNTERS)
BYTES_READ = COUNTERS.index("bytes_read")

# Internal layouts. A row (what is stored, ``ROW``) holds the gauges then the counters; a
# point (what ``series`` answers from) adds ``t`` and ``hit_rate``, which are not stored:
# times come from the tick or bucket a row sits at, hit rates from consecutive rows.
ROW = ("memory_used", "memory_limit", "items", "curr_connections", *COUNTERS, *LATENCY_FIELDS)
MEMORY, LIMIT, ITEMS, CONNS, HITS, MISSES = range(6)
LAT = ROW.index(LATENCY_FIELDS[0])  # where the latency levels start (stored -1: none)
LAT_MAX = LAT + 2
_STORED = (
    "t",
    "memory_used",
    "memory_limit",
    "items",
    "curr_connections",
    "hit_rate",
    *COUNTERS,
    *LATENCY_FIELDS,
)
T = 0
# Where each exposed key (in the documented order) sits in a point.
_EXPOSED = tuple((name, _STORED.index(name)) for name in ("t", *SAMPLE_FIELDS))
_LATENCY = tuple((name, _STORED.index(name)) for name in LATENCY_FIELDS)

# Chunk sizes (rows of one aligned block of slots): a fine chunk is 128 ticks (shared with
# the Timeline), a minute chunk two hours, an hour chunk five days. Bigger chunks compress
# better and cost fewer objects; an open chunk keeps at most ``tsdb.PART`` rows raw.
FINE_CHUNK = 128
MINUTE_CHUNK = 120
HOUR_CHUNK = 120

Point = tuple[Any, ...]


def _sample(point: Point) -> dict[str, Any]:
    """A point as the API serves it: a latency level as its µs (-1 is None: no read)."""
    sample = {name: point[i] for name, i in _EXPOSED}
    for name, i in _LATENCY:
        value = point[i]
        sample[name] = LEVELS_US[value] if value >= 0 else None
    return sample


def _rate(row: Row, hits: int, misses: int) -> float | None:
    """hits / gets over what ``row`` adds to counters that were ``hits``, ``misses``."""
    hit = row[HITS] - hits
    gets = hit + row[MISSES] - misses
    return hit / gets if gets else None


def _points(times: list[float], rows: list[Row], base: tuple[int, int] | None) -> list[Point]:
    """Stored rows as points, each hit rate over what it adds to the row before it
    (``base``: the counters before the first row; None: the first has no rate)."""
    points = []
    for t, row in zip(times, rows, strict=True):
        rate = None if base is None else _rate(row, *base)
        points.append((t, *row[:HITS], rate, *row[HITS:]))
        base = row[HITS], row[MISSES]
    return points


class _Rollup:
    """One coarse tier: closed buckets (a ``Series``) plus the bucket being filled, updated
    incrementally.

    Incremental (a few comparisons per point) rather than recomputed from the fine samples
    when a bucket closes, so that every cache does not rescan its last minute at the same
    tick and stall the event loop once a minute. A closed bucket is a row (gauge maxima,
    last counters) at its bucket number; its hit rate is recomputed on reading from the
    counters of the bucket before it.

    Latency: the bucket's latency windows merged (``window``: bucket counts added, the
    larger maximum), so a minute's p50 and p99 are those of every read in the minute and
    its max the minute's longest read (an hour: merged from its minutes' windows). Not
    the maximum of the seconds' p99: one slow second of few reads does not make a busy
    minute's p99, it shows in the max.
    """

    __slots__ = (
        "resolution",
        "buckets",
        "index",
        "origin",
        "base_hits",
        "base_misses",
        "memory",
        "limit",
        "items",
        "conns",
        "last",
        "window",
    )

    def __init__(self, resolution: float, points: int, chunk: int) -> None:
        self.resolution = resolution
        self.buckets = Series(len(ROW), points, chunk, resolution, dod=True, dense=True)
        self.index: int | None = None
        # Hits/misses just before the very first point, for the first bucket's hit rate.
        self.origin: tuple[int, int] | None = None
        self.base_hits = self.base_misses = 0
        self.memory = self.limit = self.items = self.conns = 0
        self.last: Row | None = None
        self.window: list[int] | None = None  # the latency of the bucket being filled

    def add(
        self, index: int, row: Row, window: list[int] | None
    ) -> tuple[int, Row, list[int] | None] | None:
        """Fold ``row`` and its latency ``window`` (in bucket ``index``) in; returns the
        bucket it closed, if any, and that bucket's latency window."""
        if index == self.index:
            if window is not None:
                self.window = merge(self.window, window)  # a new list: ``preview`` shares
            if row[MEMORY] > self.memory:
                self.memory = row[MEMORY]
            if row[LIMIT] > self.limit:
                self.limit = row[LIMIT]
            if row[ITEMS] > self.items:
                self.items = row[ITEMS]
            if row[CONNS] > self.conns:
                self.conns = row[CONNS]
            self.last = row
            return None
        last = self.last
        closed = None
        if last is not None:
            assert self.index is not None
            closed = self.index, self.current_row(), self.window
            self.base_hits, self.base_misses = last[HITS], last[MISSES]
        else:
            if self.origin is None:
                self.origin = (row[HITS], row[MISSES])
            self.base_hits, self.base_misses = self.origin
        self.index = index
        self.memory, self.limit, self.items, self.conns = row[:HITS]
        self.last = row
        self.window = window
        return closed

    def current_row(self) -> Row:
        """The bucket being filled, as a row (needs at least one row added)."""
        last = self.last
        assert last is not None
        gauges = (self.memory, self.limit, self.items, self.conns)
        return gauges + last[HITS:LAT] + levels(self.window)

    def current(self) -> Point:
        """The bucket being filled, as a point (needs at least one row added)."""
        row = self.current_row()
        assert self.index is not None
        rate = _rate(row, self.base_hits, self.base_misses)
        return (self.index * self.resolution, *row[:HITS], rate, *row[HITS:])

    def preview(
        self,
        pending: tuple[int, Row, list[int] | None] | None,
        origin: tuple[int, int] | None,
    ) -> list[Point]:
        """What follows the closed buckets: the open one, with ``pending`` folded in on a
        scratch copy (which may first close the open one: then both)."""
        scratch = _Rollup.__new__(_Rollup)
        for name in _Rollup.__slots__:
            setattr(scratch, name, getattr(self, name))
        extra = []
        if pending is not None:
            if scratch.last is None and scratch.origin is None:
                scratch.origin = origin
            if scratch.last is not None and pending[0] != scratch.index:
                extra.append(scratch.current())
            scratch.add(*pending)
        if scratch.last is not None:
            extra.append(scratch.current())
        return extra

    def closed(self, n: int, origin: tuple[int, int] | None) -> list[Point]:
        """The last ``n`` closed buckets as points."""
        if n <= 0:
            return []
        _, times, rows, before = self.buckets.read(n)
        base = origin if before is None else (before[HITS], before[MISSES])
        return _points(times, rows, base)


class _Track:
    """Everything kept for one cache."""

    __slots__ = (
        "fine",
        "minute",
        "hour",
        "stats",
        "raw",
        "offsets",
        "counters",
        "usage",
        "prev",
        "seen",
        "next",
        "present",
    )

    def __init__(self, fine_points: int) -> None:
        self.fine = Series(len(ROW), fine_points, FINE_CHUNK)
        self.minute = _Rollup(*MINUTE_TIER, MINUTE_CHUNK)
        self.hour = _Rollup(*HOUR_TIER, HOUR_CHUNK)
        # The CacheStats object last read, and its raw counters then (to spot a restart).
        self.stats: CacheStats | None = None
        self.raw: tuple[int, ...] = ()
        # Added to raw counters so exposed ones never go down; None until first needed.
        self.offsets: tuple[int, ...] | None = None
        self.counters: tuple[int, ...] = ()  # the exposed counters last sampled
        self.usage: Usage | None = None  # the engine's usage at the last sample
        self.prev: Row | None = None  # the last row sampled
        self.seen = -math.inf  # when
        self.next = 0  # the first tick not recorded yet (``Analytics._catch_up``)
        self.present = True  # whether its cache had an engine here at its last visit

    def carry(self, amounts: Iterable[int]) -> None:
        """Add ``amounts`` (counts the current raw counters no longer include) to offsets."""
        base = self.offsets or (0,) * len(COUNTERS)
        self.offsets = tuple(map(operator.add, base, amounts))

    def nbytes(self) -> int:
        """Bytes of this track's history (tracemalloc agrees within a few %)."""
        size = sys.getsizeof(self) + self.fine.nbytes()
        size += sum(map(sys.getsizeof, (self.raw, self.offsets, self.counters, self.prev)))
        for rollup in (self.minute, self.hour):
            size += sys.getsizeof(rollup) + rollup.buckets.nbytes()
            if rollup.window is not None:
                size += sys.getsizeof(rollup.window)
        return size


class Analytics:
    """Samples every cache of the data plane into per-cache bounded time series."""

    def __init__(
        self,
        dataplane: DataPlane,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.time,
        every_cache: bool = False,
    ) -> None:
        if not 0 < interval_s <= MINUTE_TIER[0]:
            raise ValueError(f"interval_s must be in (0, {MINUTE_TIER[0]}], got {interval_s}")
        self.dataplane = dataplane
        self.interval_s = float(interval_s)
        self.clock = clock
        self.fine_points = max(1, round(FINE_RETENTION_S / interval_s))
        # (resolution, points) from finest to coarsest: series() picks the first that fits.
        self.tiers = ((self.interval_s, self.fine_points), MINUTE_TIER, HOUR_TIER)
        self._tracks: dict[str, _Track] = {}
        # Reads a cache may have timed per sample (``CommandLatency.take``): at most
        # TIMED_PER_S a second, less while the process timed more than TIMED_PER_S_PROCESS.
        self._most = max(1, round(TIMED_PER_S * self.interval_s))
        self._process_most = max(1, round(TIMED_PER_S_PROCESS * self.interval_s))
        self._timed = self._most
        # Every track is visited at least once per round (``_visits``); a track's missed
        # ticks then reach back a round at most, and the Timeline keeps their times.
        self._round_ticks = max(1, round(ROUND_S / self.interval_s))
        self._timeline = Timeline(FINE_CHUNK, keep=self._round_ticks // FINE_CHUNK + 2)
        # Every track's cache id, least recently visited (or read) first; ``_turns``: how
        # many of the first are owed a visit.
        self._order: OrderedDict[str, None] = OrderedDict()
        self._turns = 0.0
        self.every_cache = every_cache
        self._changes = dataplane.changes.reader()
        self._visit_all = True  # the first sample visits every cache
        # When to look for caches with an engine and no track (once a round): one noted
        # while no reader could see it yet would otherwise wait for its first change.
        self._discover_at = 0
        self._last_t = -math.inf
        self._minute: int | None = None

    def subscribe(self, bus: EventBus, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Forget deleted caches, on ``loop`` (the one that samples) when given."""
        bus.subscribe(CacheDeleted, lambda event: self.forget(event.cache_id), loop)

    # -- sampling -------------------------------------------------------------------
    def sample(self) -> None:
        """Take one sample of every cache now.

        A clock that did not move forward (a step back of the wall clock) skips the
        sample: points stay in time order, which rollups and windows rely on.

        Visited are only the caches whose figures may have moved since their last visit:
        those the data plane noted (``backend.changes``: reads, connections, flushes,
        moves), and a few others in turn (``ROUND_S``). Every other cache was idle, and
        its ticks since its last visit are recorded when it is next visited or read
        (``_catch_up``): the rows an eager sample would have taken, so the answers are
        the same (``tests/backend/test_analytics_idle.py`` checks both ways against each
        other). The first sample visits every cache, so does one after this sampler's
        queue overflowed (``changes.MAX_QUEUED``), and so does each one with
        ``every_cache``: for engines changed behind the data plane's back (a test's).
        """
        now = self.clock()
        if now <= self._last_t:
            return
        self._last_t = now
        tick = self._timeline.record(now)
        minute = int(now // MINUTE_TIER[0])
        changed = self._changes.take()
        if changed is None or self._visit_all or self.every_cache:
            self._visit_all = False
            self._discover_at = tick + self._round_ticks
            visits: dict[str, Engine | None] = dict.fromkeys(self._tracks)
            visits.update(self.dataplane.engines_now())
        else:
            visits = self._visits(changed, tick)
            if tick >= self._discover_at:  # caches with an engine but no track yet
                self._discover_at = tick + self._round_ticks
                engines = self.dataplane.engines_now()
                for cache_id in engines.keys() - self._tracks.keys():
                    visits[cache_id] = engines[cache_id]
        try:
            answered = self._sample(visits, tick, now, minute)
        except BaseException:
            self._visit_all = True  # the engines taken and not visited: all, next time
            raise
        self._adjust_timing(answered)
        if minute != self._minute:
            self._minute = minute
            self._prune(now)

    def _visits(self, changed: list[Engine], tick: int) -> dict[str, Engine | None]:
        """{cache id: its engine here now, None if it has none} for the caches noted as
        changed, then the least recently visited: a round's share of every track (``n /
        round`` a tick), and any whose last visit is a round old (caches created or
        deleted change the share), so that none waits longer than ``ROUND_S``."""
        engine_of = self.dataplane.engine_of
        visits: dict[str, Engine | None] = {}
        for engine in changed:
            cache_id = engine.cache_id
            if cache_id not in visits:
                visits[cache_id] = engine_of(cache_id)
        order, tracks = self._order, self._tracks
        self._turns += len(order) / self._round_ticks
        turns = int(self._turns)
        self._turns -= turns
        due = tick - self._round_ticks  # a first unrecorded tick this old: visit it now
        for cache_id in order:  # oldest first; ``_sample`` moves the visited to the end
            if turns > 0:
                turns -= 1
            elif tracks[cache_id].next > due:
                break
            if cache_id not in visits:
                visits[cache_id] = engine_of(cache_id)
        return visits

    def _sample(
        self, visits: dict[str, Engine | None], tick: int, now: float, minute: int
    ) -> list[int]:
        """Sample the caches of ``visits`` at ``tick``; returns the reads of each cache that
        answered any since its last sample (for ``_adjust_timing``)."""
        times = self._timeline.block
        tracks = self._tracks
        read, lt, add = _read_counters, operator.lt, operator.add  # locals: hot loop
        tell, reader = self.dataplane.changes.tell_others, self._changes
        visited = self._order.move_to_end
        answered: list[int] = []
        for cache_id, engine in visits.items():
            track = tracks.get(cache_id)
            if engine is None:  # none here (deleted, moved away): no rows from now on
                if track is not None:
                    self._catch_up(track, tick)
                    track.present = False
                    track.next = tick + 1
                    visited(cache_id)
                continue
            stats = engine.stats
            latency = engine.latency  # None until the cache's first connection
            window = None
            if latency is not None:
                window = latency.take(self._timed)
                if window is not None:
                    answered.append(latency.reads)
                    tell(engine, reader)  # its histogram moved: ``/metrics`` shows it
            if track is None:
                track = tracks[cache_id] = _Track(self.fine_points)
                track.stats = stats
                self._order[cache_id] = None
            else:
                self._catch_up(track, tick)
                visited(cache_id)
                if stats is not track.stats:
                    self._switch(track, stats)
                elif stats.bytes_read == track.raw[BYTES_READ]:
                    # No command since the last sample: every command is read from a
                    # connection first and the listener counts those bytes, so the other
                    # counters cannot have moved (one read taken between a command and its
                    # bytes being counted shows it at the next tick). Only the gauges can: a
                    # flush or a move through the API, a connection opened or closed.
                    usage, conns = engine.usage(), stats.curr_connections
                    prev = track.prev
                    assert prev is not None
                    track.next, track.present, track.seen = tick + 1, True, now
                    if (
                        usage == track.usage
                        and conns == prev[CONNS]
                        and track.minute.index == minute
                        and window is None
                        and prev[LAT_MAX] < 0
                    ):
                        track.fine.append(tick, prev, times)  # idle: the same row again
                        continue
                    row = (*usage, conns) + track.counters + levels(window)
                    self._record(track, tick, times, minute, row, window)
                    track.usage = usage
                    continue
            raw = read(stats)
            if any(map(lt, raw, track.raw)):
                track.carry(track.raw)  # stats reset: everything restarted from zero
            track.raw = raw
            offsets = track.offsets
            track.counters = raw if offsets is None else tuple(map(add, raw, offsets))
            usage = engine.usage()
            row = (*usage, stats.curr_connections) + track.counters + levels(window)
            self._record(track, tick, times, minute, row, window)
            track.usage = usage
            track.next, track.present, track.seen = tick + 1, True, now
        return answered

    def _catch_up(self, track: _Track, upto: int) -> None:
        """Record ``track``'s ticks from its last visit up to (not including) ``upto``: its
        cache was idle (nothing noted it), so each is the row of its last visit, its
        latency empty (no read), as a visit at that tick would have recorded it. Only the
        fine tier's last ``fine_points`` are written (older ones would be dropped at
        once), in runs (``Series.append_run``); the rollups get each minute's row once
        (the minutes found by bisecting the ticks' times)."""
        first, track.next = track.next, upto
        if first >= upto or not track.present:
            return
        prev = track.prev
        assert prev is not None
        row = prev if prev[LAT_MAX] < 0 else prev[:LAT] + NO_LATENCY
        timeline, size, per_minute = self._timeline, FINE_CHUNK, MINUTE_TIER[0]
        fine_from = upto - self.fine_points
        slot = first
        while slot < upto:
            base = slot // size * size
            end = min(upto, base + size)
            times = timeline.block_of(slot)
            if times is None:  # not kept: never, as each track is visited once a round
                slot = end
                continue
            while slot < end:
                minute = int(times[slot - base] // per_minute)
                stop = base + bisect_left(times, (minute + 1) * per_minute, slot - base, end - base)
                if stop > fine_from:
                    track.fine.append_run(max(slot, fine_from), stop, row, times)
                if minute != track.minute.index:
                    self._fold(track, minute, row, None)
                slot = stop
            track.seen = times[end - 1 - base]  # when its last tick recorded was
        track.prev = row

    def _adjust_timing(self, answered: list[int]) -> None:
        """The per-cache budget of timed reads for the next takes: the largest (up to
        TIMED_PER_S) under which the caches' last reads would have timed at most the
        process's budget, each cache min(its reads, budget) (water-filling: the quiet
        caches keep every read timed, the busy ones share what is left)."""
        left, budget = self._process_most, self._most
        if sum(answered) > left:
            answered.sort()
            for i, reads in enumerate(answered):
                caches = len(answered) - i
                if reads * caches > left:
                    budget = min(budget, left // caches)
                    break
                left -= reads
        self._timed = max(1, budget)

    @classmethod
    def _record(
        cls, track: _Track, tick: int, times: Block, minute: int, row: Row, window: list[int] | None
    ) -> None:
        """Store ``row`` as the cache's sample at ``tick`` and fold it (and its latency
        ``window``) into the rollups."""
        if row == track.prev:
            row = track.prev  # the same tuple: a constant chunk keeps one
        track.fine.append(tick, row, times)
        cls._fold(track, minute, row, window)
        track.prev = row

    @staticmethod
    def _fold(track: _Track, minute: int, row: Row, window: list[int] | None) -> None:
        """Fold ``row`` (and its latency ``window``) into the minute's bucket; a minute that
        closes goes into its hour's."""
        closed = track.minute.add(minute, row, window)
        if closed is not None:
            index, bucket, merged = closed
            track.minute.buckets.append(index, bucket)
            hour = track.hour
            if hour.origin is None:
                hour.origin = track.minute.origin
            closed = hour.add(int(index * MINUTE_TIER[0] // HOUR_TIER[0]), bucket, merged)
            if closed is not None:
                hour.buckets.append(closed[0], closed[1])

    @staticmethod
    def _switch(track: _Track, stats: CacheStats) -> None:
        """The cache got a new engine (migration): its counters start again from zero."""
        old = track.stats
        assert old is not None
        final = _read_counters(old)  # includes traffic after our last sample
        if any(map(operator.lt, final, track.raw)):  # the old one was reset meanwhile
            final = tuple(map(operator.add, final, track.raw))
        track.carry(final)
        track.stats = stats
        track.raw = (0,) * len(COUNTERS)

    def _prune(self, now: float) -> None:
        """Drop tracks of caches gone from the data plane for a whole fine window.

        A safety net against leaking a track; a deletion (``forget``) is immediate.
        """
        caches = self.dataplane.caches
        horizon = now - FINE_RETENTION_S
        stale = [
            cache_id
            for cache_id, track in self._tracks.items()
            if cache_id not in caches and track.seen < horizon
        ]
        for cache_id in stale:
            self.forget(cache_id)

    async def run(self) -> None:
        """Sample every ``interval_s`` on ticks aligned to the clock, until cancelled.

        Ticks are absolute multiples of the interval, so sleeping jitter never accumulates
        into drift; after a slow tick (or a stalled loop) missed ticks are skipped, never
        replayed back to back; a wall clock stepping backwards re-aligns instead of
        sleeping until the old tick comes round again.
        """
        interval = self.interval_s
        tick = math.floor(self.clock() / interval) + 1
        while True:
            delay = tick * interval - self.clock()
            # A sleep that wakes a hair early (the loop's clock is not the wall clock) leaves
            # the next tick just over one interval away: only more than that is a step back.
            if delay > 1.5 * interval:  # the clock stepped back
                tick = math.floor(self.clock() / interval) + 1
                delay = tick * interval - self.clock()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                self.sample()
            except Exception:  # a bug must not silently end analytics for the process
                log.exception("analytics sample failed")
            tick = max(tick + 1, math.floor(self.clock() / interval) + 1)

    # -- reading --------------------------------------------------------------------
    def series(self, cache_id: str, window_s: float | None = None) -> dict:
        """``{"interval_s", "samples": [...]}`` for the last ``window_s`` seconds, oldest first.

        The finest tier whose retention covers the window is used, and at most
        ``window_s / interval_s`` points are returned (at least one, for a window shorter
        than the resolution). ``None`` means the whole full-resolution window. An unknown
        cache has no samples.
        """
        if window_s is None:
            resolution, points = self.tiers[0]
            tier = 0
        else:
            if not window_s > 0 or math.isinf(window_s):
                raise ValueError(f"window_s must be a positive number of seconds, got {window_s}")
            tier = next(
                (i for i, (res, n) in enumerate(self.tiers) if res * n >= window_s),
                len(self.tiers) - 1,
            )
            resolution, points = self.tiers[tier]
            points = min(points, max(1, int(window_s // resolution)))
        track = self._tracks.get(cache_id)
        if track is None:
            return {"interval_s": resolution, "samples": []}
        self._catch_up(track, self._timeline.ticks)
        self._order.move_to_end(cache_id)  # the order stays by ticks recorded
        chosen: list[Point]
        if tier == 0:
            _, times, rows, before = track.fine.read(points)
            chosen = _points(
                times, rows, None if before is None else (before[HITS], before[MISSES])
            )
            span = 0.0  # a fine point is an instant
        else:
            minute, origin = track.minute, track.minute.origin
            if tier == 1:
                rollup = minute
                extra = [minute.current()] if minute.last is not None else []
            else:
                rollup = track.hour
                pending = None
                if minute.last is not None:
                    assert minute.index is not None
                    start = minute.index * minute.resolution
                    pending = (
                        int(start // rollup.resolution),
                        minute.current_row(),
                        minute.window,
                    )
                extra = rollup.preview(pending, origin)
            chosen = (rollup.closed(points - len(extra), origin) + extra)[-points:]
            span = resolution
        if window_s is not None:
            cutoff = self.clock() - window_s
            chosen = [p for p in chosen if p[T] + span > cutoff]
        return {
            "interval_s": resolution,
            "samples": [_sample(p) for p in chosen],
        }

    def catch_up(self) -> None:
        """Record every cache's missed ticks now, as reading each one's series would (for
        measuring what the history holds: ``bench/analytics_probe.py``)."""
        ticks = self._timeline.ticks
        for track in self._tracks.values():
            self._catch_up(track, ticks)

    def history_bytes(self, cache_id: str) -> int:
        """Bytes held for one cache's history (0 if none): what the scale benchmark quotes.
        Not counted: the Timeline blocks every cache shares (8 bytes a tick, ~8 KB in all)."""
        track = self._tracks.get(cache_id)
        if track is None:
            return 0
        self._catch_up(track, self._timeline.ticks)
        self._order.move_to_end(cache_id)  # the order stays by ticks recorded
        return track.nbytes()

    def forget(self, cache_id: str) -> None:
        """Drop a cache's history (the cache was deleted)."""
        if self._tracks.pop(cache_id, None) is not None:
            del self._order[cache_id]
