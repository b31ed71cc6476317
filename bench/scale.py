#!/usr/bin/env python3
"""Scale: what 100, 1 000 and 10 000 caches cost one backend (issue 15, item 5).

For each size (``--sizes``), start a fresh ``cachier-backend`` from ``--tree`` (this one by
default) under ``analytics_probe.py``, create that many free-plan caches through the admin
API (``--create-workers`` at a time, timed), then measure, in this order:

1. **RSS** (``VmRSS``) once the caches exist, and again after the load of step 4;
2. **idle CPU**: utime + stime of the backend (all threads) over ``--idle-seconds`` with no
   client at all, as % of one core: analytics sampling, status probes, timers;
3. ``GET /metrics`` and ``GET /api/v1/admin/caches?limit=50`` answer times, one request at a
   time, nothing else running, and the backend's CPU time per request (less its idle
   rate): wall times stretch when neighbours share the machine, CPU time much less. Also
   the scrape's size and how many rows the list answered (before paging every cache,
   after it a page);
4. memcache ``get`` p50/p99/max from one authenticated connection with a get due every
   2 ms, ``--quiet-seconds`` alone, then ``--duration`` under issue 15 item 1's load: a
   ``/metrics`` scrape every 5 s, the Caches page's list poll every second, one dashboard
   polling one cache's stats every second (``control_load.py``, shared with
   ``loop_stall.py``);
5. **analytics bytes per cache**: the probe walks what analytics holds (``sys.getsizeof``
   over its object graph, see ``analytics_probe.py``) twice, ``--analytics-seconds``
   apart. The growth over the samples between gives the bytes **per sample** per cache;
   the first walk minus the samples held gives the fixed part; the **full history** is
   fixed + per sample x the points of every tier (the tiers the backend reports, 900 +
   1 440 + 720 at 1 s). Filling that history takes 15 minutes (fine tier), 24 hours
   (minute) and 30 days (hour) of wall time whatever ``--sample-interval`` is (a shorter
   interval keeps more points for the same 15 minutes), so it is extrapolated, and
   rollup buckets are taken to cost what a fine sample costs. Storage grows in lumps (a
   deque adds a block per 64 points; a compressed chunk grows its buffer), so the window
   must span many samples: 60 s at 1 s puts the per-sample figure within ~10 B.

    python bench/scale.py                                  # 100, 1 000, 10 000: ~16 min
    python bench/scale.py --sizes 1000 --duration 10       # one size, quicker
    python bench/scale.py --tree /tmp/cachier-main --json
    python bench/scale.py --sizes 10000 --backend-arg=--metrics-per-cache=off

Exit status: 0 if every size met issue 15's targets (get p99 <= 2 ms and max <= 50 ms under
load, /metrics p50 <= 100 ms quiet and loaded, full analytics history <= 64 KiB per cache,
idle CPU <= 3 %), 1 if one was missed (listed under the table), 2 on setup errors, 130
when interrupted.
Everything listens on 127.0.0.1; every backend and temp dir is removed on exit.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from control_load import (
    HOST,
    LIST_PATH,
    Getter,
    backend_command,
    create_caches,
    list_rows,
    summary,
    under_load,
)
from processes import (
    BenchError,
    cpu_seconds,
    free_ports,
    log_tail,
    rss_bytes,
    run_process,
    unwind_on_sigterm,
    wait_for_health,
)

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
CREATE_BATCH = 1000  # caches per timed batch
SETTLE_S = 5.0  # after creating the caches, before the idle window
METRICS_TRIES = 5
LIST_TRIES = 10
PROBE_TIMEOUT = 600.0  # seconds a walk may take (10 000 caches: tens of seconds)
MIB = 1024 * 1024

# Issue 15's targets.
GET_P99_MS = 2.0
GET_MAX_MS = 50.0
METRICS_MS = 100.0
HISTORY_BYTES = 64 * 1024
IDLE_CPU_PCT = 3.0


@dataclass
class Analytics:
    """Bytes analytics holds, per cache, from two probe walks."""

    held_bytes_per_cache: float
    samples_held: float
    per_sample_bytes: float
    fixed_bytes_per_cache: float
    full_points: int
    full_history_bytes: float
    walk_s: float
    by_type: dict[str, int] = field(default_factory=dict)


@dataclass
class SizeResult:
    caches: int
    create_s: float
    create_rates: list[float]  # caches per second, per batch of CREATE_BATCH
    load_avg: tuple[float, float]  # 1-minute load average before and after the size ran
    rss_created_mib: float
    rss_loaded_mib: float
    idle_cpu_pct: float
    metrics_quiet: dict[str, float]
    metrics_bytes: int
    metrics_cpu_ms: float
    list_quiet: dict[str, float]
    list_cpu_ms: float
    list_rows: int
    list_total: int | None
    get_quiet: dict[str, float]
    get_loaded: dict[str, float]
    get_service: dict[str, float]
    metrics_loaded: dict[str, float]
    list_loaded: dict[str, float]
    stats_loaded: dict[str, float]
    analytics: Analytics
    # Each quiet scrape's wall time in order: the first after the caches were created
    # renders every line, the next only what changed since (``backend.metrics``).
    metrics_each_ms: list[float] = field(default_factory=list)


class Probe:
    """Asks ``analytics_probe.py`` in the backend process, through its named pipe."""

    def __init__(self, fifo: Path, workdir: Path, proc: subprocess.Popen[bytes], log: Path):
        self.fifo, self.workdir, self.proc, self.log = fifo, workdir, proc, log
        self.asked = 0

    def ask(self, command: str, timeout: float = PROBE_TIMEOUT) -> dict[str, Any]:
        self.asked += 1
        path = self.workdir / f"probe-{self.asked}.json"
        deadline = time.monotonic() + timeout
        while True:  # O_NONBLOCK: a dead backend is an error here, not a hang in open()
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise
            self.check(deadline, command)
            time.sleep(0.01)
        with os.fdopen(fd, "w") as pipe:
            pipe.write(f"{command} {path}\n")
        while not path.exists():
            self.check(deadline, command)
            time.sleep(0.05)
        answer = json.loads(path.read_text())
        if "error" in answer:
            raise BenchError(f"analytics probe: {answer['error']}")
        return answer

    def check(self, deadline: float, command: str) -> None:
        if self.proc.poll() is not None:
            status = self.proc.returncode
            raise BenchError(f"the backend exited with {status}: {log_tail(self.log)}")
        if time.monotonic() > deadline:
            raise BenchError(f"the analytics probe did not answer {command!r}")


def timed_gets(
    client: httpx.Client, path: str, tries: int, pid: int, idle_cpu_pct: float
) -> tuple[list[float], float, httpx.Response]:
    """``tries`` GETs one after the other, 0.2 s apart.

    Returns their times, the backend's CPU milliseconds per request (its CPU time over
    the GETs less what it spends idle in that time: neighbours on a shared machine
    stretch the wall time, much less the CPU time) and the last answer.
    """
    times = []
    cpu, wall = cpu_seconds(pid), time.perf_counter()
    for _ in range(tries):
        started = time.perf_counter()
        response = client.get(path)
        times.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise BenchError(f"GET {path}: HTTP {response.status_code} {response.text[:200]}")
        time.sleep(0.2)
    idle = idle_cpu_pct / 100 * (time.perf_counter() - wall)
    cpu_ms = max(0.0, cpu_seconds(pid) - cpu - idle) / tries * 1000
    return times, cpu_ms, response


def analytics_bytes(
    probe: Probe, caches: int, created_at_samples: float, seconds: float
) -> Analytics:
    """Two walks ``seconds`` apart: bytes per sample, fixed bytes, full-history estimate."""
    first = probe.ask("walk")
    time.sleep(seconds)
    second = probe.ask("walk")
    caches = first["caches"] or caches
    samples = second["samples"] - first["samples"]
    if samples < 1:
        raise BenchError("analytics took no sample between the two walks")
    per_sample = (second["bytes"] - first["bytes"]) / caches / samples
    held = first["samples"] - created_at_samples
    fixed = first["bytes"] / caches - per_sample * held
    full_points = sum(points for _, points in first["tiers"] or ())
    if not full_points:
        raise BenchError("the backend's analytics reported no tiers")
    return Analytics(
        held_bytes_per_cache=round(first["bytes"] / caches),
        samples_held=round(held, 1),
        per_sample_bytes=round(per_sample, 2),
        fixed_bytes_per_cache=round(fixed),
        full_points=full_points,
        full_history_bytes=round(fixed + per_sample * full_points),
        walk_s=max(first["walk_s"], second["walk_s"]),
        by_type=second["by_type"],
    )


def create_in_batches(
    api: str, token: str, size: int, workers: int, say: Callable[[str], None]
) -> tuple[dict, float, list[float]]:
    """``size`` caches in batches of ``CREATE_BATCH``: the first, seconds, rate per batch.

    The rates show whether a creation costs more as caches accumulate.
    """
    first: dict = {}
    total, rates = 0.0, []
    for start in range(0, size, CREATE_BATCH):
        count = min(CREATE_BATCH, size - start)
        made, seconds = create_caches(api, token, count, workers, start)
        first = first or made
        total += seconds
        rates.append(round(count / seconds, 1))
        if size > CREATE_BATCH:
            say(f"{start + count} created, {rates[-1]:.0f}/s in the last batch")
    return first, total, rates


def run_size(size: int, args: argparse.Namespace, workdir: Path) -> SizeResult:
    api_port, endpoint_port = free_ports(2)
    token = secrets.token_urlsafe(16)
    run_dir = workdir / f"size-{size}"
    run_dir.mkdir()
    log = run_dir / "backend.log"
    fifo = run_dir / "probe.fifo"
    os.mkfifo(fifo)
    cmd = backend_command(
        run_dir / "data",
        api_port,
        endpoint_port,
        token,
        ["--sample-interval", str(args.sample_interval), *args.backend_arg],
        launcher=[sys.executable, str(BENCH_DIR / "analytics_probe.py"), str(fifo)],
    )
    env = {**os.environ, "PYTHONPATH": str(args.tree)}
    api = f"http://{HOST}:{api_port}"
    headers = {"Authorization": f"Bearer {token}"}

    def say(text: str) -> None:
        print(f"  {size}: {text}", file=sys.stderr, flush=True)

    with (
        run_process(cmd, log, cwd=args.tree, env=env) as proc,
        httpx.Client(base_url=api, headers=headers, timeout=120) as client,
    ):
        wait_for_health(proc, log, client)
        load_before = os.getloadavg()[0]
        probe = Probe(fifo, run_dir, proc, log)
        before = probe.ask("samples")["samples"]
        first, create_s, rates = create_in_batches(api, token, size, args.create_workers, say)
        after = probe.ask("samples")["samples"]
        say(f"created in {create_s:.1f} s ({size / create_s:.0f}/s)")
        time.sleep(SETTLE_S)
        rss_created = rss_bytes(proc.pid)

        cpu, wall = cpu_seconds(proc.pid), time.perf_counter()
        time.sleep(args.idle_seconds)
        idle_cpu = (cpu_seconds(proc.pid) - cpu) / (time.perf_counter() - wall) * 100
        say(f"idle CPU {idle_cpu:.1f} %")

        metrics_times, metrics_cpu, metrics = timed_gets(
            client, "/metrics", METRICS_TRIES, proc.pid, idle_cpu
        )
        list_times, list_cpu, listed = timed_gets(client, LIST_PATH, LIST_TRIES, proc.pid, idle_cpu)
        rows, total = list_rows(listed.json())

        credential = first["credentials"][0]
        getter = Getter(first["servers"], credential["username"], credential["password"])
        try:
            getter.run(1.0)  # warm up
            quiet, _ = getter.run(args.quiet_seconds)
            say(f"{args.duration:.0f} s under load ...")
            loaded, service, timings = under_load(
                getter, api, token, first["dashboard_url"], args.duration
            )
        finally:
            getter.close()
        rss_loaded = rss_bytes(proc.pid)

        say("walking analytics ...")
        analytics = analytics_bytes(probe, size, (before + after) / 2, args.analytics_seconds)
    return SizeResult(
        caches=size,
        create_s=round(create_s, 1),
        create_rates=rates,
        load_avg=(round(load_before, 2), round(os.getloadavg()[0], 2)),
        rss_created_mib=round(rss_created / MIB, 1),
        rss_loaded_mib=round(rss_loaded / MIB, 1),
        idle_cpu_pct=round(idle_cpu, 2),
        metrics_quiet=summary(metrics_times),
        metrics_bytes=len(metrics.content),
        metrics_cpu_ms=round(metrics_cpu, 1),
        list_cpu_ms=round(list_cpu, 1),
        list_quiet=summary(list_times),
        list_rows=rows,
        list_total=total,
        get_quiet=summary(quiet),
        get_loaded=summary(loaded),
        get_service=summary(service),
        metrics_loaded=summary(timings["metrics"]),
        list_loaded=summary(timings["list"]),
        stats_loaded=summary(timings["stats"]),
        analytics=analytics,
        metrics_each_ms=[round(t * 1000, 1) for t in metrics_times],
    )


# -- report -----------------------------------------------------------------------------------
def kib(n: float) -> str:
    return f"{n / 1024:,.1f} KiB" if n >= 1024 else f"{n:,.0f} B"


def three(s: dict[str, float]) -> str:
    return f"{s.get('p50', 0):.2f} / {s.get('p99', 0):.2f} / {s.get('max', 0):.1f}"


def two(s: dict[str, float]) -> str:
    return f"{s.get('p50', 0):.0f} / {s.get('max', 0):.0f}"


def created(r: SizeResult) -> str:
    """Creation time and rate; with several batches, the first and last batch's rates."""
    text = f"{r.create_s:.1f} s ({r.caches / r.create_s:,.0f}/s"
    if len(r.create_rates) > 1:
        text += f"; first {r.create_rates[0]:,.0f}/s, last {r.create_rates[-1]:,.0f}/s"
    return text + ")"


