"""Hot keys and key prefixes of one cache, sampled on the hot path only while its owner
looks at them.

memcached offers ``lru_crawler metadump`` (every key, no counts) and ``stats detail dump``
(per-prefix counts, once switched on); Redis ``--hotkeys`` scans everything. Here a cache's
engine carries a ``KeyActivity`` only while the owner's Keys view asks for it (each ask
renews it for ``TRACK_FOR_S``); otherwise the hot path pays one attribute test. While on,
one command in ``SAMPLE_EVERY`` is counted into two bounded space-saving sketches
(Metwally et al.): the ``KEYS`` most frequent keys and the ``PREFIXES`` most frequent
prefixes, plus the largest values written. Memory is bounded whatever the traffic:
about ``KEYS + PREFIXES + LARGEST`` small entries per tracked cache.

Everything here is changed on the serving loop only. The control thread reads reports
(``report``) through atomic copies (``dict.copy``), as ``backend.dataplane`` describes.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass

SAMPLE_EVERY = 8  # one command in this many is counted; counts are scaled back up
KEYS = 64  # space-saving capacity for keys (up to twice as many kept between evictions)
PREFIXES = 32  # ... and for key prefixes
LARGEST = 10  # largest values written, kept by size
WINDOW_S = 60.0  # "the last minute": the current window and the one before it
TRACK_FOR_S = 300.0  # tracking stops this long after the owner last asked
SEPARATOR = b":"  # a key's prefix is what precedes its first separator

# Sketch entry fields (lists, updated in place): the space-saving weight and its error
# bound first, then what is counted.
WEIGHT, ERROR, GETS, HITS, SETS, DELETES, BYTES = range(7)


class SpaceSaving:
    """The heaviest keys of a stream, space-saving style (Metwally, Agrawal, El Abbadi
    2005) with evictions in batches: up to ``2 * capacity`` entries are kept; on overflow
    the lighter half goes at once (one sort per ``capacity`` new keys instead of a scan
    per new key) and ``floor`` rises to the heaviest weight evicted. A key that arrives
    (again) starts at ``floor`` with ``floor`` as its error bound, so for every kept key
    ``weight - error <= true count <= weight``."""

    __slots__ = ("capacity", "entries", "floor")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.entries: dict[bytes, list[int]] = {}
        self.floor = 0

    def entry(self, key: bytes) -> list[int]:
        entries = self.entries
        found = entries.get(key)
        if found is not None:
            found[WEIGHT] += 1
            return found
        if len(entries) >= 2 * self.capacity:
            self._prune()
        floor = self.floor
        fresh = [floor + 1, floor, 0, 0, 0, 0, 0]
        entries[key] = fresh
        return fresh

    def _prune(self) -> None:
        ranked = sorted(self.entries.items(), key=_weight, reverse=True)
        kept, evicted = ranked[: self.capacity], ranked[self.capacity :]
        self.floor = max(self.floor, evicted[0][1][WEIGHT])
        self.entries = dict(kept)


def _weight(item: tuple[bytes, list[int]]) -> int:
    return item[1][WEIGHT]


class _Window:
    __slots__ = ("started", "keys", "prefixes")

    def __init__(self, started: float) -> None:
        self.started = started
        self.keys = SpaceSaving(KEYS)
        self.prefixes = SpaceSaving(PREFIXES)


@dataclass(frozen=True)
class KeyCount:
    key: bytes
    gets: int
    hits: int
    sets: int
    deletes: int
    bytes: int  # value bytes written (sets)
    error: int  # the count may be over by at most this much (space-saving bound)


@dataclass(frozen=True)
class KeyReport:
    """What the owner's Keys view shows; counts are estimates (sampled, scaled)."""

    tracking_for_s: float
    window_s: float
    sample_every: int
    keys: list[KeyCount]
    prefixes: list[KeyCount]
    largest: list[tuple[bytes, int]]  # key, value size; largest first


class KeyActivity:
    """One cache's sampled key activity (see the module docstring)."""

    __slots__ = ("_countdown", "started", "asked", "current", "previous", "largest", "separator")

    def __init__(self, now: float, separator: bytes = SEPARATOR) -> None:
        self._countdown = SAMPLE_EVERY
        self.started = self.asked = now
        self.current = _Window(now)
        self.previous: _Window | None = None
        self.largest: dict[bytes, int] = {}
        self.separator = separator

    def expired(self, now: float) -> bool:
        return now - self.asked > TRACK_FOR_S

    # -- the hot path: each returns at once for all but one command in SAMPLE_EVERY --------
    def _window(self) -> _Window:
        """The window a sampled command counts in (a new one each ``WINDOW_S``)."""
        self._countdown = SAMPLE_EVERY
        window = self.current
        now = time.monotonic()
        if now - window.started >= WINDOW_S:
            self.previous, window = window, _Window(now)
            self.current = window
        return window

    def get(self, key: bytes, hit: bool) -> None:
        self._countdown -= 1
        if self._countdown:
            return
        window = self._window()
        for entry in (window.keys.entry(key), window.prefixes.entry(self._prefix(key))):
            entry[GETS] += 1
            entry[HITS] += hit

    def set(self, key: bytes, size: int) -> None:
        self._countdown -= 1
        if self._countdown:
            return
        window = self._window()
        for entry in (window.keys.entry(key), window.prefixes.entry(self._prefix(key))):
            entry[SETS] += 1
            entry[BYTES] += size
        largest = self.largest
        if len(largest) < LARGEST or size > min(largest.values()):
            largest[key] = size
            if len(largest) > 2 * LARGEST:  # trimmed in bulk: rare, bounded
                self.largest = dict(heapq.nlargest(LARGEST, largest.items(), key=_size))

    def delete(self, key: bytes) -> None:
        self._countdown -= 1
        if self._countdown:
            return
        window = self._window()
        for entry in (window.keys.entry(key), window.prefixes.entry(self._prefix(key))):
            entry[DELETES] += 1

    def _prefix(self, key: bytes) -> bytes:
        head, found, _ = key.partition(self.separator)
        return head + found if found else b""  # b"": keys without a prefix

    # -- reading, from the control thread ----------------------------------------------------
    def report(self, now: float, top: int = 20) -> KeyReport:
        windows = [w for w in (self.previous, self.current) if w is not None]
        started = windows[0].started
        return KeyReport(
            tracking_for_s=now - self.started,
            window_s=now - started,
            sample_every=SAMPLE_EVERY,
            keys=_merged([w.keys.entries.copy() for w in windows], top),
            prefixes=_merged([w.prefixes.entries.copy() for w in windows], top),
            largest=heapq.nlargest(LARGEST, self.largest.copy().items(), key=_size),
        )


def _size(item: tuple[bytes, int]) -> int:
    return item[1]


def _merged(sketches: list[dict[bytes, list[int]]], top: int) -> list[KeyCount]:
    """The windows' sketches summed per key, heaviest first, scaled to estimates."""
    totals: dict[bytes, list[int]] = {}
    for entries in sketches:
        for key, entry in entries.items():
            total = totals.setdefault(key, [0] * 7)
            for i, value in enumerate(list(entry)):
                total[i] += value
    heaviest = sorted(totals.items(), key=lambda kv: kv[1][WEIGHT], reverse=True)[:top]
    scale = SAMPLE_EVERY
    return [
        KeyCount(
            key,
            e[GETS] * scale,
            e[HITS] * scale,
            e[SETS] * scale,
            e[DELETES] * scale,
            e[BYTES] * scale,
            e[ERROR] * scale,
        )
        for key, e in heaviest
    ]
