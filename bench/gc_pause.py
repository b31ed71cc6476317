#!/usr/bin/env python3
"""Full GC collections with many caches and many items: their pause, and what they walk.

A collection holds the GIL from start to end, whichever thread runs it, so its length is
a stall of the memcache serving loop and of the control thread alike. A full
(generation 2) collection walks every object the collector tracks that is not frozen;
issue 15 measured 70-106 ms at 10 000 caches. For each ``--tree`` (this one by default),
one after the other in one invocation:

1. a fresh ``cachier-backend`` from that tree under ``analytics_probe.py`` (temp data dir,
   loopback ports) gets ``--caches`` free caches through the admin API;
2. the probe's ``gc`` census: tracked objects by type, per generation, frozen, and the
   pause of three full and three young collections run in the backend (``caches``);
3. one ``1gb`` cache gets ``--items`` small items (``--value-size`` bytes, pipelined
   noreply sets over one connection), then the census again (``+ items``);
4. churn: ``--churn`` rounds each deleting and creating ``--churn-caches`` caches and
   opening, authenticating and closing ``--churn-conns`` connections; the census again
   (``after churn``), each round also scraping ``/metrics``, the admin list, the status
   and one dashboard's stats on a new HTTP connection; the backend's RSS before and after;
5. ``--load-seconds`` of issue 15 item 1's load (``control_load.py``: a get due every
   2 ms, ``/metrics`` every 5 s, the admin list and a dashboard's stats every second);
   then the probe's ``thaw``: the frozen generation is unfrozen and one full collection
   says what it finds unreachable, i.e. what freezing would have leaked (the base tree
   freezes only at start-up). The backend's own collections are logged throughout
   (``bench/gclog``) and reported for the whole run and for the loaded window.

    python bench/gc_pause.py --tree /tmp/gc-base --tree .     # 10 000 caches, 1 M items
    python bench/gc_pause.py --caches 1000 --items 100000     # quicker

Exit status: 0 when measured, 2 on setup errors, 130 when interrupted. Backends and the
temp dir are removed on exit, SIGTERM included.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from control_load import (
    HOST,
    Getter,
    backend_command,
    summary,
    threading_local_clients,
    under_load,
)
from fill import fill
from processes import (
    BenchError,
    free_ports,
    rss_bytes,
    run_process,
    unwind_on_sigterm,
    wait_for_health,
)
from scale import Probe, create_in_batches

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
MIB = 1024 * 1024


def connect_and_close(server: str, username: str, password: str) -> None:
    """One ASCII connection: log in, one get, close (the client closes first)."""
    host, _, port = server.rpartition(":")
    with socket.create_connection((host.strip("[]"), int(port)), timeout=10) as sock:
        secret = password.encode()
        sock.sendall(b"set %s 0 0 %d\r\n%s\r\nget k\r\n" % (username.encode(), len(secret), secret))
        answer = b""
        while not answer.endswith(b"END\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                raise BenchError(f"connection closed: {answer!r}")
            answer += chunk


def churn(
    api: str, token: str, rounds: int, caches: int, conns: int, first: dict, start: int
) -> None:
    """Delete and create ``caches`` caches, and open/close ``conns`` connections, per round."""
    headers = {"Authorization": f"Bearer {token}"}
    client = threading_local_clients(api, headers)()
    credential = first["credentials"][0]
    for r in range(rounds):
        made = [
            client.post(
                "/api/v1/admin/caches", json={"name": f"churn-{start + r}-{i}", "plan": "free"}
            )
            for i in range(caches)
        ]
        for response in made:
            if response.status_code != 201:
                raise BenchError(f"creating a churn cache: HTTP {response.status_code}")
            cache = response.json()
            cred = cache["credentials"][0]
            connect_and_close(cache["servers"], cred["username"], cred["password"])
            deleted = client.delete(f"/api/v1/admin/caches/{cache['id']}")
            if deleted.status_code not in (200, 204):
                raise BenchError(f"deleting a churn cache: HTTP {deleted.status_code}")
        for _ in range(conns):
            connect_and_close(first["servers"], credential["username"], credential["password"])
        with httpx.Client(base_url=api, headers=headers, timeout=60) as fresh:  # new connection
            for path in ("/metrics", "/api/v1/admin/caches?limit=50", "/api/v1/status"):
                fresh.get(path).raise_for_status()
            httpx.get(first["dashboard_url"].rstrip("/") + "/api/stats", timeout=60)


def run_tree(tree: Path, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    api_port, endpoint_port = free_ports(2)
    token = secrets.token_urlsafe(16)
    run_dir = workdir / tree.name
    run_dir.mkdir()
    log = run_dir / "backend.log"
    fifo = run_dir / "probe.fifo"
    os.mkfifo(fifo)
    cmd = backend_command(
        run_dir / "data",
        api_port,
        endpoint_port,
        token,
        launcher=[sys.executable, str(BENCH_DIR / "analytics_probe.py"), str(fifo)],
    )
    gc_log = run_dir / "gc.log"  # the backend's own collections (bench/gclog)
    env = {
        **os.environ,
        "PYTHONPATH": f"{tree}{os.pathsep}{BENCH_DIR / 'gclog'}",
        "CACHIER_GC_LOG": str(gc_log),
    }
    api = f"http://{HOST}:{api_port}"
    headers = {"Authorization": f"Bearer {token}"}

    def say(text: str) -> None:
        print(f"  {tree}: {text}", file=sys.stderr, flush=True)

    result: dict[str, Any] = {"tree": str(tree), "load": [round(os.getloadavg()[0], 1)]}
    with (
        run_process(cmd, log, cwd=tree, env=env) as proc,
        httpx.Client(base_url=api, headers=headers, timeout=120) as client,
    ):
        wait_for_health(proc, log, client)
        probe = Probe(fifo, run_dir, proc, log)
        first, seconds, _ = create_in_batches(api, token, args.caches, 8, say)
        say(f"{args.caches} caches in {seconds:.0f} s")
        time.sleep(5)
        result["caches"] = probe.ask("gc")
        say(f"census: {result['caches']['tracked']:,} tracked, full {result['caches']['full_ms']}")
        if args.items:
            big = client.post("/api/v1/admin/caches", json={"name": "gc-items", "plan": "1gb"})
            if big.status_code != 201:
                raise BenchError(f"creating the 1gb cache: HTTP {big.status_code} {big.text}")
            cache = big.json()
            cred = cache["credentials"][0]
            began = time.perf_counter()
            fill(
                cache["servers"],
                cred["username"],
                cred["password"],
                args.value_size,
                args.items,
                pipeline=200,
                timeout_s=120,
            )
            say(f"{args.items:,} items in {time.perf_counter() - began:.0f} s")
            time.sleep(2)
            result["items"] = probe.ask("gc")
            census = result["items"]
            say(f"census: {census['tracked']:,} tracked, full {census['full_ms']}")
        if args.churn:
            rss = [rss_bytes(proc.pid)]
            churn(api, token, args.churn, args.churn_caches, args.churn_conns, first, 0)
            rss.append(rss_bytes(proc.pid))
            result["churn"] = probe.ask("gc")
            churn(api, token, args.churn, args.churn_caches, args.churn_conns, first, args.churn)
            rss.append(rss_bytes(proc.pid))
            result["churn2"] = probe.ask("gc")
            rss.append(rss_bytes(proc.pid))
            result["churn_rss_mib"] = [round(x / MIB, 1) for x in rss]
            say(f"churn: RSS {result['churn_rss_mib']} MiB")
        if args.load_seconds:
            credential = first["credentials"][0]
            getter = Getter(first["servers"], credential["username"], credential["password"])
            try:
                say(f"{args.load_seconds:.0f} s under issue 15's load ...")
                began = time.time()
                loaded, _, _ = under_load(
                    getter, api, token, first["dashboard_url"], args.load_seconds
                )
                result["load_window"] = [began, time.time()]
            finally:
                getter.close()
            result["get_loaded"] = summary(loaded)
        result["thaw"] = probe.ask("thaw")
    result["load"].append(round(os.getloadavg()[0], 1))
    result["own"] = own_collections(gc_log)
    if "load_window" in result:
        result["own_loaded"] = own_collections(gc_log, *result["load_window"])
    return result


def own_collections(
    log: Path, since: float = 0.0, until: float = float("inf")
) -> dict[str, list[float]]:
    """The backend's own collections' pauses (ms) by generation, from its GC log (ending
    between ``since`` and ``until``); the probe's forced ones (its thread) left out."""
    pauses: dict[str, list[float]] = {"0": [], "1": [], "2": []}
    for line in log.read_text().splitlines():
        at, generation, pause, thread = line.split(maxsplit=3)
        if thread != "analytics-probe" and since <= float(at) <= until:
            pauses[generation].append(float(pause))
    return pauses


