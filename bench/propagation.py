"""How long a change made through one process's API takes to reach another process's
live memcache connections (issue 14: "within 1 s"), through PostgreSQL LISTEN/NOTIFY.

Starts two ``cachier-backend`` processes on a fresh PostgreSQL database (A serves
``local-a``, B serves ``local-b``, one key file), creates a cache on ``local-b`` through
A's API, and holds one authenticated connection on B's region endpoint. Then, ``--rounds``
times, switches the credential's write capability off through A's API and spins on B's
connection until a write is refused; then on again until one is stored. Prints, for the
"off" direction, the time from sending the request to A until B refuses (end to end) and
from A's answer until B refuses (what the notification adds after the commit).

    python bench/propagation.py                      # 50 rounds
    python bench/propagation.py --rounds 200 --json
    python bench/propagation.py --postgres postgresql://postgres@127.0.0.1:5432/postgres

The database is created and dropped by the script; every process listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import psycopg
from processes import BenchError, free_ports, run_process, unwind_on_sigterm, wait_for_health
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-admin-token"
SET = b"set k 0 0 1\r\nv\r\n"


def backend(tmp: Path, name: str, url: str, cluster: str, stack: ExitStack) -> tuple[str, int]:
    api_port, endpoint_port = free_ports(2)
    cmd = [
        sys.executable,
        "-m",
        "backend.cli",
        "--data-dir",
        str(tmp / name),
        "--database",
        url,
        "--clusters",
        cluster,
        "--api-port",
        str(api_port),
        "--endpoint-port",
        str(endpoint_port),
    ]
    log = tmp / f"{name}.log"
    env = os.environ | {"CACHIER_ADMIN_TOKEN": TOKEN}
    proc = stack.enter_context(run_process(cmd, log, cwd=ROOT, env=env))
    api = f"http://127.0.0.1:{api_port}"
    with httpx.Client(base_url=api) as client:
        wait_for_health(proc, log, client)
    return api, endpoint_port


def ask(sock: socket.socket, request: bytes) -> bytes:
    sock.sendall(request)
    reply = b""
    while not reply.endswith(b"\r\n"):
        chunk = sock.recv(4096)
        if not chunk:
            raise BenchError(f"connection closed after {reply!r}")
        reply += chunk
    return reply


def measure(url: str, tmp: Path, rounds: int) -> dict[str, list[float]]:
    from backend.control.secrets import KEY_FILE, Secrets

    for name in ("a", "b"):
        (tmp / name).mkdir(mode=0o700)
    Secrets.load_or_create(tmp / "a")
    shutil.copy(tmp / "a" / KEY_FILE, tmp / "b" / KEY_FILE)
    with ExitStack() as stack:
        a_api, _ = backend(tmp, "a", url, "local-a", stack)
        _, b_endpoint = backend(tmp, "b", url, "local-b", stack)
        admin = httpx.Client(
            base_url=a_api, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
        )
        cache = None
        for i in range(6):
            made = admin.post("/api/v1/admin/caches", json={"name": f"bench-{i}", "plan": "1gb"})
            if made.json()["cluster"] == "local-b":
                cache = made.json()
                break
        if cache is None:
            raise BenchError("no cache was placed on local-b")
        user, password = cache["credentials"][0]["username"], cache["credentials"][0]["password"]
        dashboard = a_api + cache["dashboard_url"][cache["dashboard_url"].index("/dashboard/") :]
        patch = f"{dashboard}/api/credentials/{user}"
        time.sleep(0.5)  # B hears of the cache
        sock = socket.create_connection(("127.0.0.1", b_endpoint))
        secret = password.encode()
        if ask(sock, b"set %s 0 0 %d\r\n%s\r\n" % (user.encode(), len(secret), secret)) != (
            b"STORED\r\n"
        ):
            raise BenchError("B did not authenticate the cache's credential")
        end_to_end, after_answer, api = [], [], []
        with httpx.Client(timeout=10) as client:
            for _ in range(rounds):
                for write in (False, True):
                    start = time.perf_counter()
                    client.patch(patch, json={"write": write}).raise_for_status()
                    answered = time.perf_counter()
                    while (ask(sock, SET) == b"STORED\r\n") == (not write):
                        if time.perf_counter() - start > 5:
                            raise BenchError("the change did not reach B within 5 s")
                    applied = time.perf_counter()
                    if not write:
                        end_to_end.append((applied - start) * 1000)
                        after_answer.append((applied - answered) * 1000)
                        api.append((answered - start) * 1000)
        return {"end_to_end_ms": end_to_end, "after_answer_ms": after_answer, "api_ms": api}


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 2),
        "p95": round(ordered[int(len(ordered) * 0.95) - 1], 2),
        "max": round(ordered[-1], 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    unwind_on_sigterm()
    name = f"cachier_bench_{secrets.token_hex(4)}"
    with psycopg.connect(args.postgres, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    tmp = Path(tempfile.mkdtemp(prefix="cachier-propagation-"))
    try:
        results = measure(args.postgres.rsplit("/", 1)[0] + "/" + name, tmp, args.rounds)
    except BenchError as exc:
        print(f"propagation: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        with psycopg.connect(args.postgres, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    report = {key: summary(values) for key, values in results.items()}
    if args.json:
        print(json.dumps(report))
    else:
        print(f"capability off via A's API -> write refused on B ({args.rounds} rounds, ms)")
        for key, values in report.items():
            print(f"  {key:16} " + "  ".join(f"{k} {v}" for k, v in values.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
