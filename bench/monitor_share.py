#!/usr/bin/env python3
"""What sharing the leading monitor's results costs per probe interval (issue 14 item 5).

On PostgreSQL the leader writes every proxy's latest probe result in one statement each
interval (``save_probe_results``) and reads ``cluster_owners``; every other process reads
the lights (each cluster's newest incident) and the results (``Monitor.read_leader``).
This times those statements against a fresh database on the given server, for topologies
of ``--proxies`` proxies (3 per cluster), with ``--incidents`` rows of history.

    python bench/monitor_share.py --proxies 15 300 3000

Prints, per size, the median wall-clock milliseconds of the leader's write and of a
follower's read, and what that is per second at a 1 s probe interval.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from backend.control.postgres import PostgresRepository  # noqa: E402
from backend.control.repository import ProbeRow  # noqa: E402
from tests.conftest import postgres_database  # noqa: E402


def median_ms(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def leader_write(db: PostgresRepository, rows: list[ProbeRow]) -> None:
    db.owners()
    db.save_probe_results(rows)


def follower_read(db: PostgresRepository) -> None:
    db.last_incidents()
    db.probe_results()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxies", type=int, nargs="+", default=[15, 300, 3000])
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    for proxies in args.proxies:
        with postgres_database() as url:
            db = PostgresRepository(url)
            clusters = [f"c{i}" for i in range(max(1, proxies // 3))]
            with db.transaction():
                for i in range(args.incidents):
                    db.start_incident(clusters[i % len(clusters)], "green", "red", i, "x", "")
            rows = [
                ProbeRow(
                    f"proxy-{i}.{clusters[i // 3 % len(clusters)]}", "10.0.0.1:1", "up", 0.3, 0.3, 0
                )
                for i in range(proxies)
            ]

            write_ms = median_ms(lambda db=db, rows=rows: leader_write(db, rows), args.rounds)
            read_ms = median_ms(lambda db=db: follower_read(db), args.rounds)
            print(
                f"{proxies:5d} proxies, {len(clusters):4d} clusters, {args.incidents} incidents:"
                f" leader write {write_ms:6.2f} ms, follower read {read_ms:6.2f} ms per interval"
            )
            db.close()


if __name__ == "__main__":
    main()
