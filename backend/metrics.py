"""Prometheus metrics, read from live state at scrape time (nothing on the hot path).

A scrape runs on the control thread (``backend.loops``): it reads the data plane without
changing it (``DataPlane.caches_now``, ``peek_engine``; counters are plain ints), and
takes its own queue of changed engines (``Changes.reader``).

With 10 000 caches the per-cache series are 150 000 lines (8 MB), and building them
through ``prometheus_client`` objects took 1.3 s of CPU a scrape, most of it for caches
that had not changed. So ``Exposition`` keeps what it rendered: each cache's line of each
per-cache family, and each family's joined block. A scrape reads the figures of the
caches the data plane noted as changed since the last scrape (``backend.changes``: two
tuples made in C each, compared with the last ones), re-renders only the lines whose
figure changed, re-joins only the families those lines belong to, and joins the blocks.
The first scrape reads every cache. So a scrape costs O(caches changed since the last):
at 10 000 caches 0.3 ms of CPU when none changed, 3 ms when 1 % did, ~55 ms when all did;
the first, which renders every line, ~130 ms (``bench/metrics_scrape.py``).

Per-cluster series (``cachier_cluster_*``) add the caches of each cluster up, and stay
cheap with any number of caches; ``per_cache=False`` (``--metrics-per-cache off``)
serves them without the per-cache ones. Their counters are counted from the changes
this exposition sees, so they only go up: a cache deleted or moved away, or its
``stats reset``, does not make its cluster's counter go back (Prometheus would read a
drop as a counter reset and ``rate()`` would jump).

Command latency (``backend.latency``) is the histogram
``cachier_cache_command_duration_seconds`` per cache (labels ``cache`` and ``le``) and
``cachier_cluster_command_duration_seconds`` per cluster, buckets 50 µs to 1 s
(``latency.PROMETHEUS_BOUNDS_S``, exact sums of the recorder's buckets). They count the
reads analytics has taken from the serving loop (``CommandLatency.take``, every
``--sample-interval``), so a scrape sees them at most one interval late. A cache gets its
17 lines once it has answered a read since its engine started (a cache never used has
none); the cluster's only go up, as its counters do.

The text is the Prometheus text format 0.0.4, written here; names, labels and help
texts are what they were when ``prometheus_client`` wrote them (integers are now
written as integers, ``3`` rather than ``3.0``).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import compress
from operator import add, attrgetter, sub
from typing import TYPE_CHECKING

from backend.engine import Engine, Usage
from backend.latency import PROMETHEUS_BOUNDS_S, prometheus_buckets

if TYPE_CHECKING:
    from backend.control.models import Cache
    from backend.dataplane import DataPlane
    from backend.latency import CommandLatency
    from backend.monitor import Monitor
    from backend.store import CacheStats

CACHE_COUNTERS = {
    "cmd_get": "get commands (keys requested)",
    "cmd_set": "storage commands",
    "cmd_delete": "delete commands",
    "cmd_flush": "flushes",
    "cmd_touch": "touch commands",
    "get_hits": "gets that found the key",
    "get_misses": "gets that missed",
    "evictions": "items evicted for memory",
    "bytes_read": "bytes received",
    "bytes_written": "bytes sent",
    "total_connections": "connections ever opened",
}
# Gauges, in the order of a cache's figures after its counters: (name suffix, help).
CACHE_GAUGES = (
    ("connections", "open connections"),
    ("bytes", "memory used by items"),
    ("limit_bytes", "the plan's memory limit"),
    ("items", "items stored"),
)
STATES = ("up", "slow", "down")
# Every cache's figures are read at least this often, noted as changed or not (``_scan``).
FULL_SCAN_EVERY_S = 600.0
LIGHTS = ("green", "blue", "yellow", "red")

# A cache's figures, one tuple in the families' order: what one C call reads of its
# counters (CACHE_COUNTERS, then the open connections), then its ``Usage`` (bytes, limit,
# items): ``_read_stats(stats) + engine.usage()``.
_COUNTS = len(CACHE_COUNTERS)
_read_stats = attrgetter(*CACHE_COUNTERS, "curr_connections")
_FIGURES = range(_COUNTS + 1 + len(Usage._fields))


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def labels(pairs: Iterable[tuple[str, str]]) -> str:
    """``{a="x",b="y"}``, or nothing for no labels."""
    body = ",".join(f'{name}="{escape_label(value)}"' for name, value in pairs)
    return f"{{{body}}}" if body else ""


def number(value: float) -> str:
    """A sample value as Go's ParseFloat reads it: integers as integers."""
    if isinstance(value, int):
        return str(value)
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def header(name: str, kind: str, help_: str) -> str:
    return f"# HELP {name} {escape_help(help_)}\n# TYPE {name} {kind}\n"


