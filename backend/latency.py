"""Command latency as the client feels it: from the proxy's read to its write, per cache.

The serving loop times reads of an authenticated connection that write a reply
(``backend.listeners``): from ``data_received`` to the ``transport.write`` of its
replies, or, under the "slow" fault, to the delayed write (``_send_delayed``), which is
what the client waits. One read may carry several pipelined commands; they are counted
**once per read**, with the time of the whole batch: every reply of a read is written
together at its end, so each of them waited that long, and one clock pair per read (not
per command) keeps a timed read at two ``perf_counter_ns`` calls and three list updates.
A read that writes nothing (``noreply`` commands, the first part of a value still
arriving) is not counted: the client waits for nothing.

Timing a read costs ~0.9 µs of a ~14 µs operation (``bench/latency_cost.py``), so a busy
cache's reads are sampled: ``every`` is 1 (every read timed) until a window held more
than the budget (``TIMED_PER_S``, less when many caches are busy: ``TIMED_PER_S_PROCESS``
for the whole process), then the window's reads / budget. A connection counts reads down
to the next one timed (one attribute per read); ``take`` scales the counts and the sum of
a sampled window back up by ``every``, so totals estimate every read. The percentiles of
~1 000 reads a second are those of the cache; its max is that of the reads timed.

Where it is kept: a cache's engine gets a ``CommandLatency`` at its first authenticated
connection (a cache nobody uses costs nothing). Its ``window`` is a fixed list of
``BUCKETS`` counts (log-linear bounds, ``BOUNDS_NS``: ten per decade, 1-1.25-1.5-2-2.5-
3-4-5-6-8, from 1 µs to 80 s and one above, each at most a third wider than the one
below), then the
sum and the maximum of the durations in ns. Recording allocates nothing but the ints.

The control thread's analytics sample takes the window every ``--sample-interval``
(``take``): it swaps in a fresh list (one attribute store, atomic under the GIL) and reads
the old one. A read whose recording straddles the swap may land in the old list after it
was read, and is lost: at most one read per swap, only when the GIL switches threads at
that very bytecode. ``take`` also folds the window into ``total`` (cumulative counts and
sum, for the Prometheus histogram in ``backend.metrics``), which only the control thread
touches.

Percentiles (``summary``) interpolate linearly inside the bucket holding the rank, as
Prometheus' ``histogram_quantile`` does, with the exact maximum as the upper bound of the
highest bucket in use: a steady 40 ms reads 40.x ms, not the bucket's 50 ms bound.
"""

from __future__ import annotations

from bisect import bisect_left
from itertools import accumulate
from operator import add, mul

# Upper bounds of the buckets, ns, inclusive as Prometheus' ``le`` (``bisect_left``):
# 1 µs ... 80 s, ten per decade; one more bucket above the last holds everything longer.
_STEPS = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0)
BOUNDS_NS: tuple[int, ...] = tuple(round(m * 10**d) for d in range(3, 11) for m in _STEPS)
BUCKETS = len(BOUNDS_NS) + 1
# The bucket of a duration, looked up rather than searched (``bisect_left``: ~100 ns more a
# read): by its 250 ns slot, (took - 1) // SLOT_NS, up to 16.4 ms. Every bound is a multiple
# of 250 ns, so a slot never straddles one and the lookup is exact; longer reads, and the
# impossible zero (slot -1: the last byte, bucket 0), take the search. 64 KiB, once.
SLOT_NS = 250
SLOTS = 1 << 16
BUCKET_OF_SLOT = bytes(bisect_left(BOUNDS_NS, (q + 1) * SLOT_NS) for q in range(SLOTS)) + b"\0"
SUM = BUCKETS  # window[SUM]: the durations added up, ns
MAX = BUCKETS + 1  # window[MAX]: the longest duration, ns (0: nothing recorded)
WIDTH = BUCKETS + 2
_EMPTY = (0,) * WIDTH

# The Prometheus histogram's bounds, seconds: every one is one of BOUNDS_NS, so the
# exposed buckets are exact sums of ours.
PROMETHEUS_BOUNDS_S = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)
# For each of them, how many of our buckets it covers (our index of that bound, plus one).
PROMETHEUS_CUTS = tuple(BOUNDS_NS.index(round(s * 1e9)) + 1 for s in PROMETHEUS_BOUNDS_S)

NO_LATENCY = (-1, -1, -1)  # what analytics stores for an interval without a read
# Reads timed per second and cache at most, about: above it one read in ``every`` is.
TIMED_PER_S = 1000
# ... and in the whole process: many caches each under TIMED_PER_S could otherwise have
# every read of the process timed (~1 µs each). Analytics lowers the per-cache figure so
# that the caches' last reads would time about this many (``Analytics._adjust_timing``):
# ~5 ms of CPU a second.
TIMED_PER_S_PROCESS = 5000


