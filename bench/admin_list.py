#!/usr/bin/env python3
"""Admin list: what one ``GET /api/v1/admin/caches`` costs with many caches (issue 15, item 3).

One data directory is seeded with ``--caches`` free caches, created in-process through the
control plane (3 ms each; the admin API is slower per cache and measures nothing here),
by this tree's code. Then, for each source tree given (``--tree``, e.g. the branch before
and after the list learnt to page), a ``cachier-backend`` from that tree serves that data
directory, and each request below is timed ``--repeat`` times (client-side wall time,
body read):

* ``list``: the list as the Caches page asks for it (no parameters): every cache before
  paging, the first page (100) after;
* ``page 40``: ``?limit=40``, what the dashboard's Caches page asks per refresh at 80×24;
* ``q``: ``?q=bench-0999`` (a filter matching 10 caches in 10 000);
* ``middle``: the page after the middle of the list, by cursor;
* ``walk``: every page, ``limit=1000``, one after the other (the whole list, paged).

With ``--stall-seconds S``, one authenticated memcache connection also has a ``get`` due
every 2 ms (``loop_stall.Getter``: latency from when it was due), first quiet, then for S
seconds while another process polls the list once a second as that tree's Caches page
does: the whole list before paging, ``?limit=40`` (an 80×24 screen and its margin) after.

A tree whose list answers a plain JSON array (before paging) is timed for ``list`` only.
In-process, this tree's index is also timed alone (sort position and filter of
``--caches`` names), without HTTP or encoding.

    git archive <before> | tar -x -C /tmp/before
    python bench/admin_list.py --tree /tmp/before --tree . --caches 10000
    python bench/admin_list.py --data-dir /tmp/list-10k ...  # seed once, reuse after

All traffic stays on 127.0.0.1; the backends and the temp dir go on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from control_load import backend_command
from loop_stall import Getter
from loop_stall import summary as latency_summary
from processes import BenchError, free_ports, run_process, unwind_on_sigterm, wait_for_health

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
HOST = "127.0.0.1"
SETTLE_S = 20.0  # after start-up, before gets are timed: the same for every tree


def seed(data_dir: Path, token: str, count: int) -> float:
    """``count`` caches in ``data_dir``, through this tree's control plane; seconds taken."""
    from backend.config import Config
    from backend.service import Service

    async def main() -> float:
        config = Config(data_dir=data_dir, api_port=0, endpoint_port=0, admin_token=token)
        service = Service(config)
        await service.start()
        control = service.control
        assert control is not None

        def create() -> None:
            for i in range(count):
                control.create_cache(f"bench-{i:05d}", "free")

        started = time.perf_counter()
        await service.control_thread.call(create)
        elapsed = time.perf_counter() - started
        await service.stop()
        return elapsed

    return asyncio.run(main())


def timed(client: httpx.Client, repeat: int, **params: str | int) -> tuple[list[float], dict]:
    times, body = [], {}
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get("/api/v1/admin/caches", params=params)
        content = response.content
        times.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise BenchError(f"GET /api/v1/admin/caches {params}: HTTP {response.status_code}")
        body = {"json": response.json(), "bytes": len(content)}
    return times, body


def summary(times: list[float], body: dict) -> str:
    ms = sorted(t * 1e3 for t in times)
    return (
        f"{statistics.median(ms):7.1f} {ms[-1]:7.1f}  {body['bytes'] / 1024:8.0f} KiB"
        if body
        else ""
    )


def poll_list(api: str, token: str, params: dict, seconds: float) -> None:
    """The Caches page's poll: the list once a second, body read (another process)."""
    headers = {"Authorization": f"Bearer {token}"}
    stop_at = time.monotonic() + seconds
    with httpx.Client(base_url=api, headers=headers, timeout=60) as client:
        while time.monotonic() < stop_at:
            started = time.monotonic()
            client.get("/api/v1/admin/caches", params=params).read()
            time.sleep(max(0.0, min(1.0 - (time.monotonic() - started), stop_at - started)))


def stall(api: str, token: str, first: dict, params: dict, seconds: float) -> dict[str, str]:
    """memcache ``get`` latency (from when each was due, one every 2 ms) while the list is
    polled as that tree's Caches page polls it, and in a quiet window before."""
    time.sleep(SETTLE_S)  # a backend just started is still warming up (analytics, monitor)
    credential = first["credentials"][0]
    getter = Getter(first["servers"], credential["username"], credential["password"])
    getter.run(1.0)  # warm up
    quiet, _ = getter.run(min(seconds, 10.0))
    poller = multiprocessing.Process(target=poll_list, args=(api, token, params, seconds))
    poller.start()
    loaded, _ = getter.run(seconds)
    poller.join(60)
    rows = {}
    for name, values in (("get quiet", quiet), ("get+poll", loaded)):
        s = latency_summary(values)
        rows[name] = f"p50 {s['p50']:.2f}  p99 {s['p99']:.2f}  max {s['max']:.1f} ms"
    return rows


