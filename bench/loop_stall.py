#!/usr/bin/env python3
"""Loop stall: memcache ``get`` latency while the control plane is busy (issue 15, item 1).

For each source tree given (``--tree``, e.g. the branch before and after a change), start a
fresh ``cachier-backend`` from that tree, create ``--caches`` caches through the admin API,
then for ``--seconds``:

* one authenticated memcache connection (ASCII, on a region endpoint) has a ``get`` due
  every 2 ms and times each answer from when it was due (this process, one thread,
  nothing else running in it; the service time alone is shown beside it);
* another process scrapes ``GET /metrics`` every 5 s, polls
  ``GET /api/v1/admin/caches?limit=50`` every second (what the dashboard's Caches page
  does; a backend without paging answers the whole list) and one cache's dashboard
  ``stats`` every second, each re-armed after the previous answer, bodies read but never
  parsed (``control_load.py``, shared with ``scale.py``).

A quiet window (``--quiet-seconds``, the same connection, no HTTP load) comes first.
Trees run one after the other in the same invocation, so the machine is the same.

    python bench/loop_stall.py --tree /tmp/cachier-main --tree . --caches 10000 --seconds 60
    python bench/loop_stall.py --caches 1000 --seconds 20        # this tree only, quicker

All traffic stays on 127.0.0.1; every backend and temp dir is removed on exit.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
from control_load import HOST, Getter, backend_command, create_caches, summary, under_load
from processes import BenchError, free_ports, run_process, unwind_on_sigterm, wait_for_health

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    tree: str
    caches: int
    create_s: float
    quiet: dict[str, float]
    loaded: dict[str, float]
    loaded_service: dict[str, float]
    metrics_ms: dict[str, float] = field(default_factory=dict)
    list_ms: dict[str, float] = field(default_factory=dict)
    stats_ms: dict[str, float] = field(default_factory=dict)


def run_tree(tree: Path, args: argparse.Namespace, workdir: Path) -> Result:
    api_port, endpoint_port = free_ports(2)
    token = secrets.token_urlsafe(16)
    data = workdir / f"data-{tree.name or 'tree'}-{api_port}"
    log = workdir / f"backend-{api_port}.log"
    cmd = backend_command(data, api_port, endpoint_port, token)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    api = f"http://{HOST}:{api_port}"
    with run_process(cmd, log, cwd=tree, env=env) as proc, httpx.Client(base_url=api) as client:
        wait_for_health(proc, log, client)
        first, create_s = create_caches(api, token, args.caches)
        credential = first["credentials"][0]
        getter = Getter(first["servers"], credential["username"], credential["password"])
        getter.run(1.0)  # warm up
        quiet, _ = getter.run(args.quiet_seconds)
        loaded, loaded_service, timings = under_load(
            getter, api, token, first["dashboard_url"], args.seconds
        )
        getter.close()
    return Result(
        str(tree),
        args.caches,
        round(create_s, 1),
        summary(quiet),
        summary(loaded),
        summary(loaded_service),
        summary(timings["metrics"]),
        summary(timings["list"]),
        summary(timings["stats"]),
    )


def table(results: list[Result]) -> str:
    rows = [
        (
            "tree",
            "get quiet p50/p99/max ms",
            "get loaded p50/p99/max ms",
            "(service time only)",
            "/metrics p50/max ms",
            "admin list p50/max ms",
            "stats p50/max ms",
        )
    ]

    def three(s: dict[str, float]) -> str:
        return f"{s.get('p50', 0):.2f} / {s.get('p99', 0):.2f} / {s.get('max', 0):.1f}"

    def two(s: dict[str, float]) -> str:
        return f"{s.get('p50', 0):.0f} / {s.get('max', 0):.0f} (n={s.get('n', 0)})"

    for r in results:
        rows.append(
            (
                r.tree,
                three(r.quiet),
                three(r.loaded),
                three(r.loaded_service),
                two(r.metrics_ms),
                two(r.list_ms),
                two(r.stats_ms),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--tree",
        type=Path,
        action="append",
        help="a cachier source tree to run (repeatable; default: this one)",
    )
    p.add_argument("--caches", type=int, default=10_000)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--quiet-seconds", type=float, default=10.0)
    p.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = p.parse_args(argv)
    unwind_on_sigterm()
    trees = [t.resolve() for t in (args.tree or [REPO_ROOT])]
    results = []
    with tempfile.TemporaryDirectory(prefix="cachier-stall-") as tmp:
        for tree in trees:
            print(
                f"{tree}: {args.caches} caches, {args.seconds:.0f} s under load ...",
                file=sys.stderr,
                flush=True,
            )
            try:
                results.append(run_tree(tree, args, Path(tmp)))
            except BenchError as exc:
                print(f"loop_stall: {tree}: {exc}", file=sys.stderr)
                return 1
            print(f"  created in {results[-1].create_s} s", file=sys.stderr, flush=True)
    print(table(results))
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
