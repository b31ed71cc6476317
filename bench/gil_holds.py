#!/usr/bin/env python3
"""How long single GIL holds on the control side last, timed directly, in one process.

``loop_stall.py`` measures the whole service over sockets, where a shared 2-core machine's
scheduling noise (quiet p99 of 4-13 ms, single gaps of ~20 ms while other work runs)
hides effects of a few milliseconds. A thread gives the GIL back every switch interval
(1 ms) except inside a single C call or a cyclic GC collection, which keep it to the end:
so the length of those is the serving loop's stall. This times them directly, scenarios
alternating in rounds so the machine's noise falls on each alike:

* ``/metrics body joined``: what a scrape of 10 000 caches did before (15 per-cache
  blocks of 10 000 lines, ~11 MB here: ``b"".join`` of the blocks, then ``+`` the alerts'
  series: two copies, each one C call). Now the blocks are written one by one: no copy.
* ``gc young N``: each collection's pause (``gc.callbacks``) under the analytics
  sampler's allocation pattern (one 17-field tuple per cache per sample, kept in rings)
  with ``cli``'s old (50 000) and new (5 000) young-generation threshold.

    python bench/gil_holds.py                 # 5 rounds
    python bench/gil_holds.py --rounds 9
"""

from __future__ import annotations

import argparse
import collections
import gc
import os
import statistics
import sys
import time

CACHES = 10_000
FAMILIES = 15
RING = 30  # samples kept per cache (the service keeps 900; fewer keeps this bench small)
SAMPLES = 20  # samples per round and threshold


def exposition_blocks() -> list[bytes]:
    return [
        "".join(
            f'cachier_cache_family{f}_total{{cache="bench-{i:05d}",cluster="local-a"}} {i}\n'
            for i in range(CACHES)
        ).encode()
        for f in range(FAMILIES)
    ]


def joined(blocks: list[bytes], alerts: bytes) -> float:
    """ms for the old body: join, then append the alerts' series."""
    started = time.perf_counter()
    body = b"".join(blocks) + alerts
    elapsed = (time.perf_counter() - started) * 1000
    del body
    return elapsed


def young_pauses(young: int) -> list[float]:
    """ms of each collection while sampling ``SAMPLES`` times at this threshold."""
    pauses: list[float] = []
    started = [0.0]

    def timed(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append((time.perf_counter() - started[0]) * 1000)

    old = gc.get_threshold()
    rings = [collections.deque(maxlen=RING) for _ in range(CACHES)]
    gc.collect()
    gc.set_threshold(young, 10, 100)
    gc.callbacks.append(timed)
    try:
        for t in range(SAMPLES):
            for ring in rings:
                ring.append((float(t), 1, 2, 3, 4, None, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10))
    finally:
        gc.callbacks.remove(timed)
        gc.set_threshold(*old)
    return pauses


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    blocks = exposition_blocks()
    alerts = b"# HELP cachier_alert_firing x\n"
    gc.freeze()
    results: dict[str, list[float]] = {
        "/metrics body joined": [],
        "gc young 50000": [],
        "gc young 5000": [],
    }
    for _ in range(args.rounds):
        for _ in range(5):
            results["/metrics body joined"].append(joined(blocks, alerts))
            time.sleep(0.02)
        results["gc young 50000"] += young_pauses(50_000)
        results["gc young 5000"] += young_pauses(5_000)
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'GIL held by':21} | n    | median ms | max ms")
    for name, values in results.items():
        print(
            f"{name:21} | {len(values):4} | {statistics.median(values):9.2f} | {max(values):6.2f}"
        )
    print(f"body: {sum(map(len, blocks)) / 1e6:.1f} MB in {len(blocks)} blocks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