class CommandLatency:
    """One cache's recorder: the window the serving loop fills, the totals the control
    thread keeps. The listener inlines ``record`` (see ``MemcacheProtocol``)."""

    __slots__ = ("window", "total", "count", "every", "timed", "reads")

    def __init__(self) -> None:
        self.window: list[int] = list(_EMPTY)
        self.total: list[int] = [0] * (BUCKETS + 1)  # cumulative counts, then the sum (ns)
        self.count = 0  # reads in ``total``
        self.every = 1  # one read in this many is timed (set by ``take``)
        self.timed = 0  # reads timed in the window last taken
        self.reads = 0  # ... and reads answered then (estimated: timed x every)

    def record(self, ns: int) -> None:
        """One read took ``ns``. Serving loop only."""
        window = self.window
        slot = (ns - 1) // SLOT_NS
        window[BUCKET_OF_SLOT[slot] if slot < SLOTS else bisect_left(BOUNDS_NS, ns)] += 1
        window[SUM] += ns
        if ns > window[MAX]:
            window[MAX] = ns

    def take(self, budget: int = TIMED_PER_S) -> list[int] | None:
        """The window since the last take (None if nothing was recorded), replaced by an
        empty one and added to ``total``; counts and sum scaled up by ``every`` when reads
        were sampled, so they estimate every read. Then ``every`` for the next window: 1
        while the cache answered at most ``budget`` reads in this one, else what times
        about ``budget`` of them. Control thread only."""
        window = self.window
        every = self.every
        if not window[MAX]:
            self.every = 1  # nothing timed: the cache went quiet, time every read again
            self.timed = self.reads = 0
            return None
        self.window = list(_EMPTY)
        self.timed = sum(window[:BUCKETS])
        if every > 1:
            window[: SUM + 1] = [n * every for n in window[: SUM + 1]]
        reads = self.reads = sum(window[:BUCKETS])
        self.every = max(1, reads // budget)
        self.total = list(map(add, self.total, window[: SUM + 1]))
        self.count += reads
        return window


def merge(a: list[int] | None, b: list[int]) -> list[int]:
    """Two windows as one: counts and sums added, the larger maximum. A new list."""
    if a is None:
        return b
    merged = list(map(add, a, b))
    merged[MAX] = max(a[MAX], b[MAX])
    return merged


def quantile(window: list[int], q: float) -> float:
    """The ``q`` quantile (0 < q <= 1) of a non-empty window, ns."""
    counts = window[:BUCKETS]
    cumulative = list(accumulate(counts))
    rank = q * cumulative[-1]
    i = bisect_left(cumulative, rank)
    top = window[MAX]
    lower = min(BOUNDS_NS[i - 1], top) if i else 0
    upper = min(BOUNDS_NS[i], top) if i < len(BOUNDS_NS) else top
    below = cumulative[i - 1] if i else 0
    return lower + (upper - lower) * (rank - below) / counts[i]


def summary(window: list[int] | None) -> tuple[int, int, int]:
    """(p50, p99, max) in µs, rounded; ``NO_LATENCY`` for no window."""
    if window is None or not window[MAX]:
        return NO_LATENCY
    return (
        round(quantile(window, 0.5) / 1000),
        round(quantile(window, 0.99) / 1000),
        round(window[MAX] / 1000),
    )


# What the analytics history keeps of a latency: a *level*, the index of the nearest of
# LEVELS_US (0 µs, then 24 a decade, ~10 % apart: round(10 ** (k / 24)) µs, every µs up
# to 13 µs), nearest in ratio, so a stored value is within 5.1 % of ``summary``'s (1 µs
# below 20 µs). That is a fifth of what the histogram knows of a percentile: its bucket,
# 25-33 % wide, inside which ``quantile`` interpolates. The max is exact in a window (of
# the reads timed) and rounded the same in the history. Levels are small integers whose
# deltas compress far better than noisy µs (``backend.analytics``). Up to 10**12 µs (11.6
# days; longer is kept as that).
STEPS_PER_DECADE = 24
LEVELS_US: tuple[int, ...] = tuple(
    sorted({0} | {round(10 ** (k / STEPS_PER_DECADE)) for k in range(12 * STEPS_PER_DECADE + 1)})
)
# A value belongs to the lower of two neighbouring levels up to their geometric mean,
# compared squared so that it stays in integers.
_LEVEL_CUTS: tuple[int, ...] = tuple(map(mul, LEVELS_US, LEVELS_US[1:]))
_TOP_LEVEL = len(LEVELS_US) - 1


def level(us: int) -> int:
    """The level (index in ``LEVELS_US``) nearest ``us`` µs in ratio; -1 for -1 (no read)."""
    if us < 0:
        return -1
    return min(bisect_left(_LEVEL_CUTS, us * us), _TOP_LEVEL)


def rounded(us: int) -> int:
    """``us`` as the analytics history answers it: the µs of its level (-1 stays -1)."""
    return LEVELS_US[level(us)] if us >= 0 else -1


def levels(window: list[int] | None) -> tuple[int, int, int]:
    """``summary``'s (p50, p99, max) as levels; ``NO_LATENCY`` for no window."""
    if window is None or not window[MAX]:
        return NO_LATENCY
    return tuple(map(level, summary(window)))  # type: ignore[return-value]


def prometheus_buckets(total: list[int]) -> list[int]:
    """Cumulative counts at each of ``PROMETHEUS_BOUNDS_S``, then +Inf."""
    cumulative = list(accumulate(total[:BUCKETS]))
    return [cumulative[cut - 1] for cut in PROMETHEUS_CUTS] + [cumulative[-1]]
