#!/usr/bin/env python3
"""Data-plane throughput: cachier's memcache endpoint against a stock memcached.

Both servers get the same memcaslap load (90/10 get/set, 16 connections, one thread),
in interleaved rounds so drift on the machine (thermal, noisy neighbours) hits both
equally. memcaslap cannot authenticate, so for cachier it runs under the LD_PRELOAD shim
from tools/authshim.c, which logs every new connection in before memcaslap sees it.

    python bench/dataplane.py --seconds 10 --rounds 3
    python bench/dataplane.py --mode binary --json

All traffic stays on 127.0.0.1; both servers and every temp dir are removed on exit,
including Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shlex
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
from processes import BenchError, free_ports, log_tail, run_process, unwind_on_sigterm

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_AUTHSHIM = REPO_ROOT / "tools" / "authshim.c"
HOST = "127.0.0.1"
HEALTH_TIMEOUT = 20.0  # seconds for cachier's API to answer /healthz
PORT_TIMEOUT = 10.0  # seconds for memcached to accept connections
RUN_GRACE = 30.0  # seconds memcaslap may overrun --seconds before we give up on it
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
DEBIAN_PACKAGES = {"memcached": "memcached", "memcaslap": "libmemcached-tools", "gcc": "gcc"}


class RunError(Exception):
    """One server could not be measured; the other server's numbers are still worth showing."""


@dataclass
class RunResult:
    """The numbers memcaslap prints at the end of one run."""

    tps: int
    ops: int
    cmd_get: int
    cmd_set: int
    get_misses: int


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
        default=os.environ.get("CACHIER_TEST_POSTGRES", DEFAULT_POSTGRES),
        metavar="URL",
        help=f"with --relay: a PostgreSQL database to create a scratch one from "
        f"(default: $CACHIER_TEST_POSTGRES or {DEFAULT_POSTGRES})",
    )
    args = p.parse_args(argv)
    if not 1 <= args.seconds <= 3600:
        p.error("--seconds must be between 1 and 3600")
    if not 1 <= args.rounds <= 50:
        p.error("--rounds must be between 1 and 50")
    return args


def require_tools() -> None:
    """Fail early with the package to install, rather than halfway through a run."""
    missing = [tool for tool in DEBIAN_PACKAGES if shutil.which(tool) is None]
    if missing:
        packages = " ".join(sorted({DEBIAN_PACKAGES[t] for t in missing}))
        raise BenchError(f"missing {', '.join(missing)}; install Debian packages: {packages}")


def backend_command() -> list[str]:
    """The installed entry point, or the module when the repo is used without installing."""
    exe = shutil.which("cachier-backend")
    return [exe] if exe else [sys.executable, "-m", "backend.cli"]