@dataclass(frozen=True, slots=True)
class Family:
    """One metric family's name as exposed (``_total`` included for counters)."""

    name: str
    kind: str
    help: str

    def header(self) -> str:
        return header(self.name, self.kind, self.help)

    def text(self, samples: Iterable[tuple[str, float]]) -> str:
        """The family with these (label text, value) samples."""
        lines = [header(self.name, self.kind, self.help)]
        lines += [f"{self.name}{label} {number(value)}\n" for label, value in samples]
        return "".join(lines)


def _families(prefix: str) -> tuple[Family, ...]:
    """The per-cache or per-cluster families, in the order of a cache's figures."""
    counters = [Family(f"{prefix}_{n}_total", "counter", h) for n, h in CACHE_COUNTERS.items()]
    gauges = [Family(f"{prefix}_{n}", "gauge", h) for n, h in CACHE_GAUGES]
    return (*counters, *gauges)


CACHE_FAMILIES = _families("cachier_cache")
_CACHE_NAMES = tuple(family.name for family in CACHE_FAMILIES)
CLUSTER_FAMILIES = _families("cachier_cluster")
CLUSTER_CACHES = Family("cachier_cluster_caches", "gauge", "caches placed on the cluster")
LATENCY_HELP = "memcache reads answered, from the proxy's read to its write of the replies"
CACHE_LATENCY = Family("cachier_cache_command_duration_seconds", "histogram", LATENCY_HELP)
CLUSTER_LATENCY = Family("cachier_cluster_command_duration_seconds", "histogram", LATENCY_HELP)
_LE = tuple(f'le="{number(b)}"' for b in PROMETHEUS_BOUNDS_S) + ('le="+Inf"',)
_NO_LATENCY = [0] * (len(_LE) + 1)  # cumulative buckets (+Inf last), then the sum in ns


def _latency_figures(latency: CommandLatency | None) -> list[int]:
    """A recorder's histogram as exposed: cumulative buckets, then the sum (ns)."""
    if latency is None or not latency.count:
        return _NO_LATENCY
    return [*prometheus_buckets(latency.total), latency.total[-1]]


def histogram_lines(name: str, label: str, figures: Sequence[int]) -> str:
    """One histogram's ``_bucket``, ``_sum`` and ``_count`` lines; ``label`` is its
    ``{...}`` label text (or nothing)."""
    inner = label[1:-1] + "," if label else ""
    lines = [f"{name}_bucket{{{inner}{le}}} {n}\n" for le, n in zip(_LE, figures, strict=False)]
    lines.append(f"{name}_sum{label} {number(figures[-1] / 1e9)}\n")
    lines.append(f"{name}_count{label} {figures[-2]}\n")
    return "".join(lines)


class _Seen:
    """What the last scrape saw of one cache."""

    __slots__ = ("stats", "cluster", "counts", "usage", "label", "generation", "latency")

    def __init__(self, stats: CacheStats, cluster: str, label: str, generation: int) -> None:
        self.stats = stats  # identity: a new engine (a move) starts new counters
        self.cluster = cluster
        self.counts: tuple[int, ...] = ()  # as read: what the next scrape compares
        self.usage: tuple[int, ...] = ()
        self.label = label
        self.generation = generation  # the last scrape that found the cache
        self.latency: list[int] = _NO_LATENCY  # its histogram's figures (``_latency_figures``)

    @property
    def figures(self) -> tuple[int, ...]:
        return self.counts + self.usage


