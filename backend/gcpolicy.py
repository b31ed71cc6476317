"""The cyclic collector's policy in ``cachier-backend``: every pause short.

A collection holds the GIL from start to end, whichever thread triggers it, so its length
is a stall of the memcache serving loop and of the control thread alike (issue 15). Two
kinds of collection were long:

* **Young ones** cost about their number of young objects: at CPython's 50 000-ish
  thresholds they took 8-30 ms with 10 000 caches (the analytics sampler allocates per
  cache per second). ``GC_YOUNG`` = 5 000 makes each a tenth as long (~1 ms).
* **Full ones** walk every tracked object that is not frozen. At 10 000 caches that is
  ~233 000 objects (the control plane's records, analytics tracks, engines: ~23 per
  cache), ~100 ms; every stored ``Item`` is one more, so a cache of 1 M small items made
  each full collection ~350 ms (``bench/gc_pause.py``).

So after every full collection its survivors are frozen (``gc.freeze()``, from a
``gc.callbacks`` hook): they moved to CPython's permanent generation, which no collection
walks. The next full collection walks only what was promoted since, which ``GC_OLD`` bounds
(below), so its pause no longer grows with the caches or items held. A frozen object is
still freed by reference counting the moment nothing refers to it, as every ``Item`` is
(items hold bytes and numbers, no cycles). What freezing cannot free is a *cycle* of
frozen objects that becomes garbage later: that would leak. The service avoids making
such cycles out of long-lived objects (a closed connection's codec drops its bound-method
tables, ``framing.Codec.release``; a deleted cache's records and analytics track form no
cycle), and ``tests/backend/test_gc_policy.py`` churns caches, memcache and HTTP
connections through a running service, freezing after every step, and checks that an
unfrozen collection then finds (almost) nothing and memory stays flat.

Objects in flight at the moment of a full collection (a request being answered) are
frozen too; a cycle among them becomes garbage the collector no longer sees. As a bound
on that, ``THAW_EVERY_S`` after the last thaw, at the next full collection, the whole
permanent generation is thawed first, so that one collection walks everything and frees
what the frozen cycles held; it is as long as a full collection was before (once an hour
by default, see ``THAW_EVERY_S``).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

# A young collection costs about its number of young objects (see the module docstring).
GC_YOUNG = 5_000
# A middle collection walks up to GC_YOUNG x GC_MIDDLE survivors (50 000, ~10 ms).
GC_MIDDLE = 10
# A full collection comes after more than GC_OLD middle ones (and once what was promoted
# since the last is a quarter of what that one kept, CPython's own rule), so with the
# survivors frozen each walks about what 2 middle collections promoted: at most ~130 000
# objects, ~15-30 ms; at 100 (before freezing) it came rarely and walked everything.
GC_OLD = 1
# How often the frozen generation is thawed into one full collection (seconds).
THAW_EVERY_S = 3600.0


class FreezeAfterFull:
    """The ``gc.callbacks`` hook: freeze the survivors of every full collection, and thaw
    everything before one full collection every ``thaw_every_s``.

    Counts what it did (``full``, ``thawed``) for tests and benchmarks; not how many
    objects are frozen: ``gc.get_freeze_count()`` walks them all, as long as a pause.
    """

    def __init__(
        self, thaw_every_s: float = THAW_EVERY_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.thaw_every_s = thaw_every_s
        self.clock = clock
        self.thawed_at = clock()
        self.full = 0
        self.thawed = 0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            if self.clock() - self.thawed_at >= self.thaw_every_s:
                gc.unfreeze()  # this collection walks everything once
                self.thawed += 1
                self.thawed_at = self.clock()
            return
        gc.freeze()  # O(1): the generations' lists are spliced onto the permanent one
        self.full += 1


def install(thaw_every_s: float = THAW_EVERY_S) -> FreezeAfterFull:
    """Freeze what exists now (start-up objects), set the thresholds and hook full
    collections. Call once, after start-up; returns the hook."""
    gc.freeze()
    gc.set_threshold(GC_YOUNG, GC_MIDDLE, GC_OLD)
    hook = FreezeAfterFull(thaw_every_s)
    gc.callbacks.append(hook)
    return hook
