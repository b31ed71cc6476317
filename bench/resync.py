"""How long a process re-reads the control plane after losing its LISTEN connection.

While it re-reads, the process refuses new memcache logins (``ControlLink``), so this is
the length of that window after a reconnect. Creates ``--caches`` caches (each with its
primary credential and app) in a fresh PostgreSQL database through a real
``ControlPlane``, then times, on a second control plane that loaded them (as a running
process has): ``Follower.resync`` with nothing changed, and with every cache's
capabilities changed behind its back (one event per cache to publish).

    python bench/resync.py                  # 2000 caches
    python bench/resync.py --caches 10000
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend.control.database import open_repository, parse_database_url  # noqa: E402
from backend.control.follow import Follower  # noqa: E402
from backend.control.plane import ControlPlane  # noqa: E402
from backend.control.secrets import Secrets  # noqa: E402
from backend.dataplane import DataPlane  # noqa: E402
from backend.events import EventBus  # noqa: E402
from backend.throttle import AuthThrottle  # noqa: E402
from backend.topology import default_topology  # noqa: E402


def plane(url: str, data_dir: Path) -> ControlPlane:
    topology = default_topology()
    repository = open_repository(parse_database_url(url), data_dir)
    bus = EventBus()
    dataplane = DataPlane(topology, AuthThrottle())
    dataplane.subscribe(bus)
    return ControlPlane(repository, Secrets.load_or_create(data_dir), topology, bus, dataplane)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--caches", type=int, default=2000)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    name = f"cachier_bench_{secrets.token_hex(4)}"
    with psycopg.connect(args.postgres, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = args.postgres.rsplit("/", 1)[0] + "/" + name
    try:
        with tempfile.TemporaryDirectory() as tmp:
            writer = plane(url, Path(tmp))
            start = time.perf_counter()
            for i in range(args.caches):
                writer.create_cache(f"bench-{i}", "100mb")
            created = time.perf_counter() - start
            reader = plane(url, Path(tmp))
            start = time.perf_counter()
            reader.load()
            loaded = time.perf_counter() - start
            follower = Follower(reader)
            follower.resync()  # the first one reads every drain token once
            start = time.perf_counter()
            follower.resync()
            unchanged = time.perf_counter() - start
            for cache in writer.list_caches():
                writer.set_capabilities(cache, cache.primary().username, False, None)
            start = time.perf_counter()
            follower.resync()
            changed = time.perf_counter() - start
            if any(c.write for c in reader.credentials.values()):
                raise SystemExit("resync missed a change")
            writer.repository.close()
            reader.repository.close()
    finally:
        with psycopg.connect(args.postgres, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    print(f"{args.caches} caches (created in {created:.1f} s)")
    print(f"  load at start            {loaded * 1000:8.1f} ms")
    print(f"  resync, nothing changed  {unchanged * 1000:8.1f} ms")
    print(f"  resync, all changed      {changed * 1000:8.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
