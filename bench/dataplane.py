#!/usr/bin/env python3
"""Data-plane throughput: cachier's memcache endpoint against a stock memcached.

Both servers get the same memcaslap load (90/10 get/set, 16 connections, one thread),
in interleaved rounds so drift on the machine (thermal, noisy neighbours) hits both
equally. memcaslap cannot authenticate, so for cachier it runs under the LD_PRELOAD shim
from tools/authshim.c, which logs every new connection in before memcaslap sees it.

    python bench/dataplane.py --seconds 10 --rounds 3
    python bench/dataplane.py --mode binary --json
    python bench/dataplane.py --before /tmp/cachier-main   # that tree's cachier vs this one

All traffic stays on 127.0.0.1; both servers and every temp dir are removed on exit,
including Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
from memcaslap import (
    DEFAULT_AUTHSHIM,
    HOST,
    REPO_ROOT,
    RunError,
    RunResult,
    build_authshim,
    probe_ascii,
    probe_auth,
    recv_exact,
    require_tools,
    run_load,
    shim_env,
    shown_command,
)
from multiproc import (
    create_cache,
    default_postgres,
    remote_proxies,
    scratch_database,
    share_key,
    tree_backend,
)
from processes import (
    BenchError,
    cpu_seconds,
    free_ports,
    log_tail,
    run_process,
    unwind_on_sigterm,
)

HEALTH_TIMEOUT = 20.0  # seconds for cachier's API to answer /healthz
PORT_TIMEOUT = 10.0  # seconds for memcached to accept connections


@dataclass
class Target:
    """One server under test and how memcaslap must be launched to reach it."""

    name: str
    port: int
    env: dict[str, str] = field(default_factory=dict)
    results: list[RunResult] = field(default_factory=list)
    error: str | None = None
    # --relay: round trips of one connection's sequential gets, microseconds (p50, p99)
    latency_us: tuple[float, float] | None = None
    # --before: the backend's process, and its CPU µs per operation in each round
    pid: int | None = None
    cpu_us_per_op: list[float] = field(default_factory=list)

    def median(self) -> float | None:
        """Median TPS, because one disturbed round should not move the headline number."""
        return statistics.median(r.tps for r in self.results) if self.results else None


# ---------------------------------------------------------------- setup


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line flags; defaults match the numbers quoted in bench/README.md."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=int, default=10, help="length of each run (default: 10)")
    p.add_argument("--rounds", type=int, default=2, help="runs per server (default: 2)")
    p.add_argument(
        "--mode",
        choices=("ascii", "binary"),
        default="ascii",
        help="memcache protocol memcaslap speaks (default: ascii)",
    )
    p.add_argument(
        "--authshim",
        type=Path,
        default=DEFAULT_AUTHSHIM,
        help=f"path of authshim.c (default: {DEFAULT_AUTHSHIM})",
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary instead of a table")
    p.add_argument(
        "--relay",
        action="store_true",
        help="instead of memcached: two cachier processes on one PostgreSQL database, the "
        "cache's own process's endpoint (direct) against the other's, which relays",
    )
    p.add_argument(
        "--postgres",
        default=default_postgres(),
        metavar="URL",
        help=f"with --relay: a PostgreSQL database to create a scratch one from "
        f"(default: $CACHIER_TEST_POSTGRES or {default_postgres()})",
    )
    p.add_argument(
        "--before",
        type=Path,
        metavar="TREE",
        help="instead of memcached: the cachier of another checkout (e.g. a worktree of "
        "main) against this tree's, alternating; the ratio is after/before",
    )
    args = p.parse_args(argv)
    if args.before is not None and not (args.before / "backend" / "cli.py").is_file():
        p.error(f"--before {args.before}: no backend/cli.py there")
    if args.before is not None and args.relay:
        p.error("--before and --relay do not combine")
    if not 1 <= args.seconds <= 3600:
        p.error("--seconds must be between 1 and 3600")
    if not 1 <= args.rounds <= 50:
        p.error("--rounds must be between 1 and 50")
    return args


def backend_command() -> list[str]:
    """The installed entry point, or the module when the repo is used without installing."""
    exe = shutil.which("cachier-backend")
    return [exe] if exe else tree_backend()[0]


# ---------------------------------------------------------------- server processes


def ensure_alive(proc: subprocess.Popen[bytes], name: str, log: Path) -> None:
    """Turn a server that died during startup into a readable error."""
    if proc.poll() is not None:
        raise BenchError(f"{name} exited with {proc.returncode}: {log_tail(log)}")


def wait_for_port(proc: subprocess.Popen[bytes], name: str, log: Path, port: int) -> None:
    """memcached has no health endpoint; accepting a TCP connection is its readiness."""
    deadline = time.monotonic() + PORT_TIMEOUT
    while time.monotonic() < deadline:
        ensure_alive(proc, name, log)
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return
        time.sleep(0.05)
    raise BenchError(f"{name} did not accept connections on {HOST}:{port} in {PORT_TIMEOUT}s")


def wait_for_health(proc: subprocess.Popen[bytes], log: Path, api: str) -> None:
    """The API answers /healthz only after the endpoints are listening."""
    deadline = time.monotonic() + HEALTH_TIMEOUT
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            ensure_alive(proc, "cachier-backend", log)
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"{api}/healthz").status_code == 200:
                    return
            time.sleep(0.1)
    raise BenchError(f"cachier-backend did not answer {api}/healthz in {HEALTH_TIMEOUT}s")


# ---------------------------------------------------------------- load


def run_rounds(targets: list[Target], args: argparse.Namespace, workdir: Path) -> None:
    """Alternate the servers each round so slow drift on the machine affects both alike."""
    for round_no in range(1, args.rounds + 1):
        for target in targets:
            if target.error:
                continue
            if not args.json:
                print(f"round {round_no}/{args.rounds}: {target.name} ...", flush=True)
            try:
                cpu = cpu_seconds(target.pid) if target.pid else 0.0
                result = run_load(target.port, target.env, args.seconds, args.mode, workdir)
                target.results.append(result)
                if target.pid and result.tps:
                    used = cpu_seconds(target.pid) - cpu
                    target.cpu_us_per_op.append(used * 1e6 / (result.tps * args.seconds))
            except RunError as exc:
                target.error = str(exc)


# ---------------------------------------------------------------- report


def ratio(targets: list[Target]) -> float | None:
    """second/first of the medians (cachier/memcached, relayed/direct); None when either
    side has no numbers."""
    first, second = (t.median() for t in targets)
    return second / first if first and second else None


def ratio_name(targets: list[Target]) -> str:
    return f"{targets[1].name}/{targets[0].name}"


def print_table(targets: list[Target], args: argparse.Namespace) -> None:
    """A table a person can paste into an issue, with the commands that produced it."""
    heads = [f"r{i}" for i in range(1, args.rounds + 1)]
    print()
    print(f"{'server':<10} " + " ".join(f"{h:>8}" for h in heads) + f" {'median':>8}")
    for t in targets:
        cells = [f"{r.tps:>8}" for r in t.results] + [f"{'-':>8}"] * (args.rounds - len(t.results))
        med = t.median()
        shown = f"{med:.0f}" if med is not None else "-"
        print(f"{t.name:<10} " + " ".join(cells) + f" {shown:>8}")
    r = ratio(targets)
    print(f"ratio {ratio_name(targets)}: {f'{r:.3f}' if r is not None else 'n/a'}")
    print()
    for t in targets:
        if t.results:
            last = t.results[-1]
            print(
                f"{t.name}: last run cmd_get={last.cmd_get} cmd_set={last.cmd_set} "
                f"get_misses={last.get_misses}"
            )
    for t in targets:
        if t.cpu_us_per_op:
            per_op = " ".join(f"{c:.1f}" for c in t.cpu_us_per_op)
            median = statistics.median(t.cpu_us_per_op)
            print(f"{t.name}: backend CPU µs per op by round {per_op}; median {median:.1f}")
    if all(t.results for t in targets) and len(targets) == 2:
        pairs = [b.tps / a.tps for a, b in zip(*(t.results for t in targets), strict=False)]
        shown = " ".join(f"{p:.3f}" for p in pairs)
        print(f"{ratio_name(targets)} by round: {shown}; median {statistics.median(pairs):.3f}")
    for t in targets:
        if t.latency_us is not None:
            p50, p99 = t.latency_us
            print(f"{t.name}: one connection, sequential gets: p50 {p50:.0f} µs, p99 {p99:.0f} µs")
    for t in targets:
        if t.error:
            print(f"{t.name}: NOT MEASURED: {t.error}")
    print()
    print(f"mode {args.mode}, {args.seconds}s per run, {args.rounds} round(s); commands:")
    for t in targets:
        print(f"  {t.name}: {shown_command(t.port, t.env, args.seconds, args.mode)}")


def print_json(targets: list[Target], args: argparse.Namespace) -> None:
    """Machine-readable summary for comparing runs over time."""
    summary = {
        "mode": args.mode,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "servers": {
            t.name: {
                "tps": [r.tps for r in t.results],
                "median_tps": t.median(),
                "runs": [asdict(r) for r in t.results],
                "error": t.error,
                "latency_us_p50_p99": t.latency_us,
                "cpu_us_per_op": t.cpu_us_per_op,
                "command": shown_command(t.port, t.env, args.seconds, args.mode),
            }
            for t in targets
        },
        f"ratio_{ratio_name(targets).replace('/', '_')}": ratio(targets),
    }
    print(json.dumps(summary, indent=2))


# ---------------------------------------------------------------- main


def bench(args: argparse.Namespace, workdir: Path) -> list[Target]:
    """Start both servers, measure, and stop them (the with-blocks stop them on any exit)."""
    shim = build_authshim(args.authshim, workdir)
    mc_port, api_port, ep_port = free_ports(3)
    token = secrets.token_urlsafe(24)
    api = f"http://{HOST}:{api_port}"
    mc_cmd = ["memcached", "-t", "1", "-U", "0", "-l", HOST, "-p", str(mc_port)]
    if os.geteuid() == 0:
        mc_cmd += ["-u", "root"]  # memcached refuses to run as root without it
    data_dir = workdir / "data"
    data_dir.mkdir()
    ca_cmd = [
        *backend_command(),
        "--data-dir",
        str(data_dir),
        "--host",
        HOST,
        "--api-port",
        str(api_port),
        "--endpoint-port",
        str(ep_port),
        "--admin-token",
        token,
        "--lenient-keys",
    ]
    mc_log, ca_log = workdir / "memcached.log", workdir / "cachier.log"
    with run_process(mc_cmd, mc_log) as mc, run_process(ca_cmd, ca_log) as ca:
        wait_for_port(mc, "memcached", mc_log, mc_port)
        wait_for_health(ca, ca_log, api)
        port, user, password = create_cache(api, token)
        env = shim_env(shim, port, user, password, args.mode)
        targets = [Target("memcached", mc_port), Target("cachier", port, env)]
        refused = probe_auth(port, user, password, args.mode)
        if refused:
            targets[1].error = f"cachier refused the {args.mode} protocol: {refused}"
            if not args.json:
                print(targets[1].error, flush=True)
        run_rounds(targets, args, workdir)
    return targets


def bench_trees(args: argparse.Namespace, workdir: Path) -> list[Target]:
    """Two cachier backends, ``--before``'s tree and this one (each run from its tree with
    ``PYTHONPATH``), both up for the whole run; the same memcaslap load alternates between
    them, so a change's cost on the data plane is the after/before ratio of one run."""
    shim = build_authshim(args.authshim, workdir)
    token = secrets.token_urlsafe(24)
    targets = []
    with contextlib.ExitStack() as running:
        for name, tree in (("before", args.before.resolve()), ("after", REPO_ROOT)):
            api_port, ep_port = free_ports(2)
            data_dir = workdir / name
            data_dir.mkdir()
            cmd = [sys.executable, "-m", "backend.cli", "--data-dir", str(data_dir)]
            cmd += ["--host", HOST, "--api-port", str(api_port), "--endpoint-port", str(ep_port)]
            cmd += ["--admin-token", token, "--lenient-keys"]
            env = {**os.environ, "PYTHONPATH": str(tree)}
            log = workdir / f"{name}.log"
            proc = running.enter_context(run_process(cmd, log, cwd=tree, env=env))
            api = f"http://{HOST}:{api_port}"
            wait_for_health(proc, log, api)
            port, user, password = create_cache(api, token)
            login = shim_env(shim, port, user, password, args.mode)
            targets.append(Target(name, port, login, pid=proc.pid))
            refused = probe_auth(port, user, password, args.mode)
            if refused:
                targets[-1].error = f"{name} refused the {args.mode} protocol: {refused}"
        run_rounds(targets, args, workdir)
    return targets