def measure_tree(
    tree: Path, data: Path, token: str, repeat: int, workdir: Path, stall_s: float
) -> dict:
    api_port, endpoint_port = free_ports(2)
    log = workdir / f"backend-{api_port}.log"
    cmd = backend_command(data, api_port, endpoint_port, token)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    api = f"http://{HOST}:{api_port}"
    headers = {"Authorization": f"Bearer {token}"}
    rows: dict[str, str] = {}
    with (
        run_process(cmd, log, cwd=tree, env=env) as proc,
        httpx.Client(base_url=api, headers=headers, timeout=120) as client,
    ):
        wait_for_health(proc, log, client)
        timed(client, 2)  # warm up
        times, body = timed(client, repeat)
        rows["list"] = summary(times, body)
        paged = not isinstance(body["json"], list)
        if stall_s:  # as the tree's own Caches page polls: everything, or the screen's rows
            first = body["json"]["items"][0] if paged else body["json"][0]
            rows |= stall(api, token, first, {"limit": 40} if paged else {}, stall_s)
        if not paged:
            return rows
        rows["page 40"] = summary(*timed(client, repeat, limit=40))
        rows["q"] = summary(*timed(client, repeat, q="bench-0999"))
        cursor, passed = None, 0
        while passed < body["json"]["total"] // 2:  # to the middle, a page at a time
            step = min(1000, body["json"]["total"] // 2 - passed)
            _, walk_to = timed(client, 1, limit=step, **({"cursor": cursor} if cursor else {}))
            cursor, passed = walk_to["json"]["next_cursor"], passed + step
        rows["middle"] = summary(*timed(client, repeat, cursor=cursor))
        walks = []
        for _ in range(max(1, repeat // 5)):
            started, params, size = time.perf_counter(), {"limit": 1000}, 0
            while True:
                page = client.get("/api/v1/admin/caches", params=params)
                size += len(page.content)
                cursor = page.json()["next_cursor"]
                if cursor is None:
                    break
                params["cursor"] = cursor
            walks.append(time.perf_counter() - started)
        rows["walk"] = summary(walks, {"bytes": size})
    return rows


def index_timings(count: int) -> dict[str, float]:
    """This tree's index alone: ms per page lookup, per filtered page, per insert."""
    from backend.control.listing import CacheIndex, encode_cursor
    from backend.control.models import Cache

    caches = {
        f"c{i:010d}": Cache(f"c{i:010d}", f"bench-{i:05d}", "free", "local", "local-a", "", "", "")
        for i in range(count)
    }
    index = CacheIndex()
    started = time.perf_counter()
    for cache in caches.values():
        index.add(cache)
    add = (time.perf_counter() - started) / count
    middle = encode_cursor((f"bench-{count // 2:05d}", f"c{count // 2:010d}"))

    def each(fn, n: int = 50) -> float:
        started = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - started) / n * 1e3

    return {
        "add one cache (µs)": add * 1e6,
        "first page of 100 (ms)": each(lambda: index.page(caches)),
        "page after the middle (ms)": each(lambda: index.page(caches, cursor=middle)),
        "q matching 10 (ms)": each(lambda: index.page(caches, q="bench-0999")),
        "q matching none (ms)": each(lambda: index.page(caches, q="nothing")),
        "q matching all (ms)": each(lambda: index.page(caches, q="bench")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", type=Path, help="source tree (repeatable)")
    parser.add_argument("--caches", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument(
        "--stall-seconds",
        type=float,
        default=0.0,
        help="also time memcache gets this long while the list is polled (0: skip)",
    )
    parser.add_argument(
        "--data-dir", type=Path, help="seeded here if it does not exist, reused if it does"
    )
    args = parser.parse_args()
    trees = args.tree or [REPO_ROOT]
    unwind_on_sigterm()
    token = "bench-admin-list"  # loopback only; kept with a reused --data-dir
    with tempfile.TemporaryDirectory(prefix="admin-list-") as tmp:
        workdir = Path(tmp)
        data = args.data_dir or workdir / "data"
        if not data.exists():
            seconds = seed(data, token, args.caches)
            print(f"{args.caches} caches seeded in {seconds:.1f} s\n", flush=True)
        print(f"{'tree':<28} {'request':<8} {'p50 ms':>7} {'max ms':>7}  {'body':>12}")
        for tree in trees:
            rows = measure_tree(tree, data, token, args.repeat, workdir, args.stall_seconds)
            for name, row in rows.items():
                print(f"{str(tree):<28} {name:<8} {row}", flush=True)
    print(f"\nthis tree's index alone, {args.caches} caches:")
    for name, value in index_timings(args.caches).items():
        print(f"  {name:<28} {value:8.3f}")


if __name__ == "__main__":
    try:
        main()
    except BenchError as error:
        sys.exit(f"admin_list: {error}")
