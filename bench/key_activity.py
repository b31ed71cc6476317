#!/usr/bin/env python3
"""What the Keys view costs the hot path: a real ``commands.get`` / ``commands.store``
through a real session and engine, with sampling off (what every cache pays) and on
(only while its owner's Keys view is open), and the sketch's memory.

    python bench/key_activity.py                 # this tree: off vs on, ns per command
    OLD='env PYTHONPATH=/old/tree python bench/key_activity.py --ops 300000 --off-only'
    farm-bench --vs "$OLD" -- env PYTHONPATH=. python bench/key_activity.py \\
        --ops 300000 --off-only

The second form compares the hook's cost with a tree without it, as whole processes.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.activity import CredentialActivity  # noqa: E402
from backend.control.models import Credential  # noqa: E402
from backend.engine import Mode  # noqa: E402
from backend.protocol import commands  # noqa: E402
from backend.session import AuthenticatedSession  # noqa: E402
from backend.store import LruEngine  # noqa: E402
from backend.topology import default_topology  # noqa: E402


def session() -> AuthenticatedSession:
    proxy = default_topology().proxies()[0]
    engine = LruEngine("c0", 64 << 20)
    credential = Credential("u", b"p", "c0")
    activity = CredentialActivity(time.monotonic())
    return AuthenticatedSession(credential, engine, proxy, "127.0.0.1", None, activity)  # type: ignore[arg-type]


def run(ops: int, tracked: bool, distinct: int) -> float:
    """ns per command: 90 % gets (half hits), 10 % sets over ``distinct`` keys."""
    s = session()
    if tracked:
        from backend.keyactivity import KeyActivity

        s.engine.key_activity = KeyActivity(time.monotonic())  # type: ignore[attr-defined]
    keys = [f"user:{i}".encode() for i in range(distinct)]
    value = b"x" * 100
    for key in keys[: distinct // 2]:
        commands.store(s, Mode.SET, key, value, 0, 0)
    gc.disable()
    started = time.perf_counter_ns()
    for i in range(ops):
        key = keys[(i * 7919) % distinct]
        if i % 10 == 0:
            commands.store(s, Mode.SET, key, value, 0, 0)
        else:
            commands.get(s, key)
    elapsed = time.perf_counter_ns() - started
    gc.enable()
    return elapsed / ops


def sketch_bytes(distinct: int) -> int:
    """Memory of one tracked cache's activity after a busy minute over ``distinct`` keys."""
    from backend.keyactivity import KeyActivity

    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    activity = KeyActivity(time.monotonic())
    for i in range(200_000):
        key = f"user:{(i * 7919) % distinct}:profile".encode()
        activity.get(key, True) if i % 10 else activity.set(key, 100)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    return sum(stat.size_diff for stat in after.compare_to(before, "filename"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--ops", type=int, default=500_000)
    p.add_argument("--distinct", type=int, default=10_000, help="distinct keys (default 10 000)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--off-only", action="store_true", help="only the untracked path")
    args = p.parse_args()
    if args.off_only:
        run(args.ops, False, args.distinct)
        return
    off, on = [], []
    for _ in range(args.rounds):  # interleaved, so drift hits both
        off.append(run(args.ops, False, args.distinct))
        on.append(run(args.ops, True, args.distinct))
    best_off, best_on = min(off), min(on)
    print(f"| path | ns per command (best of {args.rounds}) |")
    print("|---|---|")
    print(f"| sampling off (every cache, always) | {best_off:.0f} |")
    print(f"| sampling on (Keys view open) | {best_on:.0f} ({best_on / best_off - 1:+.1%}) |")
    print(
        f"\nsketch memory after 200 000 commands over {args.distinct} keys: "
        f"{sketch_bytes(args.distinct) / 1024:.1f} KiB per tracked cache"
    )


if __name__ == "__main__":
    main()
