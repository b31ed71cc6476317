#!/usr/bin/env python3
"""What a full cache costs in memory, against its plan's limit, for each value size.

For every value size a fresh ``cachier-backend`` gets one cache of ``--plan`` (the free
plan, 25 MB, by default), which is filled through its memcache endpoint (pipelined ASCII
``set … noreply``) with twice as many items as its limit can hold, so it is full and
evicting. The backend's RSS growth from before the fill to after it, divided by the plan's
limit, is the figure: 1.0 would mean a cache costs exactly what its plan says.

    python bench/memory_per_plan.py                      # sizes 1 B .. 100 KB
    python bench/memory_per_plan.py --sizes 10,1000 --json

All traffic stays on 127.0.0.1; the backend and its temp dir are removed on exit.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx
from fill import fill
from processes import (
    BenchError,
    free_ports,
    rss_bytes,
    run_process,
    unwind_on_sigterm,
    wait_for_health,
)

TOKEN = "bench-memory-token"
KEY_LEN = 12  # "k:" + a 10-digit number: a typical short application key
PIPELINE = 512  # sets per write


def measure(value_size: int, plan: str, workdir: Path) -> dict[str, float]:
    api_port, endpoint_port = free_ports(2)
    log = workdir / f"backend-{value_size}.log"
    data_dir = workdir / f"d{value_size}"
    command = [
        sys.executable,
        "-m",
        "backend.cli",
        "--data-dir",
        str(data_dir),
        "--api-port",
        str(api_port),
        "--endpoint-port",
        str(endpoint_port),
        "--admin-token",
        TOKEN,
        "--sample-interval",
        "60",
        "--probe-interval",
        "5",
    ]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with (
        run_process(command, log, cwd=Path(__file__).resolve().parent.parent) as proc,
        httpx.Client(base_url=f"http://127.0.0.1:{api_port}", headers=headers, timeout=30) as api,
    ):
        wait_for_health(proc, log, api)
        cache = api.post("/api/v1/admin/caches", json={"name": "full", "plan": plan}).json()
        limit = cache["memory_limit"]
        credential = cache["credentials"][0]
        time.sleep(0.5)
        before = rss_bytes(proc.pid)
        accounted_per_item = KEY_LEN + value_size + 50  # at least twice what fits
        count = max(2 * limit // accounted_per_item, 100)
        started = time.monotonic()
        fill(
            cache["servers"],
            credential["username"],
            credential["password"],
            value_size,
            count,
            pipeline=PIPELINE,
            timeout_s=30,
        )
        elapsed = time.monotonic() - started
        usage = api.get(f"/api/v1/admin/caches/{cache['id']}").json()["usage"]
        after = rss_bytes(proc.pid)
    return {
        "value_size": value_size,
        "limit_mb": limit / 1e6,
        "items": usage["items"],
        "accounted_mb": usage["memory_used"] / 1e6,
        "rss_growth_mb": (after - before) / 1e6,
        "ratio": (after - before) / limit,
        "fill_s": elapsed,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--sizes",
        default="1,10,100,1000,10000,100000",
        help="value sizes in bytes, comma-separated",
    )
    p.add_argument("--plan", default="free")
    p.add_argument("--json", action="store_true", help="results as JSON on stdout")
    args = p.parse_args(argv)
    unwind_on_sigterm()
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="cachier-memory-") as tmp:
            for size in (int(s) for s in args.sizes.split(",")):
                rows.append(measure(size, args.plan, Path(tmp)))
    except BenchError as exc:
        print(f"memory_per_plan: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(
        f"{'value B':>8} {'items':>9} {'accounted MB':>13} {'RSS growth MB':>14} "
        f"{'RSS / plan':>10} {'fill s':>7}"
    )
    for r in rows:
        print(
            f"{r['value_size']:>8} {r['items']:>9} {r['accounted_mb']:>13.1f} "
            f"{r['rss_growth_mb']:>14.1f} {r['ratio']:>10.2f} {r['fill_s']:>7.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