def pauses(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} / {max(values):.1f}" if values else "-"


def own_table(results: list[dict[str, Any]]) -> str:
    header = ("tree", "window", "young n, p50 / max ms", "middle", "full", "get p50 / p99 / max")
    rows = [header, ("---",) * len(header)]
    for r in results:
        for key, window in (("own", "whole run"), ("own_loaded", "under load")):
            if key not in r:
                continue
            own = r[key]
            got = r.get("get_loaded") if key == "own_loaded" else None
            rows.append(
                (
                    Path(r["tree"]).name,
                    window,
                    *(f"{len(own[g])}, {pauses(own[g])}" for g in ("0", "1", "2")),
                    f"{got['p50']:.2f} / {got['p99']:.2f} / {got['max']:.1f} ms" if got else "",
                )
            )
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def table(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    header = (
        "tree",
        "state",
        "tracked objects (gen 0/1/2)",
        "frozen",
        "full GC first / p50 / max ms",
        "young GC p50 / max ms",
        "most tracked types",
    )
    rows = [header, tuple("---" for _ in header)]
    for r in results:
        states = [("caches", f"{args.caches:,} caches"), ("items", f"+ {args.items:,} items")]
        states += [("churn", f"after {args.churn} churn rounds")]
        states += [("churn2", f"after {2 * args.churn} churn rounds")]
        for key, label in states:
            c = r.get(key)
            if not c:
                continue
            top = ", ".join(f"{k} {v:,}" for k, v in list(c["by_type"].items())[:5])
            rows.append(
                (
                    Path(r["tree"]).name,
                    label,
                    f"{c['tracked']:,} ({'/'.join(f'{g:,}' for g in c['generations'])})",
                    f"{c['frozen']:,}",
                    f"**{c['full_ms'][0]:.1f}** / {pauses(c['full_ms'])}",
                    pauses(c["young_ms"]),
                    top,
                )
            )
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tree", type=Path, action="append", help="source tree (repeatable)")
    p.add_argument("--caches", type=int, default=10_000)
    p.add_argument("--items", type=int, default=1_000_000, help="small items in one cache")
    p.add_argument("--value-size", type=int, default=10)
    p.add_argument("--churn", type=int, default=5, help="churn rounds between censuses")
    p.add_argument("--churn-caches", type=int, default=100, help="caches deleted+made a round")
    p.add_argument("--churn-conns", type=int, default=500, help="connections a round")
    p.add_argument("--load-seconds", type=float, default=60.0, help="issue 15's load (60)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    trees = [t.resolve() for t in (args.tree or [REPO_ROOT])]
    unwind_on_sigterm()
    results = []
    with tempfile.TemporaryDirectory(prefix="cachier-gc-") as tmp:
        for tree in trees:
            try:
                results.append(run_tree(tree, args, Path(tmp)))
            except (BenchError, httpx.HTTPError, OSError) as exc:
                print(f"gc_pause: {tree}: {exc}", file=sys.stderr)
                return 2
    print(table(results, args))
    print("\nThe backend's own collections (whole run: creating, filling, churn, load):\n")
    print(own_table(results))
    print()
    for r in results:
        print(f"{r['tree']}: load average {r['load'][0]} -> {r['load'][1]}", end="")
        if "churn_rss_mib" in r:
            print(f"; RSS before / after churn / again {r['churn_rss_mib']} MiB", end="")
        print()
        t = r["thaw"]
        print(f"  thaw: {t['garbage']:,} unreachable among {t['frozen']:,} frozen: {t['by_type']}")
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