def table(results: list[SizeResult]) -> str:
    header = (
        "caches",
        "created in",
        "RSS after create / load",
        "analytics per cache: held now (samples) / per sample / full history (est.)",
        "idle CPU",
        "`/metrics` p50 / max ms, CPU ms (size)",
        "admin list p50 / max ms, CPU ms (rows)",
        "get quiet p50 / p99 / max ms",
        "get loaded p50 / p99 / max ms",
        "under load: `/metrics` / list / stats p50 / max ms",
        "load avg",
    )
    rows = [header, tuple("---" for _ in header)]
    for r in results:
        a = r.analytics
        rows.append(
            (
                f"{r.caches:,}",
                created(r),
                f"{r.rss_created_mib:,.0f} / {r.rss_loaded_mib:,.0f} MiB",
                f"{kib(a.held_bytes_per_cache)} ({a.samples_held:.0f}) / "
                f"{a.per_sample_bytes:,.1f} B / **{kib(a.full_history_bytes)}**",
                f"{r.idle_cpu_pct:.1f} %",
                f"{two(r.metrics_quiet)}, {r.metrics_cpu_ms:,.0f} ({r.metrics_bytes >> 10:,} KiB)",
                f"{two(r.list_quiet)}, {r.list_cpu_ms:,.0f} ({r.list_rows:,})",
                three(r.get_quiet),
                f"**{three(r.get_loaded)}**",
                f"{two(r.metrics_loaded)} · {two(r.list_loaded)} · {two(r.stats_loaded)}",
                f"{r.load_avg[0]:.1f} → {r.load_avg[1]:.1f}",
            )
        )
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def misses(r: SizeResult) -> list[str]:
    """Issue 15's targets this size missed."""
    found = []
    if r.get_loaded.get("p99", 0) > GET_P99_MS:
        found.append(f"get p99 {r.get_loaded['p99']:.2f} ms > {GET_P99_MS} ms")
    if r.get_loaded.get("max", 0) > GET_MAX_MS:
        found.append(f"get max {r.get_loaded['max']:.1f} ms > {GET_MAX_MS} ms")
    worst_metrics = max(r.metrics_quiet.get("p50", 0), r.metrics_loaded.get("p50", 0))
    if worst_metrics > METRICS_MS:
        found.append(f"/metrics {worst_metrics:.0f} ms > {METRICS_MS:.0f} ms")
    if r.analytics.full_history_bytes > HISTORY_BYTES:
        found.append(
            f"analytics full history {kib(r.analytics.full_history_bytes)} > {kib(HISTORY_BYTES)}"
        )
    if r.idle_cpu_pct > IDLE_CPU_PCT:
        found.append(f"idle CPU {r.idle_cpu_pct:.1f} % > {IDLE_CPU_PCT} %")
    return found


