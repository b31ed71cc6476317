"""Protocol-neutral memcache command semantics: the ONE place for the rules.

Codecs (ASCII, meta, binary) parse bytes and call these functions; they only translate the
outcomes back into their own encoding. Capability checks live here too, so no codec can
forget one: every mutating function calls ``_require_write`` before it touches anything.
"""

from __future__ import annotations

import enum
import time
from typing import TYPE_CHECKING

from backend.store import ITEM_OVERHEAD, MAX_ITEM_SIZE, CacheSpace, Item, expiry_deadline, next_cas

if TYPE_CHECKING:
    from backend.session import Session

UINT64 = (1 << 64) - 1


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


class CapabilityDenied(Exception):
    """The session's credential lacks a capability; nothing was changed."""

    def __init__(self, capability: str) -> None:
        super().__init__(capability)
        self.capability = capability


def _require_write(session: Session) -> None:
    if not session.credential.write:
        raise CapabilityDenied("write")


def too_large(key: bytes, value_len: int) -> bool:
    return len(key) + value_len + ITEM_OVERHEAD > MAX_ITEM_SIZE


# -- retrieval ----------------------------------------------------------------------------
def get(session: Session, key: bytes) -> Item | None:
    space = session.space
    stats = space.stats
    stats.cmd_get += 1
    item = space.lookup(key, time.time())
    if item is None:
        stats.get_misses += 1
        return None
    stats.get_hits += 1
    item.fetched = True
    return item


def get_and_touch(session: Session, key: bytes, exptime: int) -> Item | None:
    """gat/gats: fetch and replace the TTL (counted as a touch, as memcached does)."""
    _require_write(session)
    space = session.space
    stats = space.stats
    stats.cmd_touch += 1
    now = time.time()
    item = space.lookup(key, now)
    if item is None:
        stats.touch_misses += 1
        return None
    stats.touch_hits += 1
    item.fetched = True
    _set_expiry(space, key, item, exptime, now)
    return item


def touch(session: Session, key: bytes, exptime: int) -> Outcome:
    _require_write(session)
    space = session.space
    space.stats.cmd_touch += 1
    now = time.time()
    item = space.lookup(key, now)
    if item is None:
        space.stats.touch_misses += 1
        return Outcome.NOT_FOUND
    space.stats.touch_hits += 1
    _set_expiry(space, key, item, exptime, now)
    return Outcome.TOUCHED


def _set_expiry(space: CacheSpace, key: bytes, item: Item, exptime: int, now: float) -> bool:
    """Give ``item`` a new expiry; False when that expired it (it is no longer stored)."""
    deadline = expiry_deadline(exptime, now)
    if deadline < 0:
        # An exptime in the past expires the item now; the caller still sees this hit.
        space.unlink(key)
        return False
    item.exptime = deadline
    return True


