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
``gc.callbacks`` hook, O(1)): they move to CPython's permanent generation, which no
collection walks. And a full collection is not left to CPython's rule (after ``GC_OLD``
middle ones, once what was promoted since is a quarter of what the last one kept, so the
walks come in lumps of a quarter of everything): the serving loop runs one every
``SWEEP_EVERY_S`` (``Collector.run``), which walks only what survived since the last one,
a second's worth of new caches, items or connections, and freezes it. Its pause no longer
grows with the caches or items held (``bench/gc_pause.py``: 10 000 caches and 1 M items,
~0.1-10 ms, was 100-350 ms).

A frozen object is still freed by reference counting the moment nothing refers to it, as
every ``Item`` is (items hold bytes and numbers, no cycles). What freezing cannot free is a
*cycle* of frozen objects that becomes garbage later: that would leak until the next thaw.
The service makes no such cycles of long-lived objects: a closed connection's codec drops
its bound-method tables (``framing.Codec.release``), a deleted cache's records and
analytics track form none, and uvloop's transports none. asyncio's own socket transports
do (each holds a bound method of itself), so the CLI freezes only on uvloop
(``cli._tune_gc``). ``tests/backend/test_gc_policy.py`` churns caches, memcache and HTTP
connections through a running service, sweeping after every step, and an unfrozen
collection then finds nothing of theirs. What is in flight at a sweep (a request being
answered) is frozen too, and a cycle among it would outlive the request; as the bound on
that, the permanent generation is thawed into one full collection, as long as a full
collection was before (100-350 ms at 10 000 caches), when the process's small objects
(``sys.getallocatedblocks``, 0.4 ms for 3 M of them) grew by ``THAW_GROWTH`` since the
last thaw, checked every ``THAW_EVERY_S``. So frozen garbage can never be more than about
a quarter of what the process holds, while a process whose size is steady (the usual
case: caches and their items come and go) never pauses for a thaw; an unconditional thaw
every hour put a 100-350 ms stall into every hour of every tenant's traffic. A process
that grows (caches created, filled) thaws at each quarter of growth, each thaw longer but
rarer, like a list's reallocations.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

# A young collection costs about its number of young objects (see the module docstring).
GC_YOUNG = 5_000
# A middle collection walks up to GC_YOUNG x GC_MIDDLE survivors (20 000, ~5 ms).
GC_MIDDLE = 4
# CPython's own full collection comes at the next threshold after every middle one (more
# than GC_OLD of them), once what was promoted since is a quarter of what the last one
# kept (CPython's rule; with freezing, what the last one kept is small). So when objects
# survive faster than the sweeps take them (a cache filled at full speed: ~50 000 items a
# second), each full collection walks about one middle collection's promotions, ~20 000
# objects, instead of a second's worth or more.
GC_OLD = 0
# Without freezing (not on uvloop, see cli._tune_gc), full collections walk everything:
# as rare as CPython lets them be.
GC_OLD_UNFROZEN = 100
# The serving loop's own full collection, and when the thaw is considered (seconds).
SWEEP_EVERY_S = 1.0
THAW_EVERY_S = 3600.0
# The thaw comes once the process's small objects grew by this fraction since the last.
THAW_GROWTH = 0.25


class Collector:
    """The ``gc.callbacks`` hook that freezes what every full collection keeps, and the
    task (``run``) that sweeps every ``sweep_every_s`` and thaws every ``thaw_every_s``.

    Counts what it did (``full``, ``thawed``) for tests and benchmarks; not how many
    objects are frozen: ``gc.get_freeze_count()`` walks them all, as long as a pause.
    """

    def __init__(
        self,
        sweep_every_s: float = SWEEP_EVERY_S,
        thaw_every_s: float = THAW_EVERY_S,
        freezing: bool = True,
        thaw_growth: float = THAW_GROWTH,
        size: Callable[[], int] | None = None,
    ) -> None:
        self.freezing = freezing
        self.sweep_every_s = sweep_every_s
        self.thaw_every_s = thaw_every_s
        self.thaw_growth = thaw_growth
        # What the process holds, in any unit that grows with it: pymalloc's blocks in
        # use (0.4 ms for 3 M); without pymalloc (``PYTHONMALLOC=malloc``: always 0), the
        # frozen objects (a walk of them, as long as a pause, once an hour).
        if size is None:
            size = sys.getallocatedblocks if sys.getallocatedblocks() else gc.get_freeze_count
        self.size = size
        self.thawed_at_size = size()  # as of the last thaw (or the start)
        self.full = 0
        self.thawed = 0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info.get("generation") == 2:
            gc.freeze()  # O(1): the generations' lists are spliced onto the permanent one
            self.full += 1

    def sweep(self) -> None:
        """One full collection of what is not frozen yet (then frozen by the hook)."""
        gc.collect(2)

    def thaw_due(self) -> bool:
        """Whether the process grew by ``thaw_growth`` since the last thaw. Shrinking
        lowers the mark, so growing back to a size the process had counts as growth."""
        size = self.size()
        if size < self.thawed_at_size:
            self.thawed_at_size = size
        return size >= self.thawed_at_size * (1 + self.thaw_growth)

    def thaw(self) -> int:
        """Everything walked once: frees cycles among frozen objects; returns what it
        found unreachable. A second, empty-handed sweep follows, so CPython's next own
        full collection does not wait for a quarter of everything to be new."""
        started = time.perf_counter()
        gc.unfreeze()
        found = gc.collect(2)
        gc.collect(2)
        self.thawed += 1
        self.thawed_at_size = self.size()
        log.info(
            "gc thaw: %d unreachable objects freed in %.0f ms",
            found,
            (time.perf_counter() - started) * 1000,
        )
        return found

    async def run(self) -> None:
        """Sweep every ``sweep_every_s``; every ``thaw_every_s`` thaw instead if due
        (``thaw_due``). Until cancelled; returns at once when not ``freezing`` (a sweep
        would walk everything)."""
        if not self.freezing:
            return
        loop = asyncio.get_running_loop()
        thaw_at = loop.time() + self.thaw_every_s
        while True:
            await asyncio.sleep(self.sweep_every_s)
            if loop.time() >= thaw_at and self.thaw_due():
                self.thaw()
            else:
                self.sweep()
            if loop.time() >= thaw_at:
                thaw_at = loop.time() + self.thaw_every_s


def install(freeze: bool = True) -> Collector:
    """Freeze what exists now (start-up objects), set the thresholds and, with ``freeze``,
    hook full collections. Call once, after start-up; run the returned collector's ``run``
    on a loop of the process (it only sweeps with ``freeze``; without, full collections
    stay CPython's, as rare as ``GC_OLD_UNFROZEN`` makes them)."""
    gc.freeze()
    collector = Collector(freezing=freeze)
    if freeze:
        gc.set_threshold(GC_YOUNG, GC_MIDDLE, GC_OLD)
        gc.callbacks.append(collector)
    else:
        gc.set_threshold(GC_YOUNG, GC_MIDDLE, GC_OLD_UNFROZEN)
    return collector
