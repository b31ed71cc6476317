"""One cache's recent samples, and the series the Analytics graphs draw from them.

Counters arrive cumulative (as memcached reports them) and become per-second rates here,
once per sample as it arrives: a refresh brings one new sample, and recomputing ten
minutes of rates for six graphs every second was a measurable part of the dashboard's
idle CPU.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only
    from backend.api.schemas import Sample


def rate(before: Sample | None, after: Sample, counter: str) -> float | None:
    """Per-second rate of a cumulative counter between two samples; ``None`` without an
    earlier sample or when the counter went backwards (a restart or a move)."""
    if before is None:
        return None
    delta = getattr(after, counter) - getattr(before, counter)
    seconds = after.t - before.t
    return delta / seconds if seconds > 0 and delta >= 0 else None


class History:
    """The last ``keep_s`` seconds of samples, oldest first, with one column per series
    (each aligned with ``t``); appending and trimming keep them in step."""

    def __init__(self, keep_s: float) -> None:
        self.keep_s = keep_s
        self.samples: list[Sample] = []
        self.t: list[float] = []
        self.memory_used: list[float | None] = []
        self.hit_percent: list[float | None] = []
        self.gets: list[float | None] = []
        self.sets: list[float | None] = []
        self.connections: list[float | None] = []
        self.items: list[float | None] = []
        self.evictions: list[float | None] = []
        # Command latency, µs, as sampled (None: no read answered then).
        self.latency_p50: list[float | None] = []
        self.latency_p99: list[float | None] = []
        self.latency_max: list[float | None] = []

    def _columns(self) -> tuple[list, ...]:
        return (
            self.samples,
            self.t,
            self.memory_used,
            self.hit_percent,
            self.gets,
            self.sets,
            self.connections,
            self.items,
            self.evictions,
            self.latency_p50,
            self.latency_p99,
            self.latency_max,
        )

    @property
    def last(self) -> Sample | None:
        return self.samples[-1] if self.samples else None

    def replace(self, samples: Iterable[Sample]) -> None:
        for column in self._columns():
            column.clear()
        self.extend(samples)

    def extend(self, samples: Iterable[Sample]) -> None:
        """Newer samples (oldest first); the ones older than ``keep_s`` before the newest
        are dropped."""
        before = self.last
        for sample in samples:
            self.samples.append(sample)
            self.t.append(sample.t)
            self.memory_used.append(sample.memory_used)
            self.hit_percent.append(None if sample.hit_rate is None else sample.hit_rate * 100)
            self.gets.append(rate(before, sample, "cmd_get"))
            self.sets.append(rate(before, sample, "cmd_set"))
            self.connections.append(sample.curr_connections)
            self.items.append(sample.items)
            self.evictions.append(rate(before, sample, "evictions"))
            self.latency_p50.append(sample.latency_p50_us)
            self.latency_p99.append(sample.latency_p99_us)
            self.latency_max.append(sample.latency_max_us)
            before = sample
        if self.t:
            stale = bisect_right(self.t, self.t[-1] - self.keep_s)
            if stale:
                for column in self._columns():
                    del column[:stale]

    def hit_rate(self, span_s: float) -> float | None:
        """Hits / gets over the last ``span_s`` seconds, from the cumulative counters."""
        last = self.last
        if last is None:
            return None
        first = self.samples[min(bisect_left(self.t, last.t - span_s), len(self.t) - 1)]
        if first is last and len(self.samples) > 1:
            first = self.samples[-2]
        hits = last.get_hits - first.get_hits
        gets = hits + last.get_misses - first.get_misses
        if gets <= 0 or hits < 0:
            return last.hit_rate
        return hits / gets