def bench_relay(args: argparse.Namespace, workdir: Path) -> list[Target]:
    """Process B runs cluster local-b and serves the cache directly on its endpoint;
    process A runs local-a and relays the same cache's connections to B's proxies. The
    same memcaslap load alternates between B's endpoint (direct) and A's (relayed)."""
    shim = build_authshim(args.authshim, workdir)
    api_b, ep_b, api_a, ep_a = free_ports(4)
    token = secrets.token_urlsafe(24)
    backend, env = tree_backend()  # this tree's code, not an install
    common = ["--host", HOST, "--admin-token", token, "--lenient-keys"]
    dir_a, dir_b = workdir / "a", workdir / "b"
    dir_b.mkdir()
    with scratch_database(args.postgres) as database:
        b_cmd = [*backend, *common, "--database", database]
        b_cmd += ["--data-dir", str(dir_b), "--api-port", str(api_b), "--endpoint-port", str(ep_b)]
        b_cmd += ["--clusters", "local-b"]
        b_log, a_log = workdir / "b.log", workdir / "a.log"
        with run_process(b_cmd, b_log, cwd=REPO_ROOT, env=env) as b:
            api = f"http://{HOST}:{api_b}"
            wait_for_health(b, b_log, api)
            # Placement alternates between the clusters: the second cache is on local-b.
            create_cache(api, token)
            port, user, password = create_cache(api, token, "bench-relayed", "local-b")
            proxies = remote_proxies(api, "local-b")
            share_key(dir_b, dir_a)
            a_cmd = [sys.executable, str(REPO_ROOT / "bench" / "routed_backend.py")]
            a_cmd += ["--route", f"local-b={','.join(proxies)}", "--", *common]
            a_cmd += ["--database", database, "--data-dir", str(dir_a), "--clusters", "local-a"]
            a_cmd += ["--api-port", str(api_a), "--endpoint-port", str(ep_a)]
            with run_process(a_cmd, a_log, cwd=REPO_ROOT, env=env) as a:
                wait_for_health(a, a_log, f"http://{HOST}:{api_a}")
                targets = []
                for name, target_port in (("direct", port), ("relayed", ep_a)):
                    login = shim_env(shim, target_port, user, password, args.mode)
                    targets.append(Target(name, target_port, login))
                    refused = probe_auth(target_port, user, password, args.mode)
                    if refused:
                        targets[-1].error = f"{name} refused the {args.mode} login: {refused}"
                run_rounds(targets, args, workdir)
                for target in targets:
                    if not target.error:
                        target.latency_us = round_trips(target.port, user, password)
    return targets


