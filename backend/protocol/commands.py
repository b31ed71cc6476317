"""Protocol-neutral memcache command semantics: the ONE place for the rules.

Codecs (ASCII, meta, binary) parse bytes and call these functions; they only translate the
outcomes back into their own encoding. Authorization lives here too, so no codec can forget
it: every function refuses a revoked credential (``CredentialRevoked``: the codec closes
the connection, answering nothing) and every mutating one checks ``write`` before it
touches anything (``CapabilityDenied``, answered with the words of ``REFUSALS``). The
cache's contents are reached only through the session's ``Engine``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from backend.engine import ItemInfo, ItemView, MetaFetch, Mode, Outcome
from backend.protocol import stats as families
from backend.store import parse_counter, too_large

if TYPE_CHECKING:
    from backend.session import AuthenticatedSession

__all__ = [
    "REFUSALS",
    "CapabilityDenied",
    "CredentialRevoked",
    "Refused",
    "ItemView",
    "MetaFetch",
    "Mode",
    "Outcome",
    "parse_counter",
    "too_large",
]


class Refused(Exception):
    """The session's credential may not run this command; nothing was changed."""


class CredentialRevoked(Refused):
    """The credential was deleted while this connection was open: the codec closes it
    without an answer (the control plane also closes every such session at once)."""


# Why a command needing a capability is refused: the one table every codec answers from.
REFUSALS = {
    "write": "this credential is read-only (lacks the 'write' capability)",
    "flush": "this credential lacks the 'flush' capability",
}


class CapabilityDenied(Refused):
    """The session's credential lacks a capability."""

    def __init__(self, capability: str) -> None:
        super().__init__(capability)
        self.capability = capability

    def text(self, command: str | None = None) -> str:
        """The refusal, naming ``command`` (the codec's word for it) or the capability."""
        return f"{command or self.capability} not allowed: {REFUSALS[self.capability]}"


# Every command passes exactly one of the checks below (``get`` inlines the first), which
# also count it for the credential's activity (``backend.activity``): one attribute
# increment on the hot path, and one more for a refusal.
def _require_live(session: AuthenticatedSession) -> None:
    if session.credential.revoked:
        raise CredentialRevoked()
    session.activity.commands += 1


def _require_write(session: AuthenticatedSession) -> None:
    credential = session.credential
    if credential.revoked:
        raise CredentialRevoked()
    activity = session.activity
    activity.commands += 1
    if not credential.write:
        activity.refused_write += 1
        raise CapabilityDenied("write")


# -- retrieval ----------------------------------------------------------------------------
def get(session: AuthenticatedSession, key: bytes) -> ItemView | None:
    if session.credential.revoked:  # _require_live inlined: the hottest call of all
        raise CredentialRevoked()
    session.activity.commands += 1
    engine = session.engine
    item = engine.get(key)
    if engine.key_activity is not None:  # the owner's Keys view is open: sample
        engine.key_activity.get(key, item is not None)
    return item


def get_and_touch(session: AuthenticatedSession, key: bytes, exptime: int) -> ItemView | None:
    """gat/gats: fetch and replace the TTL (counted as a touch, as memcached does)."""
    _require_write(session)
    engine = session.engine
    item = engine.get_and_touch(key, exptime)
    if engine.key_activity is not None:
        engine.key_activity.get(key, item is not None)
    return item


def touch(session: AuthenticatedSession, key: bytes, exptime: int) -> Outcome:
    _require_write(session)
    return Outcome.TOUCHED if session.engine.touch(key, exptime) else Outcome.NOT_FOUND


# -- storage ------------------------------------------------------------------------------
def store(
    session: AuthenticatedSession,
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
    engine = session.engine
    if engine.key_activity is not None:
        engine.key_activity.set(key, len(value))
    return engine.store(mode, key, value, flags, exptime, compare_cas, invalidate, new_cas, vivify)


def refuse_too_large(session: AuthenticatedSession, mode: Mode, key: bytes) -> None:
    """A store whose value exceeds the item limit: refused before its data is even read."""
    _require_write(session)
    session.engine.refuse_too_large(mode, key)


# -- deletion -----------------------------------------------------------------------------
def delete(
    session: AuthenticatedSession,
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
    engine = session.engine
    if engine.key_activity is not None:
        engine.key_activity.delete(key)
    return engine.delete(key, compare_cas, invalidate, exptime, new_cas, drop_value)


# -- arithmetic ---------------------------------------------------------------------------
def arithmetic(
    session: AuthenticatedSession,
    key: bytes,
    incr: bool,
    delta: int,
    initial: int | None = None,
    exptime: int = 0,
    compare_cas: int | None = None,
    touch: int | None = None,
    new_cas: int | None = None,
) -> tuple[Outcome, int, ItemView | None]:
    """incr/decr: returns (outcome, new value, the item).

    incr wraps at 2**64 and decr stops at 0. With ``initial`` set (binary, meta ``N``), a
    missing key is created holding ``initial`` with ``exptime`` — and ``initial`` is the
    answer, not ``initial + delta``, as in memcached. ``touch`` (meta ``T``) replaces the
    TTL of an existing counter.
    """
    _require_write(session)
    return session.engine.arith(key, incr, delta, initial, exptime, compare_cas, touch, new_cas)


# -- meta get -----------------------------------------------------------------------------
def meta_get(
    session: AuthenticatedSession,
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
    else:
        _require_live(session)
    engine = session.engine
    fetched = engine.meta_get(key, touch, vivify, recache, bump, may_win=session.credential.write)
    if engine.key_activity is not None:
        engine.key_activity.get(key, fetched is not None)
    return fetched


def peek(session: AuthenticatedSession, key: bytes) -> ItemInfo | None:
    """me: look at an item without counting a fetch or changing its LRU position."""
    _require_live(session)
    return session.engine.peek(key)


# -- flush --------------------------------------------------------------------------------
def flush_all(session: AuthenticatedSession, delay: int = 0) -> None:
    """Flush the session's cache (now, or everything written before ``now + delay``)."""
    _require_live(session)
    engine = session.engine
    # A client's flush_all is counted even when refused, as memcached does; the engine's
    # flush is not counted, because the control plane's flushes are no client commands.
    engine.stats.cmd_flush += 1
    if not session.credential.flush:
        session.activity.refused_flush += 1
        raise CapabilityDenied("flush")
    engine.flush(delay)
    session.record_flush()


def memory_limit(session: AuthenticatedSession, megabytes: int) -> int:
    """``cache_memlimit``: a tenant's memory limit is its plan's, so this never changes it.

    Changing it is a plan change (billing, placement), done through the control plane,
    never by a data-plane command; the codec refuses with the limit that applies.
    Returns that limit in bytes.
    """
    _require_live(session)
    return session.engine.usage().limit


def reset_stats(session: AuthenticatedSession) -> None:
    """``stats reset`` zeroes the counters the owner's analytics and graphs are drawn
    from: a change to the cache's state like any other, so it needs ``write``."""
    _require_write(session)
    session.engine.reset_stats()


def stats(session: AuthenticatedSession, family: str) -> families.Stats | None:
    """A ``stats`` family of the session's own cache; None for a family that does not exist."""
    _require_live(session)
    rows = families.FAMILIES.get(family)
    return None if rows is None else rows(session)


def cachedump(session: AuthenticatedSession, slab: int, limit: int) -> bytes:
    """``stats cachedump``: the session's own keys (see ``stats.cachedump``)."""
    _require_live(session)
    return families.cachedump(session, slab, limit)
