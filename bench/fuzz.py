#!/usr/bin/env python3
"""Protocol fuzzing at volume: both codecs in-process, or a live backend over sockets.

The generator is the CI test's (tests/backend/fuzzing.py): well-formed commands with
hostile arguments, lying lengths, mutated bytes and random splits, before and after
authentication, as a writer and as a read-only credential.

    python bench/fuzz.py                          # 1 000 000 inputs a protocol, in-process
    python bench/fuzz.py --inputs 200000 --seed 7
    python bench/fuzz.py --socket --inputs 100000 # against a fresh cachier-backend

In-process it reports inputs per second, the first broken invariant (a raise, a
non-bytes answer, an over-bound buffer) with its input, and this process's RSS before and
after a full collection. Over sockets it counts connections the backend dropped without
an answer where one was due and the handler failures it logged, and its RSS before and
after. Exit status: 0 clean, 1 when anything broke, 2 on setup errors, 130 interrupted.
"""

from __future__ import annotations

import argparse
import gc
import random
import socket
import sys
import tempfile
import time
from pathlib import Path

import httpx
from processes import (
    BenchError,
    free_ports,
    rss_bytes,
    run_process,
    unwind_on_sigterm,
    wait_for_health,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
from tests.backend.fuzzing import (  # noqa: E402
    STREAMS,
    FuzzTarget,
    InvariantBroken,
    Logins,
    run_case,
)

COMMANDS_PER_CONNECTION = 10
TOKEN = "bench-fuzz-token"


def rss_mb(pid: int | str = "self") -> float:
    return rss_bytes(pid) / (1024 * 1024)


def in_process(protocol: str, inputs: int, seed: int) -> bool:
    target, rng = FuzzTarget(), random.Random(seed)
    gc.collect()
    before = rss_mb()
    started = time.perf_counter()
    done = 0
    try:
        while done < inputs:
            run_case(target, protocol, rng, COMMANDS_PER_CONNECTION)
            done += COMMANDS_PER_CONNECTION
    except InvariantBroken as broken:
        print(f"{protocol}: BROKEN after {done} inputs: {broken}")
        return False
    elapsed = time.perf_counter() - started
    gc.collect()
    after = rss_mb()
    items = sum(
        e.usage().items
        for store in target.dataplane.stores.values()
        for e in store.engines.values()
    )
    print(
        f"{protocol}: {done} inputs in {elapsed:.1f} s ({done / elapsed:,.0f}/s), "
        f"0 broken; RSS {before:.0f} -> {after:.0f} MB after a full collection "
        f"({items} items stored)"
    )
    return True


def exchange(address: tuple[str, int], chunks: list[bytes]) -> None:
    with socket.create_connection(address, timeout=5) as sock:
        try:
            for chunk in chunks:
                sock.sendall(chunk)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):
                pass
        except (OSError, TimeoutError):  # reset, broken pipe, already closed
            pass  # the server may close mid-stream (a refusal) or wait for more input


def over_sockets(protocol: str, inputs: int, seed: int, workdir: Path) -> bool:
    api_port, endpoint_port = free_ports(2)
    log = workdir / f"backend-{protocol}.log"
    command = [
        sys.executable,
        "-m",
        "backend.cli",
        "--data-dir",
        str(workdir / protocol),
        "--api-port",
        str(api_port),
        "--endpoint-port",
        str(endpoint_port),
        "--admin-token",
        TOKEN,
        "--auth-timeout",
        "2",
        "--auth-failures-per-address",
        "1000000",
        "--auth-failures-per-user",
        "1000000",
    ]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with (
        run_process(command, log, cwd=REPO_ROOT) as proc,
        httpx.Client(base_url=f"http://127.0.0.1:{api_port}", headers=headers, timeout=30) as api,
    ):
        wait_for_health(proc, log, api)
        cache = api.post("/api/v1/admin/caches", json={"name": "fuzz", "plan": "free"}).json()
        dashboard = httpx.Client(base_url=cache["dashboard_url"] + "/api", timeout=30)
        reader = dashboard.post("/credentials").json()
        dashboard.patch(f"/credentials/{reader['username']}", json={"write": False})
        writer = cache["credentials"][0]
        logins = Logins(
            (writer["username"], writer["password"].encode()),
            (reader["username"], reader["password"].encode()),
        )
        host, _, port = cache["servers"].rpartition(":")
        address = (host, int(port))
        rng = random.Random(seed)
        before = rss_mb(proc.pid)
        started, done = time.perf_counter(), 0
        while done < inputs:
            chunks, _ = STREAMS[protocol](rng, COMMANDS_PER_CONNECTION, logins)
            exchange(address, chunks)
            done += COMMANDS_PER_CONNECTION
            if proc.poll() is not None:
                print(f"{protocol}: the backend EXITED after {done} inputs")
                return False
        elapsed = time.perf_counter() - started
        time.sleep(1)
        after = rss_mb(proc.pid)
        healthy = api.get("/healthz").status_code == 200
    failures = log.read_text(errors="replace").count("memcache command failed")
    tracebacks = log.read_text(errors="replace").count("Traceback")
    print(
        f"{protocol} over sockets: {done} inputs in {elapsed:.0f} s ({done / elapsed:,.0f}/s); "
        f"handler failures {failures}, tracebacks {tracebacks}, healthy after: {healthy}; "
        f"backend RSS {before:.0f} -> {after:.0f} MB"
    )
    return failures == 0 and tracebacks == 0 and healthy


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--inputs", type=int, default=1_000_000, help="inputs per protocol")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--protocols", default="ascii,binary")
    p.add_argument("--socket", action="store_true", help="against a live cachier-backend")
    args = p.parse_args(argv)
    unwind_on_sigterm()
    ok = True
    try:
        with tempfile.TemporaryDirectory(prefix="cachier-fuzz-") as tmp:
            for protocol in args.protocols.split(","):
                if args.socket:
                    ok &= over_sockets(protocol, args.inputs, args.seed, Path(tmp))
                else:
                    ok &= in_process(protocol, args.inputs, args.seed)
    except BenchError as exc:
        print(f"fuzz: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
