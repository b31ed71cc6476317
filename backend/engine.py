"""The storage engine seam: what the memcache semantics need from a tenant's cache.

``protocol/commands.py`` keeps the protocol's rules (who may do what, size limits, which
refusal a client sees) and reaches a cache's contents only through ``Engine``; codecs never
hold an engine's items, only the read-only ``ItemView`` an operation returns. One engine
serves one cache on one cluster, so a session holding it can never reach another tenant.

Today's implementation is the in-process LRU in ``backend/store.py`` (``LruEngine``); every
method is synchronous, because the hot path (a single get) must not pay for a coroutine.
Another implementation (a cache served by another process) has to keep each operation
atomic, which is why the mode and CAS rules of a store, the counter rules of an arithmetic
and the recache win of a meta get are one engine call each, not sequences of them.

Expiry times are memcached's: 0 never, up to 30 days relative seconds, larger an absolute
unix time, negative (or a past absolute time) already expired.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:
    from backend.keyactivity import KeyActivity
    from backend.latency import CommandLatency
    from backend.store import CacheStats


class Outcome(enum.Enum):
    STORED = "STORED"
    NOT_STORED = "NOT_STORED"
    EXISTS = "EXISTS"
    NOT_FOUND = "NOT_FOUND"
    DELETED = "DELETED"
    TOUCHED = "TOUCHED"
    TOO_LARGE = "TOO_LARGE"
    NON_NUMERIC = "NON_NUMERIC"


class Mode(enum.Enum):
    SET = "set"
    ADD = "add"
    REPLACE = "replace"
    APPEND = "append"
    PREPEND = "prepend"
    CAS = "cas"


class ItemView(Protocol):
    """What a caller may read of a stored item; only the engine changes items.

    Valid until the caller's next engine call: codecs encode it into their reply at once.
    """

    @property
    def value(self) -> bytes: ...

    @property
    def flags(self) -> int: ...

    @property
    def cas(self) -> int: ...

    @property
    def exptime(self) -> float:
        """Absolute deadline (unix time), 0.0 for never."""
        ...

    @property
    def stale(self) -> bool:
        """Invalidated by a meta delete or an older-CAS meta set (mg reports ``X``)."""
        ...


class MetaFetch(NamedTuple):
    """An mg hit, with the facts its return flags report from *before* this fetch."""

    item: ItemView
    hit_before: bool
    idle_s: float
    won: bool
    token_before: bool


class ItemInfo(NamedTuple):
    """What ``me`` (meta debug) shows of an item, read without fetching it."""

    exptime: float
    atime: float
    cas: int
    fetched: bool
    size: int


class Usage(NamedTuple):
    """A cache's gauges: memory its items count against the plan, that limit, item count."""

    bytes: int
    limit: int
    items: int


class DumpEntry(NamedTuple):
    """One line of ``stats cachedump``."""

    key: bytes
    value_len: int
    exptime: float


class SavedItem(NamedTuple):
    """One item as a warm restart keeps it (``export`` / ``restore``): everything a client
    can observe of it, times as absolute unix times (``exptime`` 0.0 for never)."""

    key: bytes
    value: bytes
    flags: int
    exptime: float
    cas: int
    atime: float
    mtime: float
    fetched: bool
    stale: bool