# -- storage ------------------------------------------------------------------------------
def store(
    session: Session,
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
    """set/add/replace/append/prepend/cas. Returns the outcome and the new item's CAS.

    ``compare_cas`` (any mode) makes the store conditional on the item's CAS unique, as a
    binary request with a non-zero CAS does; ASCII ``cas`` always compares, even with 0.
    Meta extras: ``invalidate`` accepts an older CAS and marks the item stale, ``new_cas``
    sets the stored item's CAS, ``vivify`` turns an append/prepend miss into a set with
    that TTL.
    """
    if too_large(key, len(value)):
        refuse_too_large(session, mode, key)
        return Outcome.TOO_LARGE, 0
    _require_write(session)
    space = session.space
    stats = space.stats
    stats.cmd_set += 1
    now = time.time()
    old = space.lookup(key, now, bump=False)

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
            space.items.move_to_end(key)  # memcached bumps the existing item
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
            space.replace_value(key, old, joined, now)
            if new_cas is not None:
                old.cas = new_cas
            return Outcome.STORED, old.cas

    deadline = expiry_deadline(exptime, now)
    if deadline < 0:
        # Stored already expired: the observable effect is that the key is gone.
        space.unlink(key)
        return Outcome.STORED, next_cas()
    item = Item(value, flags, deadline, now)
    if new_cas is not None:
        item.cas = new_cas
    item.stale = stale
    space.link(key, item)
    return Outcome.STORED, item.cas


def refuse_too_large(session: Session, mode: Mode, key: bytes) -> None:
    """A store whose value exceeds the item limit: refused before its data is even read."""
    _require_write(session)
    space = session.space
    space.stats.cmd_set += 1
    space.stats.store_too_large += 1
    if mode is Mode.SET:
        space.unlink(key)  # as memcached: never leave a stale value behind a failed set


# -- deletion -----------------------------------------------------------------------------
def delete(
    session: Session,
    key: bytes,
    compare_cas: int | None = None,
    invalidate: bool = False,
    exptime: int | None = None,
    new_cas: int | None = None,
    drop_value: bool = False,
) -> Outcome:
    """delete; meta extras: ``invalidate`` marks the item stale (new CAS, optional TTL)
    instead of removing it, ``drop_value`` empties it but keeps it."""
    _require_write(session)
    space = session.space
    stats = space.stats
    stats.cmd_delete += 1
    now = time.time()
    item = space.lookup(key, now, bump=False)
    if item is None:
        stats.delete_misses += 1
        return Outcome.NOT_FOUND
    if compare_cas is not None and item.cas != compare_cas:
        return Outcome.EXISTS
    stats.delete_hits += 1
    if invalidate or drop_value:
        if drop_value:
            space.replace_value(key, item, b"", now)
            item.flags = 0
        if invalidate:
            item.stale = True
            item.token = False
            item.cas = next_cas()
            if exptime is not None:
                _set_expiry(space, key, item, exptime, now)
        if new_cas is not None:
            item.cas = new_cas
        return Outcome.DELETED
    space.unlink(key)
    return Outcome.DELETED


# -- arithmetic ---------------------------------------------------------------------------
def parse_counter(value: bytes) -> int | None:
    """memcached's rule: optional leading spaces, decimal digits of a u64, then the end."""
    digits = value.strip(b" ")
    if not digits or len(digits) > 20 or not digits.isdigit():
        return None
    number = int(digits)
    return number if number <= UINT64 else None


def arithmetic(
    session: Session,
    key: bytes,
    incr: bool,
    delta: int,
    initial: int | None = None,
    exptime: int = 0,
    compare_cas: int | None = None,
    touch: int | None = None,
    new_cas: int | None = None,
) -> tuple[Outcome, int, Item | None]:
    """incr/decr: returns (outcome, new value, the item).

    incr wraps at 2**64 and decr stops at 0. With ``initial`` set (binary, meta ``N``), a
    missing key is created holding ``initial`` with ``exptime`` — and ``initial`` is the
    answer, not ``initial + delta``, as in memcached. ``touch`` (meta ``T``) replaces the
    TTL of an existing counter.
    """
    _require_write(session)
    space = session.space
    stats = space.stats
    now = time.time()
    item = space.lookup(key, now)
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
            space.link(key, created)
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
        # As memcached: a shorter result is written in place, padded with spaces to the old
        # length ("100" decremented by 1 reads back as "99 "); clients see the same bytes.
        digits = digits.ljust(len(item.value))
    space.replace_value(key, item, digits, now)
    if new_cas is not None:
        item.cas = new_cas
    if touch is not None:
        _set_expiry(space, key, item, touch, now)
    return Outcome.STORED, result, item


# -- meta get -----------------------------------------------------------------------------
class MetaFetch:
    """An mg hit, with the facts its return flags report from *before* this fetch."""

    __slots__ = ("item", "hit_before", "idle_s", "won", "token_before")

    def __init__(self, item: Item, hit_before: bool, idle_s: float, won: bool,
                 token_before: bool) -> None:  # fmt: skip
        self.item = item
        self.hit_before = hit_before
        self.idle_s = idle_s
        self.won = won
        self.token_before = token_before


def meta_get(
    session: Session,
    key: bytes,
    touch: int | None = None,
    vivify: int | None = None,
    recache: int | None = None,
    bump: bool = True,
) -> MetaFetch | None:
    """mg: a get that may touch (``T``), create on miss (``N``) and hand out one
    "recache" win per item (``R``, or a stale item) so one client refreshes it.

    Each of those changes the item, so each needs ``write``; a read-only credential that
    reads a stale item sees it stale (``X``) but never takes the win, which would leave a
    writer waiting for a refresh that cannot come."""
    if touch is not None or vivify is not None or recache is not None:
        _require_write(session)
    space = session.space
    stats = space.stats
    stats.cmd_get += 1
    if touch is not None:
        stats.cmd_touch += 1
    now = time.time()
    item = space.lookup(key, now, bump=False)
    if item is None:
        stats.get_misses += 1
        if touch is not None:
            stats.touch_misses += 1
        if vivify is None:
            return None
        deadline = expiry_deadline(vivify, now)
        item = Item(b"", 0, max(deadline, 0.0), now)
        if deadline >= 0:
            space.link(key, item)
        item.token = True
        return MetaFetch(item, False, 0.0, True, False)
    stats.get_hits += 1
    stored = True
    if touch is not None:
        stats.touch_hits += 1
        stored = _set_expiry(space, key, item, touch, now)
    fetch = MetaFetch(item, item.fetched, now - item.atime, False, item.token)
    if (
        not item.token
        and session.credential.write
        and (item.stale or (recache is not None and item.exptime and item.exptime - now < recache))
    ):
        fetch.won = item.token = True
    item.fetched = True
    if bump and stored:  # a touch into the past has just removed it: nothing to bump
        space.bump(key, item, now)
    return fetch


def peek(session: Session, key: bytes) -> Item | None:
    """me: look at an item without counting a fetch or changing its LRU position."""
    return session.space.lookup(key, time.time(), bump=False)


# -- flush --------------------------------------------------------------------------------
def flush_all(session: Session, delay: int = 0) -> None:
    """Flush the session's cache (now, or everything written before ``now + delay``)."""
    space = session.space
    space.stats.cmd_flush += 1
    if not session.credential.flush:
        raise CapabilityDenied("flush")
    now = time.time()
    deadline = expiry_deadline(delay, now) if delay > 0 else 0.0
    space.flush(max(deadline, 0.0))
    session.record_flush()


def memory_limit(session: Session, megabytes: int) -> int:
    """``cache_memlimit``: a tenant's memory limit is its plan's, so this never changes it.

    Changing it is a plan change (billing, placement), done through the control plane,
    never by a data-plane command; the codec refuses with the limit that applies.
    Returns that limit in bytes.
    """
    return session.space.limit


def reset_stats(session: Session) -> None:
    """``stats reset`` zeroes the counters the owner's analytics and graphs are drawn
    from: a change to the cache's state like any other, so it needs ``write``."""
    _require_write(session)
    session.space.stats.reset()