def round_trips(port: int, user: str, password: str, count: int = 3000) -> tuple[float, float]:
    """p50 and p99 of ``count`` sequential one-key gets on one idle connection: what one
    request pays for the hop, apart from throughput under load."""
    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if probe_ascii(sock, user, password) is not None:
            raise RunError("the latency probe could not log in")
        sock.sendall(b"set lat 0 0 5\r\nhello\r\n")
        recv_exact(sock, len(b"STORED\r\n"))
        reply = b"VALUE lat 0 5\r\nhello\r\nEND\r\n"
        times = []
        for _ in range(count):
            started = time.perf_counter()
            sock.sendall(b"get lat\r\n")
            recv_exact(sock, len(reply))
            times.append((time.perf_counter() - started) * 1e6)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99)]


def main(argv: list[str] | None = None) -> int:
    """Exit 0 if every server was measured, 1 if one was not, 2 on setup errors."""
    args = parse_args(argv)
    unwind_on_sigterm()
    try:
        require_tools()
        with tempfile.TemporaryDirectory(prefix="cachier-bench-") as tmp:
            run = bench_relay if args.relay else bench_trees if args.before else bench
            targets = run(args, Path(tmp))
    except BenchError as exc:
        print(f"dataplane bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dataplane bench: interrupted; servers stopped", file=sys.stderr)
        return 130
    (print_json if args.json else print_table)(targets, args)
    return 0 if all(t.error is None for t in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
