"""Analytics history: bytes per cache after a full window, and sampling CPU, old vs new.

In one process, the ``Analytics`` of this tree and the one of a git revision (``--before``,
default: the last commit before the compressed history) sample the same data plane, driven
by a fake clock, so both are measured in the same run on the same machine:

* **bytes per cache** after the full history (900 s + 24 h + 30 d, filled with hour, then
  minute, then second steps), for an idle cache and for an active one (traffic drawn at
  random every step: ~20 gets/s, 90 % hits, sets, deletes, value sizes 100-2000 B, the
  odd flush, 20 timed reads of random latency, ~20 µs median), measured with
  tracemalloc: everything the ``Analytics`` holds alive;
* **sampling CPU** per tick with ``--caches`` idle caches (and the same with every cache
  active), as a share of one core at a 1 s interval.

    python bench/analytics_history.py                   # 1 000 and 10 000 caches
    python bench/analytics_history.py --caches 1000 --ticks 60
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import random
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from types import ModuleType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from backend import analytics as new_analytics  # noqa: E402
from backend.control.models import Cache  # noqa: E402
from backend.dataplane import DataPlane  # noqa: E402
from backend.engine import Mode  # noqa: E402
from backend.latency import CommandLatency  # noqa: E402
from backend.throttle import AuthThrottle  # noqa: E402
from backend.topology import default_topology  # noqa: E402

T0 = 1_699_999_200.0


def load_revision(rev: str) -> ModuleType:
    """``backend/analytics.py`` as it was at ``rev``, imported under another name."""
    source = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "show", f"{rev}:backend/analytics.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    spec = importlib.util.spec_from_loader("analytics_before", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, f"{rev}:backend/analytics.py", "exec"), module.__dict__)
    return module


def dataplane(n: int) -> DataPlane:
    plane = DataPlane(default_topology(), AuthThrottle())
    clusters = [c.name for c in plane.topology.clusters()]
    for i in range(n):
        cache = Cache(f"c{i}", f"n{i}", "100mb", "local", clusters[i % 2])
        plane.engine_for(cache)
        plane.caches[cache.id] = cache
    return plane


class Clock:
    def __init__(self) -> None:
        self.t = T0 - 1

    def __call__(self) -> float:
        return self.t


class Traffic:
    """Random but realistic traffic on one engine, scaled to the seconds a step covers."""

    def __init__(self, plane: DataPlane, cache_id: str, seed: int) -> None:
        self.engine = plane.engine_for(plane.caches[cache_id])
        # Noted as the listener notes a read (trees since issue 15's idle ticks; an older
        # tree has no ``changes`` and reads every cache at every tick).
        self.changes = getattr(plane, "changes", None)
        self.random = random.Random(seed)
        self.keys = 0

    def step(self, seconds: float) -> None:
        r, stats, engine = self.random, self.engine.stats, self.engine
        gets = int(r.gauss(20 * seconds, (20 * seconds) ** 0.5))
        hits = sum(r.random() < 0.9 for _ in range(min(gets, 300)))
        hits = hits if gets <= 300 else round(gets * hits / 300)
        stats.cmd_get += max(gets, 0)
        stats.get_hits += max(hits, 0)
        stats.get_misses += max(gets - hits, 0)
        sets = max(0, round(r.gauss(2 * seconds, (2 * seconds) ** 0.5)))
        for _ in range(min(sets, 5)):  # a few real stores move memory and items
            self.keys += 1
            engine.store(Mode.SET, b"k%d" % (self.keys % 500), b"v" * r.randint(100, 2000), 0, 0)
        stats.cmd_set += max(0, sets - min(sets, 5))
        stats.cmd_delete += r.random() < 0.2 * seconds
        stats.bytes_read += gets * 30 + sets * 1100
        stats.bytes_written += hits * 1000 + gets * 10
        if r.random() < 0.0002 * seconds:
            engine.flush()
            stats.cmd_flush += 1
        if engine.latency is None:  # what the listener does at the first connection
            engine.latency = CommandLatency()
        for _ in range(20):  # reads timed: p50, p99 and max move every step
            engine.latency.record(int(r.lognormvariate(10, 1)) + 1)
        if self.changes is not None:
            self.changes.note(engine)


def fill(module: Any, n_idle: int, n_active: int) -> tuple[Any, DataPlane]:
    """An Analytics of ``module`` with a full history of idle and active caches."""
    plane = dataplane(n_idle + n_active)
    clock = Clock()
    analytics = module.Analytics(plane, clock=clock)
    traffic = [Traffic(plane, f"c{n_idle + i}", i) for i in range(n_active)]
    for step, count in ((3600.0, 31 * 24), (60.0, 24 * 60 + 10), (1.0, 1000)):
        for _ in range(count):
            clock.t += step
            for t in traffic:
                t.step(step)
            analytics.sample()
    return analytics, plane


def bytes_per_cache(module: Any, idle: bool, caches: int = 10) -> float:
    """tracemalloc: what an Analytics with ``caches`` full histories frees when dropped
    (so exactly what it holds alive, shared tick times included), per cache."""
    tracemalloc.start()
    analytics, plane = fill(module, caches if idle else 0, 0 if idle else caches)
    catch_up = getattr(analytics, "catch_up", None)  # idle caches' ticks, recorded now
    if catch_up is not None:
        catch_up()
    gc.collect()
    held = tracemalloc.get_traced_memory()[0]
    del analytics
    gc.collect()
    held -= tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return held / caches


def series_time(module: Any) -> dict[str, float]:
    """Median seconds of ``series()`` for an active cache's full history, per window."""
    analytics, _plane = fill(module, 0, 1)
    out = {}
    for window in (None, 3600.0, 86400.0, 30 * 86400.0):
        timings = []
        for _ in range(15):
            start = time.perf_counter()
            analytics.series("c0", window)
            timings.append(time.perf_counter() - start)
        out[f"{window or 900:.0f} s"] = statistics.median(timings)
    return out


