#!/usr/bin/env python3
"""What one analytics tick of 10 000 caches costs, tree against tree (issue 15 item 4).

For each ``--tree``, in alternating rounds, a subprocess with that tree on ``PYTHONPATH``
builds a data plane of ``--caches`` caches (as ``analytics_history.py`` does), samples it
``--ticks`` times with a fake clock, idle and then active (every cache's counters moving
each tick), and reports the CPU time of one ``sample()`` (median and mean: the mean counts
the ticks where chunks close and the collector runs, i.e. what the CPU share is made of).
Each tree runs its own ``backend`` (store, data plane, analytics) and its own
``bench/analytics_history.py`` (which puts its tree first on ``sys.path``), so the whole
sampling path is compared.

    python bench/sampling_tick.py --tree /tmp/gc-base --tree . --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


def measure(tree: Path, caches: int, ticks: int) -> dict[str, list[float]]:
    """In the child: ms per sample(), idle then active, of ``tree``'s code.

    ``analytics_history`` is the tree's own: it puts its tree first on ``sys.path``.
    """
    sys.path.insert(0, str(tree / "bench"))
    import analytics_history as ah  # noqa: PLC0415 - the tree under test

    from backend import analytics  # noqa: PLC0415

    if not Path(analytics.__file__).resolve().is_relative_to(tree):
        raise SystemExit(f"measured {analytics.__file__}, not {tree}")
    out: dict[str, list[float]] = {}
    for active in (False, True):
        plane = ah.dataplane(caches)
        clock = ah.Clock()
        sampler = analytics.Analytics(plane, clock=clock)
        engines = [plane.engine_for(c) for c in plane.caches.values()]
        # Trees since issue 15's idle ticks visit only the engines noted as changed: the
        # listener notes each read, so an active cache is noted here (an older tree has
        # no ``changes`` and finds them by reading every cache).
        changes = getattr(plane, "changes", None)
        times = []
        for _ in range(ticks + 10):
            if active:
                for engine in engines:
                    stats = engine.stats
                    stats.cmd_get += 4
                    stats.get_hits += 3
                    stats.get_misses += 1
                    stats.bytes_read += 100
                    if changes is not None:
                        changes.note(engine)
            clock.t += 1
            started = time.process_time()
            sampler.sample()
            times.append((time.process_time() - started) * 1000)
        out["active" if active else "idle"] = times[10:]  # past the first, cold ticks
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tree", type=Path, action="append", help="source tree (repeatable)")
    p.add_argument("--caches", type=int, default=10_000)
    p.add_argument("--ticks", type=int, default=140, help="ticks per measurement (140)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(measure(Path(os.environ["PYTHONPATH"]), args.caches, args.ticks)))
        return 0
    trees = [t.resolve() for t in (args.tree or [BENCH_DIR.parent])]
    results: dict[Path, dict[str, list[float]]] = {t: {"idle": [], "active": []} for t in trees}
    for _ in range(args.rounds):
        for tree in trees:
            child = subprocess.run(
                [sys.executable, __file__, "--child", "--caches", str(args.caches)]
                + ["--ticks", str(args.ticks)],
                env={**os.environ, "PYTHONPATH": str(tree)},
                capture_output=True,
                text=True,
                check=True,
            )
            for kind, values in json.loads(child.stdout).items():
                results[tree][kind] += values
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"| tree | idle median / mean ms | active median / mean ms | ({args.caches:,} caches)")
    print("| --- | --- | --- |")
    for tree, kinds in results.items():
        cells = [f"{statistics.median(v):.1f} / {statistics.mean(v):.1f}" for v in kinds.values()]
        print(f"| {tree.name} | {' | '.join(cells)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
