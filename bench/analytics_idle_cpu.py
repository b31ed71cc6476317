#!/usr/bin/env python3
"""Idle CPU of a backend with many caches (issue 15, item 4: sampling them costs <= 3 %).

For each source tree (``--tree``; default: the revision before the compressed analytics,
exported to a temp dir with ``git archive``, and this tree), start a fresh
``cachier-backend`` from it, create ``--caches`` free caches through the admin API, let it
settle, then read the process's CPU time (``/proc/<pid>/stat``: user + system) over
``--seconds`` with no traffic at all. What an idle backend does then is the status
monitor's probes and analytics sampling every cache each second (on the control thread),
so the difference between two trees of the same code but ``backend/analytics.py`` is the
sampling. Trees alternate for ``--rounds`` rounds in one invocation: same machine, same load.

    python bench/analytics_idle_cpu.py --caches 1000 10000
    python bench/analytics_idle_cpu.py --tree /tmp/old --tree . --caches 10000 --seconds 60

Everything listens on 127.0.0.1; backends and temp dirs are removed on exit.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from loop_stall import create_caches
from processes import BenchError, free_ports, rss_bytes, run_process, wait_for_health

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
BEFORE = "2ad7645"  # the last commit before the compressed analytics history


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    tree: Path, caches: int, seconds: float, settle: float, workdir: Path, interval: float
) -> dict:
    api_port, endpoint_port = free_ports(2)
    token = secrets.token_urlsafe(16)
    cmd = [
        *(sys.executable, "-m", "backend.cli", "--data-dir", str(workdir / f"data-{api_port}")),
        *("--host", HOST, "--api-port", str(api_port), "--endpoint-port", str(endpoint_port)),
        *(f"--admin-token={token}", "--sample-interval", str(interval)),
    ]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    api = f"http://{HOST}:{api_port}"
    log = workdir / f"backend-{api_port}.log"
    with run_process(cmd, log, cwd=tree, env=env) as proc, httpx.Client(base_url=api) as client:
        wait_for_health(proc, log, client)
        _, create_s = create_caches(api, token, caches)
        time.sleep(settle)
        cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(seconds)
        cpu1, t1 = cpu_seconds(proc.pid), time.monotonic()
        return {
            "tree": str(tree),
            "caches": caches,
            "sample_interval": interval,
            "create_s": round(create_s, 1),
            "idle_cpu_pct": round(100 * (cpu1 - cpu0) / (t1 - t0), 2),
            "rss_mb": round(rss_bytes(proc.pid) / 2**20, 1),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tree", type=Path, action="append", help="source trees to compare")
    parser.add_argument("--caches", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--seconds", type=float, default=30.0, help="idle CPU measured over")
    parser.add_argument("--settle", type=float, default=5.0, help="wait after creating")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also run the last tree with --sample-interval 60: everything but sampling",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="analytics-idle-") as tmp:
        workdir = Path(tmp)
        trees = args.tree
        if not trees:
            before = workdir / "before"
            before.mkdir()
            archive = subprocess.run(
                ["git", "-C", str(REPO_ROOT), "archive", BEFORE], check=True, capture_output=True
            ).stdout
            subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)
            trees = [before, REPO_ROOT]
        results = []
        try:
            for caches in args.caches:
                for _ in range(args.rounds):
                    runs = [(tree, 1.0) for tree in trees]
                    if args.baseline:
                        runs.append((trees[-1], 60.0))
                    for tree, interval in runs:
                        result = measure(tree, caches, args.seconds, args.settle, workdir, interval)
                        print(result, flush=True)
                        results.append(result)
        except BenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    print(f"\n{'tree':40} {'caches':>7} {'idle CPU':>9} {'RSS':>9}")
    for r in results:
        print(
            f"{r['tree'][-40:]:40} {r['caches']:7} {r['idle_cpu_pct']:8.2f}% {r['rss_mb']:7.1f}MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