def sizes(text: str) -> list[int]:
    try:
        values = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("sizes must be whole numbers of at least 1")
    return values


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=sizes, default=[100, 1_000, 10_000], help="100,1000,10000")
    p.add_argument("--tree", type=Path, default=REPO_ROOT, help="cachier source tree to run")
    p.add_argument("--duration", type=float, default=60.0, help="seconds under load (60)")
    p.add_argument("--quiet-seconds", type=float, default=10.0, help="gets without load (10)")
    p.add_argument("--idle-seconds", type=float, default=20.0, help="idle CPU window (20)")
    p.add_argument(
        "--analytics-seconds", type=float, default=60.0, help="between the two walks (60)"
    )
    p.add_argument("--sample-interval", type=float, default=1.0, help="backend flag (1)")
    p.add_argument(
        "--backend-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="one more cachier-backend argument, e.g. --backend-arg=--metrics-per-cache=off",
    )
    p.add_argument("--create-workers", type=int, default=8, help="creations in flight (8)")
    p.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = p.parse_args(argv)
    args.tree = args.tree.resolve()
    unwind_on_sigterm()
    results = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cachier-scale-") as tmp:
        for size in args.sizes:
            print(f"{args.tree}: {size} caches ...", file=sys.stderr, flush=True)
            try:
                results.append(run_size(size, args, Path(tmp)))
            except (BenchError, httpx.HTTPError, OSError) as exc:
                print(f"scale: {size} caches: {exc}", file=sys.stderr)
                return 2
    load = os.getloadavg()
    print(table(results))
    backend = " ".join([str(args.tree), *args.backend_arg])
    print(
        f"\n{backend}, sample interval {args.sample_interval} s, {args.duration:.0f} s under "
        f"load, {time.monotonic() - started:.0f} s in all; load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    for r in results:
        each = ", ".join(f"{t:.0f}" for t in r.metrics_each_ms)
        print(f"- {r.caches:,} caches: quiet /metrics scrapes in order: {each} ms")
    missed = [(r.caches, m) for r in results for m in misses(r)]
    for caches, miss in missed:
        print(f"- {caches:,} caches: {miss}")
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    return 1 if missed else 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
