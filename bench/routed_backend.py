#!/usr/bin/env python3
"""``cachier-backend`` with a fixed route to a cluster another process runs, for
``dataplane.py --relay``.

Until cluster ownership is recorded in the database (issue 14 item 2), nothing tells a
process where the clusters it does not run are served. This launcher is the bench's way:
it runs the service exactly as ``cachier-backend`` does (same flags, uvloop, GC tuning,
SIGTERM to stop) and then fills ``DataPlane.remote_proxies`` from ``--route``.

    python bench/routed_backend.py --route local-b=127.0.0.1:7001,127.0.0.1:7002 -- \\
        --clusters local-a --database postgresql://... --api-port 8081 ...
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys


def parse_routes(values: list[str]) -> dict[str, list[str]]:
    routes: dict[str, list[str]] = {}
    for value in values:
        cluster, sep, addresses = value.partition("=")
        if not sep or not cluster or not addresses:
            raise SystemExit(f"routed_backend: --route {value!r}: give CLUSTER=HOST:PORT[,...]")
        routes[cluster] = [a for a in addresses.split(",") if a]
    return routes


async def serve(backend_args: list[str], routes: dict[str, list[str]]) -> None:
    from backend import cli
    from backend.service import Service

    config = cli.config_from_args(cli.build_parser().parse_args(backend_args))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    service = Service(config)
    listening = await service.start()
    assert service.dataplane is not None
    service.dataplane.remote_proxies.update(routes)
    print(cli.describe(config, listening, service.warnings), flush=True)
    print(f"  routes     {routes}", flush=True)
    cli._tune_gc()
    try:
        await stop.wait()
    finally:
        await service.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--route", action="append", default=[], metavar="CLUSTER=HOST:PORT,...")
    p.add_argument("backend_args", nargs=argparse.REMAINDER, help="cachier-backend flags")
    args = p.parse_args()
    backend_args = args.backend_args[1:] if args.backend_args[:1] == ["--"] else args.backend_args
    from backend import cli

    cli._install_uvloop()
    asyncio.run(serve(backend_args, parse_routes(args.route)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