def build_authshim(source: Path, workdir: Path) -> Path:
    """Compile the shim fresh each time so it always matches the source in the repository."""
    if not source.is_file():
        raise BenchError(f"authshim source not found: {source} (use --authshim PATH)")
    out = workdir / "authshim.so"
    cmd = ["gcc", "-shared", "-fPIC", "-O2", "-o", str(out), str(source), "-ldl"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise BenchError(f"building authshim failed: {proc.stderr.strip()}")
    return out


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


def create_cache(
    api: str, token: str, name: str = "bench", cluster: str | None = None
) -> tuple[int, str, str]:
    """Make the tenant memcaslap will load; returns (endpoint port, username, password)."""
    resp = httpx.post(
        f"{api}/api/v1/admin/caches",
        json={"name": name, "plan": "1gb"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10.0,
    )
    if resp.status_code != 201:
        raise BenchError(f"creating the cache failed: HTTP {resp.status_code} {resp.text[:200]}")
    body = resp.json()
    if cluster is not None and body["cluster"] != cluster:
        raise BenchError(f"cache {name} was placed on {body['cluster']}, not {cluster}")
    host, _, port = body["servers"].rpartition(":")
    if host not in (HOST, "localhost"):
        raise BenchError(f"cachier endpoint {body['servers']} is not on {HOST}")
    cred = body["credentials"][0]
    return int(port), cred["username"], cred["password"]


# ---------------------------------------------------------------- auth probe


def probe_auth(port: int, user: str, password: str, mode: str) -> str | None:
    """Log in once by hand, the way the shim will, and say what went wrong if it fails.

    Without this a refused login shows up as memcaslap failing to connect, which reads
    like a crash; this turns it into "cachier refused ..." before any time is spent.
    """
    try:
        with socket.create_connection((HOST, port), timeout=5) as sock:
            if mode == "binary":
                return _probe_binary(sock, user, password)
            return _probe_ascii(sock, user, password)
    except OSError as exc:
        return f"connection failed: {exc}"


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    """Read n bytes or raise, so a closed connection is reported as such."""
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("server closed the connection")
        buf += chunk
    return buf


def _probe_ascii(sock: socket.socket, user: str, password: str) -> str | None:
    """ASCII login is a set of the username with the password as value, answered STORED."""
    pw = password.encode()
    sock.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (user.encode(), len(pw), pw))
    line = b""
    while not line.endswith(b"\r\n") and len(line) < 512:
        line += _recv_exact(sock, 1)
    return None if line == b"STORED\r\n" else f"ascii login answered {line.strip()!r}"


def _probe_binary(sock: socket.socket, user: str, password: str) -> str | None:
    """Binary login is SASL PLAIN (opcode 0x21), answered with status 0."""
    mech, value = b"PLAIN", b"\0" + user.encode() + b"\0" + password.encode()
    header = struct.pack(">BBHBBHIIQ", 0x80, 0x21, len(mech), 0, 0, 0, len(mech) + len(value), 0, 0)
    sock.sendall(header + mech + value)
    try:
        reply = _recv_exact(sock, 24)
    except ConnectionError:
        return "closed the connection on a binary-protocol SASL login (binary not supported?)"
    status, body_len = struct.unpack(">H", reply[6:8])[0], struct.unpack(">I", reply[8:12])[0]
    _recv_exact(sock, body_len)
    return None if status == 0 else f"binary SASL login answered status 0x{status:04x}"


# ---------------------------------------------------------------- load


def memcaslap_command(port: int, seconds: int, mode: str) -> list[str]:
    """The one load shape used for both servers, so the ratio compares like with like."""
    cmd = [
        "memcaslap",
        "-s",
        f"{HOST}:{port}",
        "-T",
        "1",
        "-c",
        "16",
        "-t",
        f"{seconds}s",
        "-X",
        "1024",
        "-w",
        "1k",
    ]
    return [*cmd, "-B"] if mode == "binary" else cmd


def shown_command(target: Target, seconds: int, mode: str) -> str:
    """The command as a person would paste it into a shell (shim variables included)."""
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in target.env.items())
    cmd = shlex.join(memcaslap_command(target.port, seconds, mode))
    return f"{env} {cmd}" if env else cmd


_NUMBERS = {
    "tps": re.compile(r"\bTPS:\s*(\d+)"),
    "ops": re.compile(r"\bOps:\s*(\d+)"),
    "cmd_get": re.compile(r"^cmd_get:\s*(\d+)", re.M),
    "cmd_set": re.compile(r"^cmd_set:\s*(\d+)", re.M),
    "get_misses": re.compile(r"^get_misses:\s*(\d+)", re.M),
}


def parse_output(text: str) -> RunResult:
    """Take the last value of each counter: the final summary, not any periodic line."""
    values: dict[str, int] = {}
    for name, pattern in _NUMBERS.items():
        found = pattern.findall(text)
        if not found:
            raise RunError(f"no {name!r} in memcaslap output: {_tail(text)}")
        values[name] = int(found[-1])
    return RunResult(**values)


def _tail(text: str, lines: int = 4) -> str:
    """The last few lines of tool output, on one line, for error messages."""
    return " | ".join(text.strip().splitlines()[-lines:]) or "(no output)"


