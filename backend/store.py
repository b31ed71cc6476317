"""The in-process storage engine: per-cache LRU order, memory limit, expiry, CAS, counters.

A cache's items live in one ``LruEngine`` inside the store of the cluster the cache is on,
so two tenants can never reach each other's keys: a session holds exactly one engine.
``LruEngine`` implements ``backend.engine.Engine``; ``Item`` and the LRU order are private
to this module (callers get items as read-only ``ItemView``). Who may run a command and
how each protocol answers it stay in ``protocol/commands.py`` and the codecs.
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

from backend.engine import DumpEntry, ItemInfo, MetaFetch, Mode, Outcome, SavedItem, Usage

if TYPE_CHECKING:
    from backend.engine import Engine
    from backend.keyactivity import KeyActivity
    from backend.latency import CommandLatency

# Items larger than this (key + value + per-item overhead) are refused, as memcached's
# default -I 1m does and as MemCachier documents ("1 MB for key + value").
MAX_ITEM_SIZE = 1024 * 1024
# memcached's item header (48-56 bytes): counted against MAX_ITEM_SIZE, as memcached does.
ITEM_OVERHEAD = 50
# What an item really costs here beyond its key and value, counted against the plan's
# memory limit: the Item object, three timestamps, its CAS number, the two bytes objects'
# headers and the ordered dict's entry come to 390-590 bytes of RSS per small item in a
# full, evicting cache (bench/memory_per_plan.py). Counting 400 keeps a full cache under
# 1.5x its plan at any value size; memcached's 50 let a free cache of 10-byte values take 7x.
ITEM_MEMORY_OVERHEAD = 400
# Expiry values up to 30 days are relative seconds; above, absolute unix time.
RELATIVE_EXPIRY_LIMIT = 60 * 60 * 24 * 30

_cas_counter = itertools.count(1)
next_cas = _cas_counter.__next__


def cas_watermark() -> int:
    """A CAS value above every one handed out so far (it uses one up): what a warm restart
    saves, so the next process never hands out an old CAS again."""
    return next_cas() + 1


def advance_cas(at_least: int) -> None:
    """Make every future CAS at least ``at_least`` (a loaded snapshot's watermark)."""
    global _cas_counter, next_cas
    start = max(next_cas(), at_least)
    _cas_counter = itertools.count(start)
    next_cas = _cas_counter.__next__


UINT64 = (1 << 64) - 1
_new_tuple = tuple.__new__


def too_large(key: bytes, value_len: int) -> bool:
    """Over memcached's item size limit (key, value and item header)."""
    return len(key) + value_len + ITEM_OVERHEAD > MAX_ITEM_SIZE


def parse_counter(value: bytes) -> int | None:
    """memcached's rule: optional leading spaces, decimal digits of a u64, then the end."""
    digits = value.strip(b" ")
    if not digits or len(digits) > 20 or not digits.isdigit():
        return None
    number = int(digits)
    return number if number <= UINT64 else None


def expiry_deadline(exptime: int, now: float) -> float:
    """Translate a protocol exptime into an absolute deadline (0 = never, -1 = already gone)."""
    if exptime == 0:
        return 0.0
    if exptime < 0:
        return -1.0
    if exptime > RELATIVE_EXPIRY_LIMIT:
        return float(exptime) if exptime > now else -1.0
    return now + exptime


class Item:
    """One stored value. ``exptime`` is an absolute deadline, 0 for never."""

    # ``stale`` and ``token`` serve the meta protocol's invalidation and recache-win flags.
    __slots__ = ("value", "flags", "exptime", "cas", "mtime", "atime", "fetched", "stale", "token")

    def __init__(self, value: bytes, flags: int, exptime: float, now: float) -> None:
        self.value = value
        self.flags = flags
        self.exptime = exptime
        self.cas = next_cas()
        self.mtime = now
        self.atime = now
        self.fetched = False
        self.stale = False
        self.token = False

    def size(self, key: bytes) -> int:
        """What the item counts against its cache's memory limit."""
        return len(key) + len(self.value) + ITEM_MEMORY_OVERHEAD


@dataclass(slots=True, eq=False)  # identity matters: analytics spots a new engine by it
class CacheStats:
    """Cumulative counters, named as in memcached's ``stats`` (plus MemCachier's extras).

    A slotted dataclass: attribute increments on the hot path stay as cheap as before, and
    every counter is a typed field.
    """

    cmd_get: int = 0
    cmd_set: int = 0
    cmd_flush: int = 0
    cmd_touch: int = 0
    cmd_delete: int = 0
    cmd_meta: int = 0
    get_hits: int = 0
    get_misses: int = 0
    get_expired: int = 0
    get_flushed: int = 0
    delete_hits: int = 0
    delete_misses: int = 0
    incr_hits: int = 0
    incr_misses: int = 0
    decr_hits: int = 0
    decr_misses: int = 0
    cas_hits: int = 0
    cas_misses: int = 0
    cas_badval: int = 0
    touch_hits: int = 0
    touch_misses: int = 0
    store_too_large: int = 0
    store_no_memory: int = 0
    auth_cmds: int = 0
    auth_errors: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    total_connections: int = 0
    curr_connections: int = 0
    total_items: int = 0
    evictions: int = 0
    reclaimed: int = 0
    expired: int = 0
    expired_unfetched: int = 0
    evicted_unfetched: int = 0
    # Commands refused for a missing capability (``CapabilityDenied``), counted by the
    # codec that answers the refusal; not a memcached stat (``stats`` does not show it),
    # read by the alerts (``backend.alerts``: refused commands per minute).
    cmd_refused: int = 0

    def reset(self) -> None:
        """``stats reset``: zero the counters but keep gauges (connections)."""
        connections = self.curr_connections
        for field in fields(self):
            setattr(self, field.name, 0)
        self.curr_connections = connections


class LruEngine:
    """One cache's items on one cluster, in LRU order (oldest first): the ``Engine`` of the
    in-process store. Item changes happen here only, so the LRU order, the memory count
    and the counters cannot drift apart."""

    def __init__(self, cache_id: str, limit_bytes: int) -> None:
        self.cache_id = cache_id
        self.limit = limit_bytes
        self._items: OrderedDict[bytes, Item] = OrderedDict()
        self._bytes = 0
        self.stats = CacheStats()
        self.key_activity: KeyActivity | None = None  # the owner's Keys view samples
        self.latency: CommandLatency | None = None  # from its first authenticated connection
        self.noted = -1  # the ``Changes`` epoch it was last queued in for the sampler
        # Pending delayed flush: items modified at or before this time die when it passes.
        self._flush_at = 0.0

    # -- reads ----------------------------------------------------------------------
    def get(self, key: bytes) -> Item | None:
        # The hottest function of the service: _lookup and bump inlined.
        stats = self.stats
        stats.cmd_get += 1
        now = time.time()
        if self._flush_at and now >= self._flush_at:
            self._apply_delayed_flush()
        item = self._items.get(key)
        if item is not None:
            exptime = item.exptime
            if not exptime or exptime > now:
                self._items.move_to_end(key)
                item.atime = now
                item.fetched = True
                stats.get_hits += 1
                return item
            self._expire(key, item)
        stats.get_misses += 1
        return None

    def get_and_touch(self, key: bytes, exptime: int) -> Item | None:
        stats = self.stats
        stats.cmd_touch += 1
        now = time.time()
        item = self._lookup(key, now)
        if item is None:
            stats.touch_misses += 1
            return None
        stats.touch_hits += 1
        item.fetched = True
        self._set_expiry(key, item, exptime, now)
        return item

    def meta_get(
        self,
        key: bytes,
        touch: int | None,
        vivify: int | None,
        recache: int | None,
        bump: bool,
        may_win: bool,
    ) -> MetaFetch | None:
        stats = self.stats
        stats.cmd_get += 1
        if touch is not None:
            stats.cmd_touch += 1
        now = time.time()
        item = self._lookup(key, now, bump=False)
        if item is None:
            stats.get_misses += 1
            if touch is not None:
                stats.touch_misses += 1
            if vivify is None:
                return None
            deadline = expiry_deadline(vivify, now)
            item = Item(b"", 0, max(deadline, 0.0), now)
            if deadline >= 0:
                self._link(key, item)
            item.token = True
            return MetaFetch(item, False, 0.0, True, False)
        stats.get_hits += 1
        stored = True
        if touch is not None:
            stats.touch_hits += 1
            stored = self._set_expiry(key, item, touch, now)
        token_before = item.token
        won = (
            not token_before
            and may_win
            and bool(
                item.stale
                or (recache is not None and item.exptime and item.exptime - now < recache)
            )
        )
        if won:
            item.token = True
        fetch = MetaFetch(item, item.fetched, now - item.atime, won, token_before)
        item.fetched = True
        if bump and stored:  # a touch into the past has just removed it: nothing to bump
            self._items.move_to_end(key)
            item.atime = now
        return fetch

    def peek(self, key: bytes) -> ItemInfo | None:
        item = self._lookup(key, time.time(), bump=False)
        if item is None:
            return None
        return ItemInfo(item.exptime, item.atime, item.cas, item.fetched, item.size(key))

    # -- changes --------------------------------------------------------------------
    def touch(self, key: bytes, exptime: int) -> bool:
        stats = self.stats
        stats.cmd_touch += 1
        now = time.time()
        item = self._lookup(key, now)
        if item is None:
            stats.touch_misses += 1
            return False
        stats.touch_hits += 1
        self._set_expiry(key, item, exptime, now)
        return True

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
        stats = self.stats
        stats.cmd_set += 1
        now = time.time()
        old = self._lookup(key, now, bump=False)

        stale = False
        if mode is Mode.CAS or compare_cas is not None:
            if old is None:
                if mode is Mode.CAS:
                    stats.cas_misses += 1
                return Outcome.NOT_FOUND, 0
            if old.cas != compare_cas:
                if not (invalidate and compare_cas is not None and compare_cas < old.cas):
                    if mode is Mode.CAS:
                        stats.cas_badval += 1
                    return Outcome.EXISTS, 0
                stale = True  # an older CAS with invalidation: stored, but marked stale
            if mode is Mode.CAS:
                stats.cas_hits += 1
        if mode is Mode.ADD:
            if old is not None:
                self._items.move_to_end(key)  # memcached bumps the existing item
                return Outcome.NOT_STORED, 0
        elif mode is Mode.REPLACE:
            if old is None:
                return Outcome.NOT_STORED, 0
        elif mode is Mode.APPEND or mode is Mode.PREPEND:
            if old is None:
                if vivify is None:
                    return Outcome.NOT_STORED, 0
                exptime = vivify
            else:
                joined = old.value + value if mode is Mode.APPEND else value + old.value
                if too_large(key, len(joined)):
                    stats.store_too_large += 1
                    return Outcome.TOO_LARGE, 0
                self._replace_value(key, old, joined, now)
                if new_cas is not None:
                    old.cas = new_cas
                return Outcome.STORED, old.cas

        deadline = expiry_deadline(exptime, now)
        if deadline < 0:
            # Stored already expired: the observable effect is that the key is gone.
            self._unlink_key(key)
            return Outcome.STORED, next_cas()
        item = Item(value, flags, deadline, now)
        if new_cas is not None:
            item.cas = new_cas
        item.stale = stale
        self._link(key, item)
        return Outcome.STORED, item.cas

    def refuse_too_large(self, mode: Mode, key: bytes) -> None:
        self.stats.cmd_set += 1
        self.stats.store_too_large += 1
        if mode is Mode.SET:
            self._unlink_key(key)  # as memcached: never leave a stale value behind a failed set

    def delete(
        self,
        key: bytes,
        compare_cas: int | None = None,
        invalidate: bool = False,
        exptime: int | None = None,
        new_cas: int | None = None,
        drop_value: bool = False,
    ) -> Outcome:
        stats = self.stats
        stats.cmd_delete += 1
        now = time.time()
        item = self._lookup(key, now, bump=False)
        if item is None:
            stats.delete_misses += 1
            return Outcome.NOT_FOUND
        if compare_cas is not None and item.cas != compare_cas:
            return Outcome.EXISTS
        stats.delete_hits += 1
        if invalidate or drop_value:
            if drop_value:
                self._replace_value(key, item, b"", now)
                item.flags = 0
            if invalidate:
                item.stale = True
                item.token = False
                item.cas = next_cas()
                if exptime is not None:
                    self._set_expiry(key, item, exptime, now)
            if new_cas is not None:
                item.cas = new_cas
            return Outcome.DELETED
        self._unlink(key, item)
        return Outcome.DELETED

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
    ) -> tuple[Outcome, int, Item | None]:
        """incr wraps at 2**64 and decr stops at 0. A created counter answers ``initial``,
        not ``initial + delta``, as in memcached."""
        stats = self.stats
        now = time.time()
        item = self._lookup(key, now)
        if item is None:
            if incr:
                stats.incr_misses += 1
            else:
                stats.decr_misses += 1
            if initial is None:
                return Outcome.NOT_FOUND, 0, None
            deadline = expiry_deadline(exptime, now)
            created = Item(b"%d" % initial, 0, max(deadline, 0.0), now)
            if new_cas is not None:
                created.cas = new_cas
            if deadline >= 0:
                self._link(key, created)
            return Outcome.STORED, initial, created
        if compare_cas is not None and item.cas != compare_cas:
            return Outcome.EXISTS, 0, None
        current = parse_counter(item.value)
        if current is None:
            return Outcome.NON_NUMERIC, 0, None
        if incr:
            stats.incr_hits += 1
            result = (current + delta) & UINT64
        else:
            stats.decr_hits += 1
            result = max(current - delta, 0)
        digits = b"%d" % result
        if len(digits) < len(item.value):
            # As memcached: a shorter result is written in place, padded with spaces to the
            # old length ("100" decremented by 1 reads back as "99 "); clients see the same.
            digits = digits.ljust(len(item.value))
        self._replace_value(key, item, digits, now)
        if new_cas is not None:
            item.cas = new_cas
        if touch is not None:
            self._set_expiry(key, item, touch, now)
        return Outcome.STORED, result, item

    def flush(self, delay: int = 0) -> None:
        """Everything now, or (a positive ``delay``) what was last modified before then."""
        if delay > 0:
            deadline = expiry_deadline(delay, time.time())
            if deadline > 0:
                self._flush_at = deadline
                return
        self._flush_at = 0.0
        self._items.clear()
        self._bytes = 0

    def reset_stats(self) -> None:
        self.stats.reset()

    # -- reporting ------------------------------------------------------------------
    def usage(self) -> Usage:
        # tuple.__new__ straight away, not Usage(...): its generated __new__ is a Python
        # frame, and analytics reads every cache's usage each second (a third less time).
        return _new_tuple(Usage, (self._bytes, self.limit, len(self._items)))

    def oldest_access(self) -> float | None:
        items = self._items
        return next(iter(items.values())).atime if items else None

    def dump(self) -> Iterator[DumpEntry]:
        now = time.time()
        for key, item in reversed(self._items.items()):
            if item.exptime and item.exptime <= now:
                continue  # expired but not yet reclaimed: not an item any more
            yield DumpEntry(key, len(item.value), item.exptime)

    # -- warm restart -----------------------------------------------------------------
    def export(self) -> Iterator[SavedItem]:
        now = time.time()
        for key, item in self._items.items():
            exptime = item.exptime
            if exptime and exptime <= now:
                continue
            yield SavedItem(
                key,
                item.value,
                item.flags,
                exptime,
                item.cas,
                item.atime,
                item.mtime,
                item.fetched,
                item.stale,
            )

    def pending_flush(self) -> float:
        return self._flush_at

    def restore(self, items: Iterable[SavedItem], pending_flush: float = 0.0) -> int:
        now = time.time()
        if pending_flush > now:
            self._flush_at = max(self._flush_at, pending_flush)
            pending_flush = 0.0  # not due yet: the engine applies it when it is
        table = self._items
        added = size = 0
        key = b""
        new_item = Item.__new__  # not Item(): its __init__ would hand out a new CAS
        for saved in items:
            key, value, flags, exptime, cas, atime, mtime, fetched, stale = saved
            if (exptime and exptime <= now) or mtime <= pending_flush:
                continue
            item = new_item(Item)
            item.value, item.flags, item.exptime, item.cas = value, flags, exptime, cas
            item.mtime, item.atime, item.fetched, item.stale, item.token = (
                mtime,
                atime,
                fetched,
                stale,
                False,
            )
            old = table.pop(key, None)
            if old is not None:
                self._bytes -= old.size(key)
            table[key] = item
            size += len(key) + len(value) + ITEM_MEMORY_OVERHEAD  # item.size(key)
            added += 1
        self._bytes += size
        if self._bytes > self.limit:  # a smaller plan now, or a bigger overhead: oldest go
            self._evict(now=now, keep=key)
        return added

    # -- internals ------------------------------------------------------------------
    def _lookup(self, key: bytes, now: float, bump: bool = True) -> Item | None:
        """The live item under ``key``, reclaiming it if it expired or was flushed."""
        if self._flush_at and now >= self._flush_at:
            self._apply_delayed_flush()
        item = self._items.get(key)
        if item is None:
            return None
        exptime = item.exptime
        if exptime and exptime <= now:
            self._expire(key, item)
            return None
        if bump:
            self._items.move_to_end(key)
            item.atime = now
        return item

    def _expire(self, key: bytes, item: Item) -> None:
        self._unlink(key, item)
        stats = self.stats
        stats.expired += 1
        stats.get_expired += 1
        if not item.fetched:
            stats.expired_unfetched += 1

    def _set_expiry(self, key: bytes, item: Item, exptime: int, now: float) -> bool:
        """Give ``item`` a new expiry; False when that expired it (it is no longer stored)."""
        deadline = expiry_deadline(exptime, now)
        if deadline < 0:
            # An exptime in the past expires the item now; the caller still sees this hit.
            self._unlink_key(key)
            return False
        item.exptime = deadline
        return True

    def _link(self, key: bytes, item: Item) -> None:
        """Store ``item`` under ``key`` (replacing any old one) and evict down to the limit."""
        old = self._items.pop(key, None)
        if old is not None:
            self._bytes -= old.size(key)
        self._items[key] = item
        self._bytes += item.size(key)
        self.stats.total_items += 1
        if self._bytes > self.limit:
            self._evict(now=item.mtime, keep=key)

    def _replace_value(self, key: bytes, item: Item, value: bytes, now: float) -> None:
        """Change an item's value in place (incr/decr, append/prepend) with a new CAS."""
        self._bytes += len(value) - len(item.value)
        item.value = value
        item.cas = next_cas()
        item.mtime = now
        item.stale = False
        self._items.move_to_end(key)
        if self._bytes > self.limit:
            self._evict(now=now, keep=key)

    def _unlink_key(self, key: bytes) -> None:
        item = self._items.get(key)
        if item is not None:
            self._unlink(key, item)

    def _unlink(self, key: bytes, item: Item) -> None:
        del self._items[key]
        self._bytes -= item.size(key)

    def _apply_delayed_flush(self) -> None:
        deadline, self._flush_at = self._flush_at, 0.0
        doomed = [k for k, it in self._items.items() if it.mtime <= deadline]
        for key in doomed:
            self._unlink(key, self._items[key])

    def _evict(self, now: float, keep: bytes) -> None:
        """Drop least recently used items until the cache fits its plan's memory limit."""
        items = self._items
        stats = self.stats
        while self._bytes > self.limit and len(items) > 1:
            key, item = next(iter(items.items()))
            if key == keep:  # never evict what is being stored; it is the newest anyway
                items.move_to_end(key)
                continue
            self._unlink(key, item)
            if item.exptime and item.exptime <= now:
                stats.reclaimed += 1
            else:
                stats.evictions += 1
                if not item.fetched:
                    stats.evicted_unfetched += 1


class ClusterStore:
    """All cache spaces of one cluster."""

    def __init__(self, cluster_name: str) -> None:
        self.cluster_name = cluster_name
        self.engines: dict[str, LruEngine] = {}

    def engine(self, cache_id: str, limit_bytes: int) -> LruEngine:
        """The cache's engine, created on first use; its limit follows the plan's."""
        engine = self.engines.get(cache_id)
        if engine is None:
            engine = self.engines[cache_id] = LruEngine(cache_id, limit_bytes)
        engine.limit = limit_bytes
        return engine

    def drop(self, cache_id: str) -> None:
        self.engines.pop(cache_id, None)


if TYPE_CHECKING:

    def _is_an_engine(engine: LruEngine) -> Engine:
        return engine  # mypy checks here that LruEngine implements the Engine protocol
