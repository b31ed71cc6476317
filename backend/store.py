"""Per-cache item storage: LRU order, memory limit, expiry, CAS uniques, counters.

A cache's items live in one ``CacheSpace`` inside the store of the cluster the cache is on,
so two tenants can never reach each other's keys: a session holds a reference to exactly
one space. The rules of the memcache commands (add vs. replace, CAS, incr parsing, ...) live
in ``protocol/commands.py``; this module only keeps items and the bookkeeping that any
command needs (expiry, eviction, memory accounting).
"""

from __future__ import annotations

import itertools
from collections import OrderedDict

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


class CacheStats:
    """Cumulative counters, named as in memcached's ``stats`` (plus MemCachier's extras)."""

    __slots__ = (
        "cmd_get", "cmd_set", "cmd_flush", "cmd_touch", "cmd_delete", "cmd_meta",
        "get_hits", "get_misses", "get_expired", "get_flushed",
        "delete_hits", "delete_misses", "incr_hits", "incr_misses", "decr_hits", "decr_misses",
        "cas_hits", "cas_misses", "cas_badval", "touch_hits", "touch_misses",
        "store_too_large", "store_no_memory", "auth_cmds", "auth_errors",
        "bytes_read", "bytes_written", "total_connections", "curr_connections",
        "total_items", "evictions", "reclaimed", "expired", "expired_unfetched",
        "evicted_unfetched",
    )  # fmt: skip

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def reset(self) -> None:
        """``stats reset``: zero the counters but keep gauges (connections)."""
        connections = self.curr_connections
        self.__init__()
        self.curr_connections = connections

class CacheSpace:
    """One cache's items on one cluster, in LRU order (oldest first)."""

    def __init__(self, cache_id: str, limit_bytes: int) -> None:
        self.cache_id = cache_id
        self.limit = limit_bytes
        self.items: OrderedDict[bytes, Item] = OrderedDict()
        self.bytes = 0
        self.stats = CacheStats()
        # Pending delayed flush: items modified at or before this time die when it passes.
        self.flush_at = 0.0

    # -- lookups --------------------------------------------------------------------
    def lookup(self, key: bytes, now: float, bump: bool = True) -> Item | None:
        """The live item under ``key``, reclaiming it if it expired or was flushed."""
        if self.flush_at and now >= self.flush_at:
            self._apply_delayed_flush()
        item = self.items.get(key)
        if item is None:
            return None
        exptime = item.exptime
        if exptime and exptime <= now:
            self._unlink(key, item)
            self.stats.expired += 1
            self.stats.get_expired += 1
            if not item.fetched:
                self.stats.expired_unfetched += 1
            return None
        if bump:  # inlined self.bump(): this is the hottest line of the service
            self.items.move_to_end(key)
            item.atime = now
        return item

    def bump(self, key: bytes, item: Item, now: float) -> None:
        """Mark a fetched item most recently used."""
        self.items.move_to_end(key)
        item.atime = now

    # -- changes --------------------------------------------------------------------
    def link(self, key: bytes, item: Item) -> None:
        """Store ``item`` under ``key`` (replacing any old one) and evict down to the limit."""
        old = self.items.pop(key, None)
        if old is not None:
            self.bytes -= old.size(key)
        self.items[key] = item
        self.bytes += item.size(key)
        self.stats.total_items += 1
        if self.bytes > self.limit:
            self._evict(now=item.mtime, keep=key)

    def replace_value(self, key: bytes, item: Item, value: bytes, now: float) -> None:
        """Change an item's value in place (incr/decr, append/prepend) with a new CAS."""
        self.bytes += len(value) - len(item.value)
        item.value = value
        item.cas = next_cas()
        item.mtime = now
        item.stale = False
        self.items.move_to_end(key)
        if self.bytes > self.limit:
            self._evict(now=now, keep=key)

    def unlink(self, key: bytes) -> Item | None:
        item = self.items.get(key)
        if item is not None:
            self._unlink(key, item)
        return item

    def flush(self, delay_deadline: float = 0.0) -> None:
        """Invalidate every item now, or those last modified before a future deadline."""
        if delay_deadline:
            self.flush_at = delay_deadline
            return
        self.flush_at = 0.0
        self.items.clear()
        self.bytes = 0

    # -- internals ------------------------------------------------------------------
    def _unlink(self, key: bytes, item: Item) -> None:
        del self.items[key]
        self.bytes -= item.size(key)

    def _apply_delayed_flush(self) -> None:
        deadline, self.flush_at = self.flush_at, 0.0
        doomed = [k for k, it in self.items.items() if it.mtime <= deadline]
        for key in doomed:
            self._unlink(key, self.items[key])

    def _evict(self, now: float, keep: bytes) -> None:
        """Drop least recently used items until the cache fits its plan's memory limit."""
        items = self.items
        stats = self.stats
        while self.bytes > self.limit and len(items) > 1:
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

    @property
    def curr_items(self) -> int:
        return len(self.items)


class ClusterStore:
    """All cache spaces of one cluster."""

    def __init__(self, cluster_name: str) -> None:
        self.cluster_name = cluster_name
        self.spaces: dict[str, CacheSpace] = {}

    def space(self, cache_id: str, limit_bytes: int) -> CacheSpace:
        space = self.spaces.get(cache_id)
        if space is None:
            space = self.spaces[cache_id] = CacheSpace(cache_id, limit_bytes)
        space.limit = limit_bytes
        return space

    def drop(self, cache_id: str) -> None:
        self.spaces.pop(cache_id, None)