class Engine(Protocol):
    """One tenant's cache. Every operation counts itself in ``stats`` as memcached would."""

    # Set while the owner's Keys view asks for it (``backend.keyactivity``); the hot path
    # pays one attribute test when it is None.
    key_activity: KeyActivity | None
    # Set by the listener at the cache's first authenticated connection
    # (``backend.latency``): its reads' latency, which analytics and /metrics read.
    latency: CommandLatency | None
    cache_id: str  # the cache it holds
    # The ``backend.changes.Changes`` epoch in which it was last queued for the analytics
    # sampler (-1: never); written on the serving loop only.
    noted: int

    @property
    def stats(self) -> CacheStats:
        """memcached's counters for this cache; the listener adds traffic bytes and the data
        plane the connection gauges, everything else is counted by the engine itself."""
        ...

    # -- reads ----------------------------------------------------------------------
    def get(self, key: bytes) -> ItemView | None:
        """A counted fetch: marks the item fetched and most recently used."""
        ...

    def get_and_touch(self, key: bytes, exptime: int) -> ItemView | None:
        """gat: a fetch that replaces the TTL, counted as a touch (as memcached does)."""
        ...

    def meta_get(
        self,
        key: bytes,
        touch: int | None,
        vivify: int | None,
        recache: int | None,
        bump: bool,
        may_win: bool,
    ) -> MetaFetch | None:
        """mg: fetch, optionally touch, create on miss (``vivify``: TTL) and hand out the
        one recache win of a stale or soon-expiring item (only when ``may_win``)."""
        ...

    def peek(self, key: bytes) -> ItemInfo | None:
        """An item's metadata without counting a fetch or moving it in the LRU."""
        ...

    # -- changes --------------------------------------------------------------------
    def touch(self, key: bytes, exptime: int) -> bool:
        """Replace the TTL; False on a miss."""
        ...

    def store(
        self,
        mode: Mode,
        key: bytes,
        value: bytes,
        flags: int,
        exptime: int,
        compare_cas: int | None = None,
        invalidate: bool = False,
        new_cas: int | None = None,
        vivify: int | None = None,
    ) -> tuple[Outcome, int]:
        """set/add/replace/append/prepend/cas, atomically; the outcome and the new CAS.

        ``compare_cas`` (any mode) makes it conditional on the item's CAS; ``invalidate``
        accepts an older CAS and marks the item stale; ``new_cas`` chooses the stored CAS;
        ``vivify`` turns an append/prepend miss into a set with that TTL. The caller has
        checked the value against the item size limit.
        """
        ...

    def refuse_too_large(self, mode: Mode, key: bytes) -> None:
        """Count a store refused for its size; a refused set drops the old value."""
        ...

    def delete(
        self,
        key: bytes,
        compare_cas: int | None = None,
        invalidate: bool = False,
        exptime: int | None = None,
        new_cas: int | None = None,
        drop_value: bool = False,
    ) -> Outcome:
        """delete; ``invalidate`` marks stale instead (new CAS, optional TTL),
        ``drop_value`` empties the item but keeps it."""
        ...

    def arith(
        self,
        key: bytes,
        incr: bool,
        delta: int,
        initial: int | None = None,
        exptime: int = 0,
        compare_cas: int | None = None,
        touch: int | None = None,
        new_cas: int | None = None,
    ) -> tuple[Outcome, int, ItemView | None]:
        """incr/decr: (outcome, new value, the item). ``initial`` creates a missing
        counter holding it; ``touch`` replaces an existing counter's TTL."""
        ...

    def flush(self, delay: int = 0) -> None:
        """Invalidate every item now, or (``delay`` seconds) those written before then."""
        ...

    def reset_stats(self) -> None:
        """``stats reset``: zero the counters, keep the gauges."""
        ...

    # -- reporting ------------------------------------------------------------------
    def usage(self) -> Usage: ...

    def oldest_access(self) -> float | None:
        """When the least recently used item was last used (``stats items`` age)."""
        ...

    def dump(self) -> Iterator[DumpEntry]:
        """Live items, most recently used first (``stats cachedump``); consume at once."""
        ...

    # -- warm restart (``backend/warm.py``) ------------------------------------------------
    def export(self) -> Iterator[SavedItem]:
        """Live items, least recently used first, so ``restore`` rebuilds the LRU order.
        Consume it while nothing else changes the engine (the service has stopped)."""
        ...

    def pending_flush(self) -> float:
        """The deadline of a delayed ``flush_all`` not yet applied, 0.0 for none."""
        ...

    def restore(self, items: Iterable[SavedItem], pending_flush: float = 0.0) -> int:
        """Add saved items as the most recently used, keeping their CAS, flags and times;
        expired ones (and, once ``pending_flush`` has passed, those it kills) are dropped,
        and the plan's limit is enforced. Returns how many were kept."""
        ...