def sampling_cpu(module: Any, caches: int, ticks: int, active: bool) -> float:
    """Median CPU seconds of one ``sample()`` of ``caches`` caches."""
    plane = dataplane(caches)
    clock = Clock()
    analytics = module.Analytics(plane, clock=clock)
    engines = [plane.engine_for(c) for c in plane.caches.values()]
    changes = getattr(plane, "changes", None)  # see ``Traffic``
    timings = []
    for i in range(ticks + 70):  # past the first chunk of 64 ticks: closing ones is paid
        if active:
            for engine in engines:
                engine.stats.cmd_get += 4
                engine.stats.get_hits += 3
                engine.stats.get_misses += 1
                engine.stats.bytes_read += 100
                if changes is not None:
                    changes.note(engine)
        clock.t += 1
        start = time.process_time()
        analytics.sample()
        if i >= 5:
            timings.append(time.process_time() - start)
    return statistics.median(timings) if len(timings) < 64 else statistics.mean(timings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", default="2ad7645", help="git revision of the old code")
    parser.add_argument("--caches", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--ticks", type=int, default=120, help="sampling ticks measured")
    args = parser.parse_args(argv)
    old = load_revision(args.before)
    print(f"before = {args.before}, after = this tree; CPython {sys.version.split()[0]}")
    print("\nbytes per cache after a full history (900 s + 24 h + 30 d), tracemalloc:")
    print(f"{'cache':8} {'before':>12} {'after':>12} {'ratio':>8}")
    for idle in (True, False):
        b = bytes_per_cache(old, idle)
        a = bytes_per_cache(new_analytics, idle)
        print(f"{'idle' if idle else 'active':8} {b:12,.0f} {a:12,.0f} {b / a:8.1f}x")
    print("\nseries() of an active cache's full history (the dashboard API's work):")
    b_series, a_series = series_time(old), series_time(new_analytics)
    for window, b in b_series.items():
        a = a_series[window]
        print(f"window {window:>9} {b * 1e3:8.2f} ms {a * 1e3:8.2f} ms {b / a:6.2f}x")
    print("\nsampling CPU per 1 s tick (share of one core), interleaved old/new:")
    print(f"{'caches':>7} {'traffic':8} {'before':>16} {'after':>16} {'ratio':>7}")
    for n in args.caches:
        for active in (False, True):
            b = sampling_cpu(old, n, args.ticks, active)
            a = sampling_cpu(new_analytics, n, args.ticks, active)
            kind = "active" if active else "idle"
            print(
                f"{n:7} {kind:8} {b * 1e3:8.2f} ms {b * 100:4.1f}% "
                f"{a * 1e3:8.2f} ms {a * 100:4.1f}% {b / a:6.2f}x"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
