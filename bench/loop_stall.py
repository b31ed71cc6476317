#!/usr/bin/env python3
"""Loop stall: memcache ``get`` latency while the control plane is busy (issue 15, item 1).

For each source tree given (``--tree``, e.g. the branch before and after a change), start a
fresh ``cachier-backend`` from that tree, create ``--caches`` caches through the admin API,
then for ``--seconds``:

* one authenticated memcache connection (ASCII, on a region endpoint) has a ``get`` due
  every 2 ms and times each answer from when it was due (this process, one thread,
  nothing else running in it; the service time alone is shown beside it);
* another process scrapes ``GET /metrics`` every 5 s, polls ``GET /api/v1/admin/caches``
  every second (what the dashboard's Caches page does; ``--list-query`` adds a query such
  as a page's ``?limit=100``, ``--no-list`` leaves it out to attribute what is left) and
  one cache's dashboard ``stats`` every second, each re-armed after the previous answer,
  bodies read but never parsed.

A quiet window (``--quiet-seconds``, the same connection, no HTTP load) comes first.
Trees run one after the other in the same invocation, so the machine is the same.
With ``--gc-log`` the backend also logs each cyclic GC collection (``bench/gclog``), and
the table shows the collections of the loaded window per generation: count and longest.

    python bench/loop_stall.py --tree /tmp/cachier-main --tree . --caches 10000 --seconds 60
    python bench/loop_stall.py --caches 1000 --seconds 20        # this tree only, quicker
    python bench/loop_stall.py --caches 10000 --gc-log            # with the GC's pauses

All traffic stays on 127.0.0.1; every backend and temp dir is removed on exit.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import secrets
import socket
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
from processes import BenchError, free_ports, run_process, unwind_on_sigterm, wait_for_health

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
GET_EVERY_S = 0.002
METRICS_EVERY_S = 5.0
LIST_EVERY_S = 1.0
STATS_EVERY_S = 1.0
CREATE_WORKERS = 4
GC_LOG_DIR = Path(__file__).resolve().parent / "gclog"


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
    # generation -> n, p50, max, total ms of the collections in the loaded window
    gc_pauses: dict[str, dict[str, float]] = field(default_factory=dict)
    load_average: tuple[float, float, float] = (0.0, 0.0, 0.0)


def summary(values_s: list[float]) -> dict[str, float]:
    """n, p50, p99, max in milliseconds."""
    if not values_s:
        return {"n": 0}
    ordered = sorted(values_s)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 3)

    return {
        "n": len(ordered),
        "p50": pct(0.50),
        "p99": pct(0.99),
        "max": round(ordered[-1] * 1000, 3),
    }


# -- the memcache side: one connection, one get every 2 ms --------------------------------
class Getter:
    def __init__(self, servers: str, username: str, password: str) -> None:
        host, _, port = servers.rpartition(":")
        self.sock = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.pending = b""
        secret = password.encode()
        self.ask(
            b"set %s 0 0 %d\r\n%s\r\n" % (username.encode(), len(secret), secret), b"STORED\r\n"
        )
        self.ask(b"set k 0 0 5\r\nvalue\r\n", b"STORED\r\n")

    def ask(self, request: bytes, terminator: bytes) -> None:
        self.sock.sendall(request)
        while terminator not in self.pending:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise BenchError("the memcache connection closed")
            self.pending += chunk
        self.pending = self.pending[self.pending.index(terminator) + len(terminator) :]

    def run(self, seconds: float) -> tuple[list[float], list[float]]:
        """A get due every 2 ms; returns (latency from when it was due, service time).

        The first counts a stall for every get that should have been sent during it, as a
        client with steady traffic sees it (after a stall the getter catches up back to
        back); the service time alone would count one slow get per stall ("coordinated
        omission"): a 700 ms stall every 5 s then hardly moves the p99.
        """
        due_times, service = [], []
        due = time.perf_counter()
        deadline = due + seconds
        while due < deadline:
            now = time.perf_counter()
            if due > now:
                time.sleep(due - now)
            sent = time.perf_counter()
            self.ask(b"get k\r\n", b"END\r\n")
            done = time.perf_counter()
            due_times.append(done - due)
            service.append(done - sent)
            due += GET_EVERY_S
        return due_times, service


# -- the HTTP side: another process, so parsing never runs beside the getter --------------
def http_load(
    api: str,
    token: str,
    dashboard: str,
    seconds: float,
    out: multiprocessing.Queue,
    list_url: str | None,
) -> None:
    import threading

    headers = {"Authorization": f"Bearer {token}"}
    results: dict[str, list[float]] = {"metrics": [], "list": [], "stats": []}
    stop_at = time.monotonic() + seconds

    def every(name: str, url: str, interval: float, auth: bool) -> None:
        with httpx.Client(headers=headers if auth else None, timeout=60) as client:
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                response = client.get(url)
                response.read()
                results[name].append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise BenchError(f"{url}: HTTP {response.status_code}")
                time.sleep(max(0.0, min(interval, stop_at - time.monotonic())))

    threads = [
        threading.Thread(target=every, args=("metrics", f"{api}/metrics", METRICS_EVERY_S, False)),
        threading.Thread(
            target=every, args=("stats", f"{dashboard}/api/stats", STATS_EVERY_S, False)
        ),
    ]
    if list_url is not None:
        threads.append(
            threading.Thread(target=every, args=("list", f"{api}{list_url}", LIST_EVERY_S, True))
        )
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.put(results)


# -- one tree ------------------------------------------------------------------------------
def create_caches(api: str, token: str, count: int) -> tuple[dict, float]:
    """``count`` caches on the free plan, ``CREATE_WORKERS`` at a time; returns the first."""
    headers = {"Authorization": f"Bearer {token}"}
    started = time.perf_counter()
    local = threading_local_clients(api, headers)

    def create(i: int) -> dict:
        response = local().post(
            "/api/v1/admin/caches", json={"name": f"bench-{i:05d}", "plan": "free"}
        )
        if response.status_code != 201:
            raise BenchError(f"creating cache {i}: HTTP {response.status_code} {response.text}")
        return response.json() if i == 0 else {}

    with ThreadPoolExecutor(CREATE_WORKERS) as pool:
        first = list(pool.map(create, range(count)))[0]
    return first, time.perf_counter() - started


def threading_local_clients(api: str, headers: dict[str, str]):
    import threading

    local = threading.local()

    def client() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=api, headers=headers, timeout=60)
        return local.client

    return client


def gc_pauses(log: Path, start: float, end: float) -> dict[str, dict[str, float]]:
    """The collections logged between ``start`` and ``end`` (wall time), per generation."""
    pauses: dict[str, list[float]] = {"0": [], "1": [], "2": []}
    with contextlib.suppress(FileNotFoundError):
        for line in log.read_text().splitlines():
            at, generation, pause_ms, _thread = line.split(" ", 3)
            if start <= float(at) <= end:
                pauses[generation].append(float(pause_ms) / 1000)
    out = {}
    for generation, values in pauses.items():
        out[generation] = summary(values)
        out[generation]["total"] = round(sum(values) * 1000, 1)
    return out


def run_tree(tree: Path, args: argparse.Namespace, workdir: Path) -> Result:
    api_port, endpoint_port = free_ports(2)
    token = secrets.token_urlsafe(16)
    data = workdir / f"data-{tree.name or 'tree'}-{api_port}"
    log = workdir / f"backend-{api_port}.log"
    cmd = [
        sys.executable,
        "-m",
        "backend.cli",
        "--data-dir",
        str(data),
        "--host",
        HOST,
        "--api-port",
        str(api_port),
        "--endpoint-port",
        str(endpoint_port),
        "--admin-token",
        token,
    ]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    gc_log = workdir / f"gc-{api_port}.log"
    if args.gc_log:
        env["PYTHONPATH"] += os.pathsep + str(GC_LOG_DIR)
        env["CACHIER_GC_LOG"] = str(gc_log)
    api = f"http://{HOST}:{api_port}"
    with run_process(cmd, log, cwd=tree, env=env) as proc, httpx.Client(base_url=api) as client:
        wait_for_health(proc, log, client)
        first, create_s = create_caches(api, token, args.caches)
        credential = first["credentials"][0]
        getter = Getter(first["servers"], credential["username"], credential["password"])
        getter.run(1.0)  # warm up
        quiet, _ = getter.run(args.quiet_seconds)
        queue: multiprocessing.Queue = multiprocessing.Queue()
        list_url = None if args.no_list else "/api/v1/admin/caches" + args.list_query
        load = multiprocessing.Process(
            target=http_load,
            args=(api, token, first["dashboard_url"], args.seconds, queue, list_url),
        )
        load.start()
        loaded_from = time.time()
        loaded, loaded_service = getter.run(args.seconds)
        loaded_to = time.time()
        load_average = os.getloadavg()
        timings = queue.get(timeout=args.seconds + 120)
        load.join(30)
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
        gc_pauses(gc_log, loaded_from, loaded_to) if args.gc_log else {},
        load_average,
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
            "GC pauses loaded, gen 0/1/2: n max ms",
            "load avg 1/5 min",
        )
    ]

    def three(s: dict[str, float]) -> str:
        return f"{s.get('p50', 0):.2f} / {s.get('p99', 0):.2f} / {s.get('max', 0):.1f}"

    def two(s: dict[str, float]) -> str:
        return f"{s.get('p50', 0):.0f} / {s.get('max', 0):.0f} (n={s.get('n', 0)})"

    def pauses(g: dict[str, dict[str, float]]) -> str:
        if not g:
            return "-"
        return " / ".join(f"{g[k].get('n', 0)} {g[k].get('max', 0):.1f}" for k in ("0", "1", "2"))

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
                pauses(r.gc_pauses),
                f"{r.load_average[0]:.1f} {r.load_average[1]:.1f}",
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
    p.add_argument(
        "--list-query",
        default="",
        help="appended to the admin list's URL, e.g. '?limit=100' (a page); default: none",
    )
    p.add_argument("--no-list", action="store_true", help="leave the admin list out of the load")
    p.add_argument(
        "--gc-log", action="store_true", help="log the backend's GC pauses (bench/gclog)"
    )
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
