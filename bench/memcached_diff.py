"""Differential check: the same requests to memcached builds and to cachier, replies diffed.

    python bench/memcached_diff.py --memcached /tmp/mc-build/memcached
    python bench/memcached_diff.py --memcached /tmp/mc-build/memcached --also /usr/bin/memcached
    python bench/memcached_diff.py --memcached /usr/bin/memcached --well-formed-only

Runs every case of ``tests/backend/differential.py`` (well-formed and malformed input) on
a fresh connection to each server: the memcached given by ``--memcached`` (the reference:
build the newest release from source), optionally other memcached binaries (``--also``),
and a cachier Service started in this process on loopback with a fresh tenant. Prints
every step whose replies differ, each server's reply on its own line.

Prints the steps where the memcached builds disagree (if ``--also`` is given), then every
step where cachier's reply differs from the reference's. Exit status: 0 if cachier agrees
with the reference everywhere, 1 if not (some differences are intended: bench/README.md
lists them), 2 on setup errors.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.backend.differential import (  # noqa: E402
    Server,
    bench_cases,
    compare,
    memcached,
    memcached_version,
    well_formed_cases,
)
from tests.conftest import CacheHandle, RunningService, make_config  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--memcached", required=True, help="the reference memcached binary")
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="PATH",
        help="another memcached binary to compare (repeatable)",
    )
    parser.add_argument(
        "--well-formed-only", action="store_true", help="skip the malformed-input cases"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    binaries = [args.memcached, *args.also]
    for binary in binaries:
        if not Path(binary).is_file():
            print(f"no such memcached binary: {binary}", file=sys.stderr)
            return 2
    cases = well_formed_cases() + ([] if args.well_formed_only else bench_cases())
    with ExitStack() as stack, tempfile.TemporaryDirectory() as data_dir:
        servers: list[Server] = []
        for index, binary in enumerate(binaries):
            version = memcached_version(binary).removeprefix("memcached ")
            name = f"mc-{version}" if index == 0 else f"also-{version}"
            servers.append(stack.enter_context(memcached(binary, name)))
        running = RunningService(make_config(Path(data_dir))).start()
        stack.callback(running.stop)
        handle = CacheHandle(running.create_cache("differential"))
        host, port = handle.endpoint
        servers.append(Server("cachier", host, port, handle.username, handle.password))
        reference, cachier = servers[0], servers[-1]
        releases = compare(servers[:-1], cases) if len(servers) > 2 else []
        differences = compare([reference, cachier], cases)
    if releases:
        print(f"== where the memcached builds disagree ({len(releases)} steps)")
        for difference in releases:
            print(difference.describe())
    print(f"== where cachier differs from {reference.name} ({len(differences)} steps)")
    for difference in differences:
        print(difference.describe())
    print(
        f"{len(cases)} cases; cachier differs from {reference.name} in {len(differences)} "
        f"steps; the memcached builds disagree in {len(releases)}"
    )
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
