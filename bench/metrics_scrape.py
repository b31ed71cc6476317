#!/usr/bin/env python3
"""``/metrics`` cost with many caches (issue 15, item 2): one scrape, rendered in process.

Builds the service's real parts without sockets — a SQLite control plane in a temp dir,
the data plane subscribed to its events, the status monitor — creates ``--caches`` caches
through ``ControlPlane.create_cache``, then times the exposition the ``/metrics`` route
serves (what runs on the control thread), ``--scrapes`` times per scenario:

* ``idle``: nothing changed since the previous scrape;
* ``1%`` / ``10%`` / ``100%``: that share of the caches served a ``get`` (and a ``set``)
  since the previous scrape, through their storage engines.

The first scrape (everything new) is timed on its own. With the tree's
``backend.metrics.Exposition`` both ``--metrics-per-cache on`` and ``off`` are measured;
a tree that only has ``backend.metrics.exposition`` (before the change) is measured as is.

    python bench/metrics_scrape.py --caches 10000                      # this tree
    python bench/metrics_scrape.py --tree /tmp/cachier-main --caches 10000   # another one

(``--tree``: a checkout whose ``backend`` is imported instead of this one's, e.g.
``git worktree add /tmp/cachier-main main``.)

Prints one line per scenario: the median wall-clock and CPU milliseconds of a scrape
(the CPU time is this thread's, what the scrape costs when it has a core to itself) and
the body's size.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

REPO_ROOT = Path(__file__).resolve().parent.parent

if TYPE_CHECKING:
    from backend.dataplane import DataPlane
    from backend.monitor import Monitor


SHARES = {"idle": 0.0, "1%": 0.01, "10%": 0.10, "100%": 1.0}


def build(data_dir: Path, caches: int) -> tuple[DataPlane, Monitor]:
    from backend.control.database import open_repository, parse_database_url
    from backend.control.plane import ControlPlane
    from backend.control.secrets import Secrets
    from backend.dataplane import DataPlane
    from backend.events import EventBus
    from backend.monitor import Monitor
    from backend.throttle import AuthThrottle
    from backend.topology import default_topology

    topology = default_topology()
    repository = open_repository(parse_database_url(""), data_dir)
    bus = EventBus()
    dataplane = DataPlane(topology, AuthThrottle())
    dataplane.subscribe(bus)
    control = ControlPlane(repository, Secrets.load_or_create(data_dir), topology, bus, dataplane)
    control.endpoints = {r.name: "127.0.0.1:11211" for r in topology.regions}
    started = time.perf_counter()
    for i in range(caches):
        control.create_cache(f"cache-{i:05d}", "free")
    print(f"created {caches} caches in {time.perf_counter() - started:.1f} s", flush=True)
    return dataplane, Monitor(dataplane, repository)


def touch(dataplane: DataPlane, share: float, round_: int) -> None:
    from backend.engine import Mode

    caches = dataplane.caches_now()
    step = max(1, round(1 / share)) if share else 0
    if not step:
        return
    changes = getattr(dataplane, "changes", None)  # trees since issue 15's change log
    for cache in caches[round_ % step :: step]:
        engine = dataplane.engine_for(cache)
        engine.get(b"k")
        engine.store(Mode.SET, b"k", b"v" * round_, 0, 0)
        if changes is not None:
            changes.note(engine)  # as the listener notes a read


def timed(render: Callable[[], bytes], runs: int) -> tuple[list[float], list[float], int]:
    """Wall-clock and CPU (this thread's) seconds of each scrape, and the last one's size.

    On a shared machine the wall clock includes waiting for a core; the CPU time is what
    the scrape itself costs, and what it holds the GIL for."""
    walls, cpus, size = [], [], 0
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.thread_time()
        size = len(render())
        cpus.append(time.thread_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return walls, cpus, size


def scenarios(label: str, dataplane: DataPlane, render: Callable[[], bytes], scrapes: int) -> None:
    walls, cpus, size = timed(render, 1)
    print(
        f"{label:<26} {'first':<6} {walls[0] * 1000:8.1f} {cpus[0] * 1000:8.1f} {size / 1e6:7.2f}"
    )
    for name, share in SHARES.items():
        walls, cpus = [], []
        for round_ in range(scrapes):
            touch(dataplane, share, round_ + 1)
            wall, cpu, size = timed(render, 1)
            walls += wall
            cpus += cpu
        print(
            f"{label:<26} {name:<6} {statistics.median(walls) * 1000:8.1f} "
            f"{statistics.median(cpus) * 1000:8.1f} {size / 1e6:7.2f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", default=str(REPO_ROOT), help="checkout to import backend from")
    parser.add_argument("--caches", type=int, default=10_000)
    parser.add_argument("--scrapes", type=int, default=5, help="timed scrapes per scenario")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(args.tree).resolve()))  # before backend is first imported
    from backend import metrics

    print(f"backend from {Path(metrics.__file__).parent.parent}", flush=True)
    with tempfile.TemporaryDirectory(prefix="cachier-metrics-bench-") as tmp:
        dataplane, monitor = build(Path(tmp), args.caches)
        print(f"{'':<26} {'scrape':<6} {'wall ms':>8} {'cpu ms':>8} {'MB':>7}")
        exposition = getattr(metrics, "Exposition", None)
        if exposition is None:  # before the change: one function, everything each time
            scenarios(
                "exposition (before)",
                dataplane,
                lambda: metrics.exposition(dataplane, monitor),  # type: ignore[attr-defined]
                args.scrapes,
            )
            return 0
        for per_cache in (True, False):
            render = exposition(dataplane, monitor, per_cache=per_cache)
            label = f"--metrics-per-cache {'on' if per_cache else 'off'}"
            scenarios(label, dataplane, render, args.scrapes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