class _Cluster:
    """A cluster's sums: counters only go up; gauges follow its caches."""

    __slots__ = ("figures", "caches", "latency")

    def __init__(self) -> None:
        self.figures = [0] * len(_FIGURES)
        self.caches = 0
        self.latency = list(_NO_LATENCY)  # only goes up, as the counters

    def add(self, deltas: Iterable[int]) -> None:
        self.figures = list(map(add, self.figures, deltas))

    def remove(self, figures: Sequence[int]) -> None:
        """A cache left the cluster: its gauges go, what it counted stays counted."""
        sums = self.figures
        sums[_COUNTS:] = map(sub, sums[_COUNTS:], figures[_COUNTS:])
        self.caches -= 1


class Exposition:
    """The ``/metrics`` body, kept between scrapes; call it for the current text.

    Called on the control thread only; the lock keeps two scrapes from interleaving
    should one ever run elsewhere (a worker thread).
    """

    def __init__(self, dataplane: DataPlane, monitor: Monitor, per_cache: bool = True) -> None:
        self.dataplane = dataplane
        self.monitor = monitor
        self.per_cache = per_cache
        self._lock = threading.Lock()
        self._seen: dict[str, _Seen] = {}
        self._generation = 0
        self._clusters = {c.name: _Cluster() for c in dataplane.topology.clusters()}
        # Per-cache family i: cache id -> its line; and the family's joined text (None:
        # to be joined again).
        self._lines: list[dict[str, str]] = [{} for _ in CACHE_FAMILIES]
        self._blocks: list[bytes | None] = [None] * len(CACHE_FAMILIES)
        # The latency histogram: cache id -> its lines, and the family's block.
        self._latency_lines: dict[str, str] = {}
        self._latency_block: bytes | None = None
        # The engines noted as changed since the last scrape (``backend.changes``); the
        # first scrape, and one after the queue overflowed, reads every cache.
        self._changes = dataplane.changes.reader()
        self._full_scan_at = -math.inf  # when the next scrape reads every cache

    def __call__(self) -> bytes:
        """The whole exposition as one body (tests, benches; the route uses ``parts``)."""
        return b"".join(self.parts())

    def parts(self) -> list[bytes]:
        """The exposition in blocks: one per per-cache family (kept between scrapes,
        ~0.6 MB each at 10 000 caches), then the rest.

        Written one after another, never joined: one ``b"".join`` of the 8 MB body is a
        single C call (a fresh allocation and copy, 10-50 ms on a busy 2-core VM) that
        holds the GIL all along, so the serving loop could not answer a ``get`` meanwhile.
        """
        with self._lock:
            self._scan()
            parts = self._cache_blocks() if self.per_cache else []
            rest = [self._cluster_text(), self._auth_text(), self._status_text()]
            parts.append("".join(rest).encode())
            return parts

    # -- caches ---------------------------------------------------------------------------
    def _scan(self) -> None:
        """Account for and re-render the caches whose figures changed since the last
        scrape: those the data plane noted (``backend.changes``); every cache at the first
        scrape, after the queue of notes overflowed or a scrape failed, and once every
        ``FULL_SCAN_EVERY_S`` (a safety net, as analytics visits every cache once a round:
        ~14 ms at 10 000 caches)."""
        changed = self._changes.take()
        now = time.monotonic()
        try:
            if changed is None or now >= self._full_scan_at:
                self._scan_all()
                self._full_scan_at = now + FULL_SCAN_EVERY_S
            else:
                self._scan_changed(changed)
        except BaseException:
            self._full_scan_at = -math.inf  # the engines taken and not read: all, next time
            raise

    def _scan_changed(self, changed: list[Engine]) -> None:
        caches, peek, seen = self.dataplane.caches, self.dataplane.peek_engine, self._seen
        done: set[str] = set()
        for noted in changed:
            cache_id = noted.cache_id
            if cache_id in done:
                continue
            done.add(cache_id)
            cache = caches.get(cache_id)
            engine = peek(cache) if cache is not None else None
            if cache is None or engine is None:  # deleted, moved away, a move in flight
                if cache_id in seen:
                    self._gone(cache_id)
                continue
            self._read(cache, engine, seen.get(cache_id), self._generation)

    def _read(self, cache: Cache, engine: Engine, before: _Seen | None, generation: int) -> None:
        """Compare one cache's figures with what the last scrape saw of it (two tuples
        built in C); account for and re-render what changed."""
        stats = engine.stats
        counts = _read_stats(stats)
        usage = engine.usage()
        latency = engine.latency
        if (
            before is not None
            and before.stats is stats
            and before.counts == counts
            and before.usage == usage
            and (latency is None or latency.count == before.latency[-2])
        ):
            before.generation = generation
            return
        self._changed(cache, stats, counts, usage, before)
        self._latency(cache, _latency_figures(latency), before)

    def _scan_all(self) -> None:
        """Read every cache's figures; account for and re-render the ones that changed.

        Per cache: two tuples built in C (its counters, its usage) compared with the last
        scrape's; an idle cache costs that and nothing more.
        """
        dataplane, seen = self.dataplane, self._seen
        peek, seen_get = dataplane.peek_engine, seen.get
        self._generation = generation = self._generation + 1
        visited = 0
        for cache in dataplane.caches_now():  # a copy: the serving loop changes the dict
            engine = peek(cache)
            if engine is None:  # a move in flight: gone until noted again
                continue
            visited += 1
            self._read(cache, engine, seen_get(cache.id), generation)
        if len(seen) > visited:  # a cache seen before is gone (deleted, or mid-move)
            for cache_id in [i for i, s in seen.items() if s.generation != generation]:
                self._gone(cache_id)

    def _changed(
        self,
        cache: Cache,
        stats: CacheStats,
        counts: tuple[int, ...],
        usage: tuple[int, ...],
        before: _Seen | None,
    ) -> None:
        """Count the change into the cluster's sums and re-render the lines that show it."""
        figures = counts + usage
        cluster = cache.cluster
        if before is None or before.cluster != cluster or before.stats is not stats:
            # New here: a new cache, or a new engine (a move; the old one's counts stay
            # counted on its cluster, its gauges leave it).
            if before is not None:
                self._clusters[before.cluster].remove(before.figures)
            target = self._clusters.setdefault(cluster, _Cluster())
            target.add(figures)
            target.caches += 1
            label = before.label if before is not None else labels([("cache", cache.name)])
            seen = self._seen[cache.id] = _Seen(stats, cluster, label, self._generation)
            changed: Iterable[int] = _FIGURES
        else:
            deltas = list(map(sub, figures, before.figures))
            changed = compress(_FIGURES, deltas)  # the families whose line is stale
            if min(deltas[:_COUNTS]) < 0:  # a counter went back: ``stats reset``
                increase = [d if d >= 0 else f for d, f in zip(deltas, figures, strict=True)]
                self._clusters[cluster].add(increase[:_COUNTS] + deltas[_COUNTS:])
            else:
                self._clusters[cluster].add(deltas)
            seen = before
            seen.generation = self._generation
        seen.counts, seen.usage = counts, usage
        if self.per_cache:
            lines, blocks, label, names = self._lines, self._blocks, seen.label, _CACHE_NAMES
            for i in changed:
                lines[i][cache.id] = f"{names[i]}{label} {figures[i]}\n"
                blocks[i] = None

    def _latency(self, cache: Cache, figures: list[int], before: _Seen | None) -> None:
        """Count a cache's new reads into its cluster's histogram, re-render its own. A
        new engine (``before`` of another engine: ``_changed`` has replaced it) starts
        from zero; what the old one counted stays counted on its cluster."""
        seen = self._seen[cache.id]
        previous = seen.latency if seen is before else _NO_LATENCY
        if figures == previous:
            return
        target = self._clusters[seen.cluster]
        target.latency = list(map(add, target.latency, map(sub, figures, previous)))
        seen.latency = figures
        if self.per_cache:
            self._latency_lines[cache.id] = histogram_lines(CACHE_LATENCY.name, seen.label, figures)
            self._latency_block = None

    def _gone(self, cache_id: str) -> None:
        before = self._seen.pop(cache_id)
        self._clusters[before.cluster].remove(before.figures)
        for i, lines in enumerate(self._lines):
            if lines.pop(cache_id, None) is not None:
                self._blocks[i] = None
        if self._latency_lines.pop(cache_id, None) is not None:
            self._latency_block = None

    def _cache_blocks(self) -> list[bytes]:
        blocks = self._blocks
        for i, family in enumerate(CACHE_FAMILIES):
            if blocks[i] is None:
                head = header(family.name, family.kind, family.help)
                blocks[i] = (head + "".join(self._lines[i].values())).encode()
        if self._latency_block is None:
            lines = self._latency_lines.values()
            self._latency_block = (CACHE_LATENCY.header() + "".join(lines)).encode()
        return [*(block for block in blocks if block is not None), self._latency_block]

    def _cluster_text(self) -> str:
        clusters = self._clusters
        texts = [
            family.text((labels([("cluster", name)]), c.figures[i]) for name, c in clusters.items())
            for i, family in enumerate(CLUSTER_FAMILIES)
        ]
        texts.append(
            CLUSTER_CACHES.text((labels([("cluster", n)]), c.caches) for n, c in clusters.items())
        )
        texts.append(CLUSTER_LATENCY.header())
        texts += (
            histogram_lines(CLUSTER_LATENCY.name, labels([("cluster", n)]), c.latency)
            for n, c in clusters.items()
        )
        return "".join(texts)

    # -- the rest: a handful of series ------------------------------------------------------
    def _auth_text(self) -> str:
        throttle = self.dataplane.throttle
        failures = Family("cachier_auth_failures_total", "counter", "failed memcache logins")
        refused = Family(
            "cachier_auth_throttled_total",
            "counter",
            "logins refused unchecked by brute-force protection, by the limit that refused them",
        )
        trusted = Family(
            "cachier_auth_trusted_logins_total",
            "counter",
            "logins let through a full limit because their address "
            "had logged in with that username",
        )
        return "".join(
            (
                failures.text([("", throttle.total_failures)]),
                refused.text(
                    [
                        (labels([("scope", "address")]), throttle.refused_by_address),
                        (labels([("scope", "username")]), throttle.refused_by_username),
                    ]
                ),
                trusted.text([("", throttle.trusted_logins)]),
            )
        )

    def _status_text(self) -> str:
        monitor = self.monitor
        latency: list[tuple[str, float]] = []
        state: list[tuple[str, float]] = []
        light: list[tuple[str, float]] = []
        for health in list(monitor.health.values()):
            pairs = [("proxy", health.proxy.hostname), ("cluster", health.proxy.cluster.name)]
            if health.latency_ms is not None:
                latency.append((labels(pairs), health.latency_ms / 1000))
            for name in STATES:
                state.append((labels([*pairs, ("state", name)]), int(health.state == name)))
        for name, status in list(monitor.clusters.items()):
            for colour in LIGHTS:
                pairs = [("cluster", name), ("light", colour)]
                light.append((labels(pairs), int(status.light == colour)))
        return "".join(
            (
                Family(
                    "cachier_proxy_probe_latency_seconds", "gauge", "latest probe round trip"
                ).text(latency),
                Family("cachier_proxy_state", "gauge", "1 for the proxy's current state").text(
                    state
                ),
                Family("cachier_cluster_light", "gauge", "1 for the cluster's current light").text(
                    light
                ),
            )
        )
