#!/usr/bin/env python3
"""Warm restart: how long a real ``cachier-backend`` takes to save its caches on SIGTERM
and to load them at the next start, per GB of items, and what the save costs in memory.

For each value size: a fresh backend (temp data dir, free loopback ports) gets one cache
on the 5 GB plan, filled through its memcache endpoint (pipelined ASCII ``set …
noreply``) with ``--megabytes`` MB of values. Then:

1. SIGTERM, and the time until the process has exited; its log says how long the
   snapshot took (``warm restart: saved … in S s``). Its peak RSS (VmHWM, polled until it
   exits) against its RSS before the signal shows what the save holds beyond the items.
2. A start on the same data dir, and the time until ``/healthz`` answers; its log says
   how long the load took. The same start on an empty data dir (the first start, before
   the fill) is the baseline. One key is read back to check the items are there.

Per-GB figures are the measured seconds scaled by 1024 / MB (linear: both are one pass
over the items). Item count matters as much as bytes (each item is a record, an object),
so small values cost more per GB than large ones.

    python bench/warm_restart.py                         # 1 KiB and 64 KiB values, 512 MB each
    python bench/warm_restart.py --megabytes 1024        # a full GB
    python bench/warm_restart.py --sizes 4096 --megabytes 256 --json

All traffic stays on 127.0.0.1; the backends and the temp dir are removed on exit.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import socket
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

TOKEN = "bench-warm-token"
PIPELINE = 256  # sets per write
ROOT = Path(__file__).resolve().parent.parent
SAVED = re.compile(
    rb"warm restart: saved (\d+) items \(([\d.]+) MB\).* in ([\d.]+) s \(([\d.]+) s of it"
)
LOADED = re.compile(rb"warm restart: loaded (\d+) items \(([\d.]+) MB\).* in ([\d.]+) s")


def read_back(server: str, username: str, password: str, key: bytes) -> bytes:
    host, _, port = server.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        secret = password.encode()
        sock.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (username.encode(), len(secret), secret))
        if sock.recv(64) != b"STORED\r\n":
            raise BenchError("authentication failed")
        sock.sendall(b"mg %s v\r\n" % key)
        answer = b""
        while not answer.endswith(b"\r\n") or answer.count(b"\r\n") < 2:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            answer += chunk
            if answer.startswith(b"EN"):
                break
        return answer


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise BenchError(f"no VmHWM for pid {pid}")


def command(data_dir: Path, api_port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "backend.cli",
        "--data-dir",
        str(data_dir),
        "--api-port",
        str(api_port),
        "--endpoint-port",
        "0",
        "--admin-token",
        TOKEN,
        "--sample-interval",
        "60",
        "--probe-interval",
        "5",
    ]


def measure(value_size: int, megabytes: int, workdir: Path) -> dict[str, float]:
    data_dir = workdir / f"d{value_size}"
    count = megabytes * 1024 * 1024 // value_size
    first_log, second_log = (
        workdir / f"first-{value_size}.log",
        workdir / f"second-{value_size}.log",
    )

    (api_port,) = free_ports(1)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", headers=headers, timeout=60) as api:
        t0 = time.perf_counter()
        with run_process(command(data_dir, api_port), first_log, cwd=ROOT) as proc:
            wait_for_health(proc, first_log, api)
            empty_start = time.perf_counter() - t0
            cache = api.post("/api/v1/admin/caches", json={"name": "warm", "plan": "5gb"}).json()
            credential = cache["credentials"][0]
            username, password = credential["username"], credential["password"]
            t_fill = time.perf_counter()
            fill(
                cache["servers"],
                username,
                password,
                value_size,
                count,
                pipeline=PIPELINE,
                timeout_s=120,
                flag_mask=0xFFFF,
                exptime=3600,
            )
            fill_s = time.perf_counter() - t_fill
            items = api.get(f"/api/v1/admin/caches/{cache['id']}").json()["usage"]["items"]
            if items != count:
                raise BenchError(f"{items} items stored of {count}: the plan evicted some")
            rss_before = rss_bytes(proc.pid)
            t_stop = time.perf_counter()
            proc.send_signal(signal.SIGTERM)
            peak = rss_before
            while proc.poll() is None:
                try:
                    peak = max(peak, peak_rss(proc.pid))
                except (OSError, BenchError):
                    break
                time.sleep(0.02)
            proc.wait()
            stop_s = time.perf_counter() - t_stop
        snapshot_bytes = sum(p.stat().st_size for p in data_dir.glob("warm-*.snapshot"))

        t0 = time.perf_counter()
        with run_process(command(data_dir, api_port), second_log, cwd=ROOT) as proc:
            wait_for_health(proc, second_log, api)
            warm_start = time.perf_counter() - t0
            servers = api.get(f"/api/v1/admin/caches/{cache['id']}").json()["servers"]
            answer = read_back(servers, username, password, b"k:%010d" % (count - 1))
            if not answer.startswith(b"VA %d" % value_size):
                raise BenchError(f"the last item did not come back: {answer[:80]!r}")

    saved = SAVED.search(first_log.read_bytes())
    loaded = LOADED.search(second_log.read_bytes())
    if saved is None or loaded is None:
        raise BenchError("no warm restart log line: is this tree's backend the one running?")
    save_s, load_s = float(saved.group(3)), float(loaded.group(3))
    fsync_s = float(saved.group(4))
    scale = 1024 / megabytes
    return {
        "value_size": value_size,
        "items": count,
        "megabytes": megabytes,
        "fill_s": round(fill_s, 2),
        "save_s": save_s,
        "save_fsync_s": fsync_s,
        "stop_s": round(stop_s, 2),
        "load_s": load_s,
        "empty_start_s": round(empty_start, 2),
        "warm_start_s": round(warm_start, 2),
        "save_s_per_gb": round(save_s * scale, 2),
        "load_s_per_gb": round(load_s * scale, 2),
        "snapshot_mb": round(snapshot_bytes / 2**20, 1),
        "rss_before_save_mb": round(rss_before / 2**20),
        "rss_growth_during_save_mb": round((peak - rss_before) / 2**20, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1024,65536", help="value sizes in bytes")
    parser.add_argument("--megabytes", type=int, default=512, help="MB of values per size")
    parser.add_argument("--json", action="store_true", help="results as JSON")
    args = parser.parse_args()
    unwind_on_sigterm()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="cachier-warm-bench-") as workdir:
            for size in sizes:
                rows.append(measure(size, args.megabytes, Path(workdir)))
                if not args.json:
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    except BenchError as exc:
        print(f"warm_restart: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(
        f"{'value':>7} {'items':>9} {'MB':>6} {'fill s':>7} {'save s':>7} {'(fsync)':>7} "
        f"{'load s':>7} {'save s/GB':>9} {'load s/GB':>9} {'start empty/warm s':>18} "
        f"{'save +RSS MB':>12}"
    )
    for r in rows:
        print(
            f"{r['value_size']:>7} {r['items']:>9} {r['megabytes']:>6} {r['fill_s']:>7.2f} "
            f"{r['save_s']:>7.2f} {r['save_fsync_s']:>7.2f} {r['load_s']:>7.2f} "
            f"{r['save_s_per_gb']:>9.2f} {r['load_s_per_gb']:>9.2f} "
            f"{r['empty_start_s']:>8.2f}/{r['warm_start_s']:<9.2f} "
            f"{r['rss_growth_during_save_mb']:>12.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
