#!/usr/bin/env python3
"""What timing every read costs the hot path (issue 16 item 5): a tree without it
(``--before``) against this one, as whole read handlers.

Each measurement runs ``MemcacheProtocol.data_received`` itself, on a connection logged in
to a cache of a real data plane, with a stand-in transport that only keeps what is
written (no socket; the event loop runs but nothing waits on it): 90 % ``get`` (half of
them hits), 10 % ``set``, one command a read, as memcaslap sends them. Everything a read
costs but the kernel's part. Timed in CPU time of the thread (``time.thread_time_ns``), so
what else a shared machine runs is not counted.

The trees run in turns, each in a fresh process with its ``PYTHONPATH``, ``--rounds``
times (A B A B ...), so drift on the machine hits both; the table gives each tree's
median ns per read and the after/before ratio of the medians and of each pair.

    git archive main | tar -x -C /tmp/cachier-main      # a tree without the timing
    python bench/latency_cost.py --before /tmp/cachier-main --rounds 20
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from one_cache import LOGIN, one_cache_dataplane

REPO_ROOT = Path(__file__).resolve().parent.parent


class Transport:
    """What the protocol needs of an asyncio transport; writes are counted, not sent."""

    def __init__(self) -> None:
        self.written = 0
        self.closing = False

    def get_extra_info(self, name: str) -> object:
        return ("127.0.0.1", 40000) if name == "peername" else None

    def set_write_buffer_limits(self, high: int) -> None:
        pass

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def measure(reads: int, per_second: int) -> float:
    """ns of CPU per read through ``data_received`` (run with the tree on ``sys.path``).
    Every ``per_second`` reads, what analytics does each second where it exists (the
    latency window taken, which sets how many reads are timed): the cache answers that
    many reads a second."""
    from backend.listeners import MemcacheProtocol

    dataplane, cluster = one_cache_dataplane()
    transport = Transport()
    protocol = MemcacheProtocol(dataplane, cluster.region, 60.0)
    protocol.connection_made(transport)  # type: ignore[arg-type]
    protocol.data_received(LOGIN)
    # Logged in: the hot path is bound (``engine`` since issue 15's change log, before it
    # ``counters``).
    bound = getattr(protocol, "engine", None) or getattr(protocol, "counters", None)
    assert bound is not None, "the login failed"
    distinct = 1000
    gets = [b"get user:%d\r\n" % i for i in range(distinct)]
    sets = [b"set user:%d 0 0 100\r\n%s\r\n" % (i, b"x" * 100) for i in range(distinct)]
    for i in range(0, distinct, 2):
        protocol.data_received(sets[i])
    receive = protocol.data_received
    latency = getattr(protocol, "latency", None)  # None: a tree without the timing
    for i in range(per_second):  # a second of traffic first, as a running service has had
        k = (i * 7919) % distinct
        receive(sets[k] if i % 10 == 0 else gets[k])
    if latency is not None:
        latency.take()
    gc.collect()
    gc.disable()
    started = time.thread_time_ns()
    for i in range(reads):
        k = (i * 7919) % distinct
        receive(sets[k] if i % 10 == 0 else gets[k])
        if latency is not None and i % per_second == per_second - 1:
            latency.take()
    elapsed = time.thread_time_ns() - started
    gc.enable()
    assert transport.written and not transport.closing
    return elapsed / reads


def one(tree: Path, reads: int, per_second: int) -> float:
    """ns per read of ``tree``, in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, __file__, "--measure", "--reads", str(reads)]
    command += ["--per-second", str(per_second)]
    out = subprocess.run(command, env=env, cwd=tree, check=True, capture_output=True, text=True)
    return float(out.stdout.strip())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", type=Path, help="a tree without the timing (e.g. main's)")
    p.add_argument("--rounds", type=int, default=10, help="measurements per tree (default 10)")
    p.add_argument("--reads", type=int, default=200_000, help="reads per measurement")
    p.add_argument(
        "--per-second",
        type=int,
        default=40_000,
        help="the cache's reads a second, as analytics sees them (default 40 000, about "
        "what memcaslap drives in bench/dataplane.py; 1 000 or less: every read is timed)",
    )
    p.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.measure:
        print(asyncio.run(measure(args.reads, args.per_second)))
        return 0
    if args.before is None or not (args.before / "backend" / "listeners.py").is_file():
        p.error("--before TREE: a checkout with backend/listeners.py")
    before: list[float] = []
    after: list[float] = []
    for round_no in range(1, args.rounds + 1):
        before.append(one(args.before.resolve(), args.reads, args.per_second))
        after.append(one(REPO_ROOT, args.reads, args.per_second))
        print(f"round {round_no}: before {before[-1]:.0f} ns, after {after[-1]:.0f} ns", flush=True)
    pairs = [a / b for a, b in zip(after, before, strict=True)]
    b, a = statistics.median(before), statistics.median(after)
    print(f"\n{args.per_second} reads a second")
    print(f"\n| tree | ns per read (median of {args.rounds}) |\n|---|---|")
    print(f"| before ({args.before}) | {b:.0f} |\n| after (this tree) | {a:.0f} |")
    print(
        f"\nafter/before: {a / b:.3f} (medians); per pair median {statistics.median(pairs):.3f}, "
        f"min {min(pairs):.3f}, max {max(pairs):.3f}; load average {os.getloadavg()[0]:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
