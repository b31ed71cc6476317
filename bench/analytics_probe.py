#!/usr/bin/env python3
"""``cachier-backend`` plus a probe that says how many bytes analytics holds (bench only).

    python bench/analytics_probe.py FIFO [cachier-backend flags ...]

Runs ``backend.cli.main`` (from ``PYTHONPATH``, the tree under test) unchanged, after two
small hooks on ``backend.analytics.Analytics``: its instances are recorded and its
``sample()`` calls counted. A daemon thread, blocked reading the named pipe ``FIFO`` (no
CPU while idle), answers one command per line by writing JSON to the path given, first
to ``PATH.tmp`` and then renamed, so a reader never sees half a file:

* ``samples PATH``: ``{"samples": N}``, sample() calls so far;
* ``gc PATH``: the cyclic collector's view (``gc_census``): tracked objects by type, per
  generation and frozen, and the pause of full (generation 2) and young collections run
  here on the probe thread (a collection holds the GIL throughout, so that pause is a
  stall of both of the backend's loops), for ``bench/gc_pause.py``;
* ``thaw PATH``: what freezing would leak: the permanent generation is unfrozen and one
  full collection (``gc.DEBUG_SAVEALL``) reports the unreachable objects it finds, by
  type, then frees them; ``gc.freeze()`` again afterwards;
* ``walk PATH``: the bytes of every object analytics holds (below), the sample count,
  the caches known to its data plane and its tiers (``(resolution_s, points)``); no
  sample is taken while it runs.

The walk starts at each Analytics instance and follows ``gc.get_referents``, counting
``sys.getsizeof`` of each object once (by id). It counts and follows builtin data
(containers, numbers, strings, bytes, arrays) and instances of classes defined in
``backend.*`` modules other than those that own shared state (the data plane, the engines
and their stats, the event bus, the control plane, the API...), so storage added in a new
module (a compressed series, say) is counted, while a track's reference to its cache's
``CacheStats`` or the Analytics' reference to the data plane is not. Functions, classes,
modules, locks and foreign library objects are neither counted nor followed. It runs on
the probe thread while the backend keeps serving (only sampling waits), so ``scale.py``
walks only when nothing else is measured.

Python's allocator rounds small blocks up to 8 bytes and keeps arenas, so RSS grows by a
little more than these bytes; ``getsizeof`` is what the objects themselves take.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sys
import threading
import time
import types
from collections import Counter
from pathlib import Path
from typing import Any

# backend.* modules whose objects are shared with (owned by) the rest of the service.
NOT_ANALYTICS = (
    "backend.dataplane",
    "backend.store",
    "backend.engine",
    "backend.events",
    "backend.service",
    "backend.loops",
    "backend.control",
    "backend.api",
    "backend.monitor",
    "backend.listeners",
    "backend.session",
    "backend.protocol",
    "backend.clients",
    "backend.config",
    "backend.throttle",
    "backend.egress",
    "backend.topology",
    "backend.metrics",
    "backend.logs",
    "backend.demo",
    "backend.tls",
)
DATA_MODULES = ("builtins", "collections", "array")
NOT_DATA = (
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.CodeType,
    types.FrameType,
    types.GeneratorType,
    types.CoroutineType,
    types.CellType,
)

instances: list[Any] = []
samples = 0
quiet = threading.Lock()  # held by a walk; sample() skips its tick while it is


def counted(obj: object) -> bool:
    """Whether objects of ``obj``'s type are analytics' own data (see the module docstring).

    Decided by type alone, so the walk asks once per type.
    """
    module = type(obj).__module__
    if module in DATA_MODULES:
        return not isinstance(obj, NOT_DATA)
    return module.startswith("backend.") and not module.startswith(NOT_ANALYTICS)


def walk() -> dict[str, Any]:
    """Bytes held by every Analytics instance, by type name too.

    Sampling is held off meanwhile (``quiet``), so the figure is one consistent state and
    the sample count is that state's: at 10 000 caches a walk takes tens of seconds, during
    which the backend would otherwise take as many samples. A tick that finds the walk
    running is skipped, as analytics skips any tick it misses.
    """
    with quiet:
        started = time.perf_counter()
        for instance in instances:  # idle caches' ticks recorded, as reading them would
            catch_up = getattr(instance, "catch_up", None)  # (trees before issue 15: none)
            if catch_up is not None:
                catch_up()
        taken = samples
        seen: set[int] = set()
        sizes: Counter[type] = Counter()
        verdicts: dict[type, bool] = {}
        objects = 0
        stack: list[object] = list(instances)
        getsizeof, referents = sys.getsizeof, gc.get_referents
        while stack:
            obj = stack.pop()
            kind = type(obj)
            verdict = verdicts.get(kind)
            if verdict is None:
                verdict = verdicts[kind] = counted(obj)
            if not verdict or id(obj) in seen:
                continue
            seen.add(id(obj))
            sizes[kind] += getsizeof(obj)
            objects += 1
            stack.extend(referents(obj))
    caches = None
    with contextlib.suppress(AttributeError, TypeError):
        caches = sum(len(a.dataplane.caches) for a in instances)
    tiers = None
    with contextlib.suppress(AttributeError, TypeError):
        tiers = [[float(r), int(n)] for r, n in instances[0].tiers]
    return {
        "bytes": sum(sizes.values()),
        "objects": objects,
        "by_type": {kind.__name__: size for kind, size in sizes.most_common(8)},
        "samples": taken,
        "instances": len(instances),
        "caches": caches,
        "tiers": tiers,
        "walk_s": round(time.perf_counter() - started, 3),
    }


def gc_census(repeat: int = 3) -> dict[str, Any]:
    """Tracked objects by type (the 15 commonest), per generation, frozen, and the pause
    of ``repeat`` full collections and of ``repeat`` young ones, in ms.

    Timed here, on the probe thread, as the backend's own collections are: a collection
    holds the GIL to its end, whichever thread runs it. The walk of ``gc.get_objects()``
    runs first and is not timed as a pause.
    """
    started = time.perf_counter()
    kinds: Counter[str] = Counter()
    for obj in gc.get_objects():
        kinds[type(obj).__qualname__] += 1
    counted_s = time.perf_counter() - started
    full, young = [], []
    for _ in range(repeat):
        begun = time.perf_counter()
        freed = gc.collect(2)
        full.append(round((time.perf_counter() - begun) * 1000, 2))
        begun = time.perf_counter()
        gc.collect(0)
        young.append(round((time.perf_counter() - begun) * 1000, 3))
        time.sleep(0.2)
    return {
        "tracked": sum(kinds.values()),
        "by_type": dict(kinds.most_common(15)),
        "generations": [len(gc.get_objects(g)) for g in range(3)],
        "frozen": gc.get_freeze_count(),
        "threshold": list(gc.get_threshold()),
        "full_ms": full,
        "young_ms": young,
        "freed_last": freed,
        "census_s": round(counted_s, 2),
    }


def thaw() -> dict[str, Any]:
    """Unfreeze, collect everything once and say what was garbage (cycles among frozen
    objects are what ``gcpolicy``'s freezing keeps alive), then free it and freeze again."""
    gc.collect(2)  # what the collector frees anyway (and, under gcpolicy, freezes the rest)
    frozen = gc.get_freeze_count()
    gc.unfreeze()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        found = gc.collect(2)
        kinds = Counter(type(obj).__qualname__ for obj in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    gc.collect(2)
    gc.freeze()
    return {"frozen": frozen, "garbage": found, "by_type": dict(kinds.most_common(12))}


def answer(path: str, payload: dict[str, Any]) -> None:
    tmp = Path(path + ".tmp")
    tmp.write_text(json.dumps(payload))
    tmp.replace(path)


def serve(fifo: str) -> None:
    """Commands from the pipe, forever (a writer closing it ends one open, not the loop)."""
    while True:
        with open(fifo) as commands:
            for line in commands:
                command, _, path = line.strip().partition(" ")
                try:
                    if command == "samples":
                        answer(path, {"samples": samples})
                    elif command == "gc":
                        answer(path, gc_census())
                    elif command == "thaw":
                        answer(path, thaw())
                    elif command == "walk":
                        answer(path, walk())
                    else:
                        answer(path, {"error": f"unknown command {command!r}"})
                except Exception as exc:  # a probe bug must say so, not hang the bench
                    answer(path, {"error": repr(exc)})


def hook() -> None:
    """Record Analytics instances and count samples, leaving their behaviour unchanged."""
    from backend.analytics import Analytics

    init, sample = Analytics.__init__, Analytics.sample

    def recording_init(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        instances.append(self)

    def counting_sample(self: Any, *args: Any, **kwargs: Any) -> Any:
        global samples
        if not quiet.acquire(blocking=False):
            return None
        try:
            return sample(self, *args, **kwargs)
        finally:
            samples += 1
            quiet.release()

    Analytics.__init__ = recording_init  # type: ignore[method-assign]
    Analytics.sample = counting_sample  # type: ignore[method-assign]


def main() -> int:
    fifo, argv = sys.argv[1], sys.argv[2:]
    # The script's directory (bench/) comes first on sys.path; its modules must not shadow
    # any the backend or its libraries import by name.
    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        del sys.path[0]
    if not os.path.exists(fifo):
        os.mkfifo(fifo)
    hook()
    threading.Thread(target=serve, args=(fifo,), name="analytics-probe", daemon=True).start()
    from backend.cli import main as backend_main

    return backend_main(argv)


if __name__ == "__main__":
    sys.exit(main())