def run_load(target: Target, seconds: int, mode: str, workdir: Path) -> RunResult:
    """One memcaslap run; checks that gets really happened, since TPS alone can hide errors."""
    cmd = memcaslap_command(target.port, seconds, mode)
    try:
        proc = subprocess.run(
            cmd,
            env={**os.environ, **target.env},
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=seconds + RUN_GRACE,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired as exc:
        raise RunError(f"memcaslap did not finish within {seconds + RUN_GRACE:.0f}s") from exc
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RunError(f"memcaslap exited with {proc.returncode}: {_tail(output)}")
    result = parse_output(output)
    if result.cmd_get == 0 or result.tps == 0:
        raise RunError(f"no gets were served (cmd_get={result.cmd_get}, TPS={result.tps})")
    return result


def run_rounds(targets: list[Target], args: argparse.Namespace, workdir: Path) -> None:
    """Alternate the servers each round so slow drift on the machine affects both alike."""
    for round_no in range(1, args.rounds + 1):
        for target in targets:
            if target.error:
                continue
            if not args.json:
                print(f"round {round_no}/{args.rounds}: {target.name} ...", flush=True)
            try:
                target.results.append(run_load(target, args.seconds, args.mode, workdir))
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
        if t.latency_us is not None:
            p50, p99 = t.latency_us
            print(f"{t.name}: one connection, sequential gets: p50 {p50:.0f} µs, p99 {p99:.0f} µs")
    for t in targets:
        if t.error:
            print(f"{t.name}: NOT MEASURED: {t.error}")
    print()
    print(f"mode {args.mode}, {args.seconds}s per run, {args.rounds} round(s); commands:")
    for t in targets:
        print(f"  {t.name}: {shown_command(t, args.seconds, args.mode)}")


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
                "command": shown_command(t, args.seconds, args.mode),
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
        env = {
            "LD_PRELOAD": str(shim),
            "AUTH_PORT": str(port),
            "AUTH_USER": user,
            "AUTH_PASS": password,
            "AUTH_MODE": args.mode,
        }
        targets = [Target("memcached", mc_port), Target("cachier", port, env)]
        refused = probe_auth(port, user, password, args.mode)
        if refused:
            targets[1].error = f"cachier refused the {args.mode} protocol: {refused}"
            if not args.json:
                print(targets[1].error, flush=True)
        run_rounds(targets, args, workdir)
    return targets


@contextlib.contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for the two processes; dropped afterwards."""
    try:
        import psycopg
        from psycopg import sql

        name = f"cachier_bench_{os.getpid()}_{secrets.token_hex(4)}"
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except Exception as exc:  # psycopg missing or PostgreSQL unreachable: one line
        raise BenchError(f"--relay needs PostgreSQL at {admin_url}: {exc}") from None
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def bench_relay(args: argparse.Namespace, workdir: Path) -> list[Target]:
    """Process B runs cluster local-b and serves the cache directly on its endpoint;
    process A runs local-a and relays the same cache's connections to B's proxies. The
    same memcaslap load alternates between B's endpoint (direct) and A's (relayed)."""
    shim = build_authshim(args.authshim, workdir)
    api_b, ep_b, api_a, ep_a = free_ports(4)
    token = secrets.token_urlsafe(24)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}  # this tree's code, not an install
    common = ["--host", HOST, "--admin-token", token, "--lenient-keys"]
    dir_a, dir_b = workdir / "a", workdir / "b"
    dir_b.mkdir()
    with scratch_database(args.postgres) as database:
        b_cmd = [sys.executable, "-m", "backend.cli", *common, "--database", database]
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
            dir_a.mkdir()
            shutil.copy(dir_b / "secret.key", dir_a / "secret.key")  # one service, one key
            a_cmd = [sys.executable, str(REPO_ROOT / "bench" / "routed_backend.py")]
            a_cmd += ["--route", f"local-b={','.join(proxies)}", "--", *common]
            a_cmd += ["--database", database, "--data-dir", str(dir_a), "--clusters", "local-a"]
            a_cmd += ["--api-port", str(api_a), "--endpoint-port", str(ep_a)]
            with run_process(a_cmd, a_log, cwd=REPO_ROOT, env=env) as a:
                wait_for_health(a, a_log, f"http://{HOST}:{api_a}")
                targets = []
                for name, target_port in (("direct", port), ("relayed", ep_a)):
                    shim_env = {
                        "LD_PRELOAD": str(shim),
                        "AUTH_PORT": str(target_port),
                        "AUTH_USER": user,
                        "AUTH_PASS": password,
                        "AUTH_MODE": args.mode,
                    }
                    targets.append(Target(name, target_port, shim_env))
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
        if _probe_ascii(sock, user, password) is not None:
            raise RunError("the latency probe could not log in")
        sock.sendall(b"set lat 0 0 5\r\nhello\r\n")
        _recv_exact(sock, len(b"STORED\r\n"))
        reply = b"VALUE lat 0 5\r\nhello\r\nEND\r\n"
        times = []
        for _ in range(count):
            started = time.perf_counter()
            sock.sendall(b"get lat\r\n")
            _recv_exact(sock, len(reply))
            times.append((time.perf_counter() - started) * 1e6)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99)]


def remote_proxies(api: str, cluster: str) -> list[str]:
    """Where the owning process's proxies of ``cluster`` listen, from its status API."""
    status = httpx.get(f"{api}/api/v1/status", timeout=10.0).json()
    found = [
        proxy["address"]
        for region in status["regions"]
        for c in region["clusters"]
        if c["name"] == cluster
        for proxy in c["proxies"]
        if proxy["address"]
    ]
    if not found:
        raise BenchError(f"the owning process lists no address for cluster {cluster}")
    return found


def main(argv: list[str] | None = None) -> int:
    """Exit 0 if every server was measured, 1 if one was not, 2 on setup errors."""
    args = parse_args(argv)
    unwind_on_sigterm()
    try:
        require_tools()
        with tempfile.TemporaryDirectory(prefix="cachier-bench-") as tmp:
            targets = (bench_relay if args.relay else bench)(args, Path(tmp))
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
