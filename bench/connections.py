#!/usr/bin/env python3
"""Connection load: many authenticated and unauthenticated connections held open at once.

Issue 12 asks what the backend costs while it holds thousands of client connections, and
whether the rest of the service (HTTP API, memcache traffic on other connections) stays
responsive meanwhile. Idle connections are the normal state of a memcache service: every
client process keeps a pool open. Connections that never authenticate are what a scanner
or a broken client leaves behind; the backend closes them after ``--auth-timeout``.

Two runs of a fresh ``cachier-backend`` (``python -m backend.cli`` from this tree, a temp
``--data-dir``, free loopback ports, a random admin token):

1. **Held** (``--auth-timeout`` long enough that the unauthenticated connections outlive the
   measurement): a cache is created through the admin API, API and memcache ``get``
   latency are measured on an idle backend (``--baseline`` seconds), then ``--auth``
   connections authenticate (ASCII: ``set <username> 0 0 <len>`` + password -> ``STORED``)
   and ``--idle`` connections open and send nothing; latency is measured again over
   ``--seconds`` with everything open. Then the authenticated ones are closed, and the
   auth timeout closes the others. ``--cycles`` - 1 more times everything is opened again
   and closed from our side: RSS that keeps growing from cycle to cycle is memory a closed
   connection leaves behind. The backend's RSS (VmRSS) and open descriptors are read at
   each step.
2. **Default timeout** (the backend's own default, 5 s): ``--idle`` connections open and
   send nothing; every one must be closed by the server with
   ``CLIENT_ERROR authentication timeout`` about 5 s later.

    python bench/connections.py                       # 5000 + 2000, ~2 min
    python bench/connections.py --auth 1000 --idle 500 --seconds 10
    python bench/connections.py --json

All traffic stays on 127.0.0.1; the backends and their temp dirs are removed on exit,
including Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import resource
import secrets
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from processes import (
    BenchError,
    free_ports,
    log_tail,
    run_process,
    unwind_on_sigterm,
    wait_for_health,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
HTTP_TIMEOUT = 10.0  # seconds for one API call; local, so anything longer means "hung"
CONNECT_TIMEOUT = 15.0  # seconds for one connect + login while thousands are being opened
PROBE_PAUSE = 0.05  # seconds between probe rounds: a steady trickle, not a load test
FD_MARGIN = 200  # descriptors beyond the connections: logs, the database, API sockets
IP_BIND_ADDRESS_NO_PORT = 24  # Linux: pick the source port at connect, not at bind
DEFAULT_AUTH_TIMEOUT = 5.0  # the backend's default, checked in the second run
# RSS a closed connection may leave behind, averaged over the extra cycles. Reused memory
# shows ~0.05 KiB here; a connection's own state is a few KiB.
GROWTH_LIMIT_KIB = 1.0


@dataclass
class Latency:
    """Round trips of one kind of request in one window, in milliseconds."""

    count: int = 0
    errors: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    error_samples: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, values: list[float], errors: list[str]) -> Latency:
        ordered = sorted(values)

        def pick(q: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

        return cls(
            count=len(ordered),
            errors=len(errors),
            p50_ms=pick(0.50) if ordered else None,
            p99_ms=pick(0.99) if ordered else None,
            max_ms=round(ordered[-1], 2) if ordered else None,
            error_samples=errors[:5],
        )


@dataclass
class Memory:
    """The backend's resident memory and open descriptors at one step."""

    step: str
    rss_mib: float
    fds: int
    server_connections: int | None = None  # curr_connections of the cache, from the API


@dataclass
class Opened:
    """How opening a batch of connections went."""

    kind: str
    wanted: int
    opened: int
    seconds: float
    failures: dict[str, int]


@dataclass
class HeldRun:
    auth_timeout: float
    baseline: dict[str, Latency]
    loaded: dict[str, Latency]
    opened: list[Opened]
    memory: list[Memory]
    auth_closed_early: int  # authenticated connections the server closed during the window
    idle_closed_early: int  # unauthenticated ones closed before the window ended
    idle_closed_by_timeout: int
    idle_timeout_reply: int
    idle_left_open: int
    cycles: list[Opened] = field(default_factory=list)  # the extra open/close cycles
    # RSS growth from the end of cycle 1 to the end of the last, per connection opened and
    # closed meanwhile: memory that is reused stays near 0, a per-connection leak does not.
    growth_kib_per_conn: float | None = None


@dataclass
class TimeoutRun:
    auth_timeout: float
    opened: Opened
    closed: int
    with_reply: int
    left_open: int
    close_after_p50_s: float | None
    close_after_max_s: float | None
    memory: list[Memory]
    latency: dict[str, Latency]


# ---------------------------------------------------------------- setup


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line flags; the defaults are the issue's sizes."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--auth", type=int, default=5000, help="authenticated connections (5000)")
    p.add_argument(
        "--idle", type=int, default=2000, help="connections that never authenticate (2000)"
    )
    p.add_argument(
        "--seconds", type=float, default=20.0, help="measurement window with everything open (20)"
    )
    p.add_argument(
        "--baseline",
        type=float,
        default=5.0,
        help="measurement window before any connection is open (5)",
    )
    p.add_argument(
        "--auth-timeout",
        type=float,
        default=None,
        help="backend --auth-timeout of the held run (default: --seconds + 30, so "
        "the unauthenticated connections outlive the window)",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        default=100,
        help="connects in flight at once; the listen backlog is 1024 (100)",
    )
    p.add_argument(
        "--sources",
        type=int,
        default=1,
        help="spread connections over 127.0.0.1..N, if one source address runs out "
        "of ephemeral ports (1)",
    )
    p.add_argument(
        "--cycles",
        type=int,
        default=3,
        help="open/close cycles in the held run; the extra ones open everything "
        "again and close it from the client side, to tell a leak from memory "
        "the allocator keeps (3)",
    )
    p.add_argument(
        "--no-timeout-run",
        action="store_true",
        help="skip the second run at the backend's default auth timeout",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = p.parse_args(argv)
    if args.auth < 0 or args.idle < 0 or args.seconds <= 0 or args.baseline < 0:
        p.error("counts must be >= 0 and --seconds > 0")
    if not 1 <= args.sources <= 254 or args.concurrency < 1 or args.cycles < 1:
        p.error("--sources must be 1..254, --concurrency and --cycles >= 1")
    if args.auth_timeout is None:
        args.auth_timeout = args.seconds + 30.0
    return args


def raise_nofile(needed: int) -> int:
    """Raise our descriptor limit to the hard limit. The backend is started after this, so
    it inherits the same limit: it holds one descriptor per connection, as we do."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < needed:
        raise BenchError(
            f"RLIMIT_NOFILE hard limit is {hard}, {needed} descriptors needed; "
            "raise it (ulimit -Hn) or open fewer connections"
        )
    return target


def memory_of(pid: int, step: str, server_connections: int | None = None) -> Memory:
    """VmRSS from /proc (what the kernel charges the process), and its descriptor count."""
    rss_kib = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss_kib = int(line.split()[1])
    fds = len(list(Path(f"/proc/{pid}/fd").iterdir()))
    return Memory(step, round(rss_kib / 1024, 1), fds, server_connections)


# ---------------------------------------------------------------- the backend


@dataclass
class Backend:
    """A running backend and what the script needs to talk to it."""

    proc: Any
    log: Path
    client: httpx.Client
    token: str
    endpoint: tuple[str, int]
    username: str = ""
    password: str = ""

    def admin(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return self.client.request(method, f"/api/v1/admin{path}", headers=headers, **kw)

    def create_cache(self, name: str) -> None:
        resp = self.admin("POST", "/caches", json={"name": name, "plan": "1gb"})
        if resp.status_code != 201:
            raise BenchError(f"create cache: HTTP {resp.status_code} {resp.text[:200]}")
        body = resp.json()
        host, port = body["servers"].rsplit(":", 1)
        self.endpoint = (host, int(port))
        primary = next(c for c in body["credentials"] if c["primary"])
        self.username, self.password = primary["username"], primary["password"]

    def server_connections(self) -> int | None:
        """curr_connections of every cache, as the server counts them (authenticated only)."""
        resp = self.admin("GET", "/caches")
        if resp.status_code != 200:
            return None
        return sum(c["usage"]["connections"] for c in resp.json())

    def memory(self, step: str) -> Memory:
        if self.proc.poll() is not None:
            raise BenchError(f"cachier-backend died: {log_tail(self.log)}")
        return memory_of(self.proc.pid, step, self.server_connections())

    def auth_line(self) -> bytes:
        pw = self.password.encode()
        return b"set %s 0 0 %d\r\n%s\r\n" % (self.username.encode(), len(pw), pw)


@contextlib.contextmanager
def backend(workdir: Path, name: str, auth_timeout: float | None) -> Any:
    """A fresh backend with its own data dir; ``auth_timeout`` None keeps its default."""
    api_port, ep_port = free_ports(2)
    token = secrets.token_urlsafe(24)
    cmd = [
        sys.executable,
        "-m",
        "backend.cli",
        "--data-dir",
        str(workdir / f"data-{name}"),
        "--host",
        HOST,
        "--api-port",
        str(api_port),
        "--endpoint-port",
        str(ep_port),
        "--admin-token",
        token,
    ]
    if auth_timeout is not None:
        cmd += ["--auth-timeout", str(auth_timeout)]
    log = workdir / f"backend-{name}.log"
    client = httpx.Client(
        base_url=f"http://{HOST}:{api_port}", timeout=HTTP_TIMEOUT, trust_env=False
    )
    with client, run_process(cmd, log, cwd=REPO_ROOT) as proc:
        wait_for_health(proc, log, client)
        b = Backend(proc, log, client, token, (HOST, ep_port))
        b.create_cache(f"connbench-{name}")
        yield b


# ---------------------------------------------------------------- probes (a thread)


class Probe:
    """API and memcache latency, measured from a thread of its own with blocking sockets,
    so the asyncio loop holding thousands of connections never delays a measurement."""

    KINDS = ("GET /healthz", "GET /api/v1/admin/caches", "memcache get")

    def __init__(self, b: Backend) -> None:
        self.b = b
        self.values: dict[str, list[float]] = {k: [] for k in self.KINDS}
        self.errors: dict[str, list[str]] = {k: [] for k in self.KINDS}
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None
        self.client = httpx.Client(
            base_url=b.client.base_url, timeout=HTTP_TIMEOUT, trust_env=False
        )
        self.sock: socket.socket | None = None
        self.buffer = b""

    def __enter__(self) -> Probe:
        self.sock = socket.create_connection(self.b.endpoint, timeout=HTTP_TIMEOUT)
        self.sock.sendall(self.b.auth_line() + b"set probe 0 0 5\r\nhello\r\n")
        self._expect(b"STORED\r\n")
        self._expect(b"STORED\r\n")
        self.thread = threading.Thread(target=self._run, name="probe", daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(HTTP_TIMEOUT * 3)
        self.client.close()
        if self.sock is not None:
            self.sock.close()

    def window(self, seconds: float) -> dict[str, Latency]:
        """Clear, wait ``seconds``, and return what was measured meanwhile. Waits on the
        stop event: an interrupted run must not wait for the window's end, as asyncio.run
        joins this thread before it returns."""
        with self.lock:
            for k in self.KINDS:
                self.values[k], self.errors[k] = [], []
        self.stop_event.wait(seconds)
        with self.lock:
            return {k: Latency.of(self.values[k], self.errors[k]) for k in self.KINDS}

    def _expect(self, reply: bytes) -> None:
        assert self.sock is not None
        while len(self.buffer) < len(reply):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("memcache connection closed")
            self.buffer += chunk
        got, self.buffer = self.buffer[: len(reply)], self.buffer[len(reply) :]
        if got != reply:
            raise ConnectionError(f"unexpected reply {got!r}")

    def _memcache_get(self) -> None:
        assert self.sock is not None
        self.sock.sendall(b"get probe\r\n")
        self._expect(b"VALUE probe 0 5\r\nhello\r\nEND\r\n")

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.b.token}"}
        calls = {
            "GET /healthz": lambda: self.client.get("/healthz"),
            "GET /api/v1/admin/caches": lambda: self.client.get(
                "/api/v1/admin/caches", headers=headers
            ),
            "memcache get": self._memcache_get,
        }
        while not self.stop_event.is_set():
            for kind, call in calls.items():
                started = time.perf_counter()
                error = None
                try:
                    resp = call()
                    if isinstance(resp, httpx.Response) and resp.status_code != 200:
                        error = f"HTTP {resp.status_code}"
                except (OSError, httpx.HTTPError) as exc:
                    error = f"{type(exc).__name__}: {exc}"
                elapsed = (time.perf_counter() - started) * 1000
                with self.lock:
                    if error is None:
                        self.values[kind].append(elapsed)
                    else:
                        self.errors[kind].append(error)
                if error is not None and kind == "memcache get":
                    self.stop_event.wait(1.0)  # the connection is gone; do not spin
            self.stop_event.wait(PROBE_PAUSE)


# ---------------------------------------------------------------- connections (asyncio)


@dataclass
class Conn:
    """One held connection and what the server did to it."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    opened_at: float
    closed_at: float | None = None
    received: bytes = b""
    watcher: asyncio.Task[None] | None = None


async def connect(
    endpoint: tuple[str, int], index: int, sources: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection from 127.0.0.(1 + index % sources); the source port is chosen at
    connect time (IP_BIND_ADDRESS_NO_PORT), so each address has its own ephemeral range."""
    if sources == 1:
        return await asyncio.open_connection(*endpoint)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((f"127.0.0.{1 + index % sources}", 0))
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, endpoint)
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock)


def failure_name(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    return type(exc).__name__


async def watch(conn: Conn) -> None:
    """Read until the server closes the connection: when, and what it said last."""
    with contextlib.suppress(OSError):
        while True:
            chunk = await conn.reader.read(4096)
            if not chunk:
                break
            conn.received += chunk
    conn.closed_at = time.monotonic()


async def open_many(
    kind: str,
    count: int,
    endpoint: tuple[str, int],
    login: bytes | None,
    concurrency: int,
    sources: int,
) -> tuple[list[Conn], Opened]:
    """Open ``count`` connections, ``concurrency`` at a time; with ``login``, each one
    authenticates and must answer STORED. Each then gets a watcher task."""
    gate = asyncio.Semaphore(concurrency)
    failures: Counter[str] = Counter()
    conns: list[Conn] = []

    async def one(index: int) -> None:
        async with gate:
            writer = None
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    reader, writer = await connect(endpoint, index, sources)
                    if login is not None:
                        writer.write(login)
                        line = await reader.readline()
                        if line != b"STORED\r\n":
                            failures[f"login answered {line[:40]!r}"] += 1
                            writer.close()
                            return
            except (OSError, TimeoutError) as exc:
                failures[failure_name(exc)] += 1
                if writer is not None:
                    writer.close()
                return
            conn = Conn(reader, writer, time.monotonic())
            conn.watcher = asyncio.create_task(watch(conn))
            conns.append(conn)

    started = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(count)))
    seconds = round(time.monotonic() - started, 2)
    return conns, Opened(kind, count, len(conns), seconds, dict(failures))


async def close_all(conns: list[Conn]) -> None:
    for c in conns:
        c.writer.close()
    for c in conns:
        if c.watcher is not None:
            c.watcher.cancel()
    await asyncio.gather(*(c.watcher for c in conns if c.watcher), return_exceptions=True)


async def wait_closed_by_server(conns: list[Conn], deadline: float) -> None:
    while any(c.closed_at is None for c in conns) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)


async def wait_server_count(b: Backend, want: int, timeout: float) -> None:
    """Until the server's connection count is ``want``: closes reach it asynchronously."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(b.server_connections) == want:
            return
        await asyncio.sleep(0.2)


# ---------------------------------------------------------------- the two runs


async def held_run(b: Backend, args: argparse.Namespace, say: Any) -> HeldRun:
    """Baseline, open everything, measure, close the authenticated, wait for the timeout."""
    memory = [b.memory("started, one cache")]
    with Probe(b) as probe:
        say(f"baseline latency ({args.baseline:g} s) ...")
        baseline = await asyncio.to_thread(probe.window, args.baseline)
        say(f"opening {args.auth} authenticated connections ...")
        login = b.auth_line()
        auth, auth_opened = await open_many(
            "authenticated", args.auth, b.endpoint, login, args.concurrency, args.sources
        )
        memory.append(b.memory("authenticated open"))
        say(f"opening {args.idle} unauthenticated connections ...")
        idle, idle_opened = await open_many(
            "unauthenticated", args.idle, b.endpoint, None, args.concurrency, args.sources
        )
        memory.append(b.memory("all open"))
        say(f"measuring with everything open ({args.seconds:g} s) ...")
        window = asyncio.create_task(asyncio.to_thread(probe.window, args.seconds))
        peak = memory[-1]
        while not window.done():
            await asyncio.sleep(1.0)
            now = await asyncio.to_thread(memory_of, b.proc.pid, "peak (window max)")
            if now.rss_mib > peak.rss_mib:
                peak = now
        loaded = await window
        memory.append(Memory("peak (window max)", peak.rss_mib, peak.fds))
        memory.append(b.memory("window end"))
    auth_closed_early = sum(c.closed_at is not None for c in auth)
    idle_closed_early = sum(c.closed_at is not None for c in idle)
    say("closing the authenticated connections ...")
    await close_all(auth)
    await wait_server_count(b, 0, 15.0)
    await asyncio.sleep(1.0)
    memory.append(b.memory("authenticated closed"))
    first_idle = min((c.opened_at for c in idle), default=time.monotonic())
    deadline = first_idle + args.auth_timeout + 15.0
    say(f"waiting for the {args.auth_timeout:g} s auth timeout to close the others ...")
    await wait_closed_by_server(idle, deadline)
    await asyncio.sleep(1.0)
    memory.append(b.memory("after auth timeout"))
    by_timeout = sum(c.closed_at is not None for c in idle)
    reply = sum(b"authentication timeout" in c.received for c in idle)
    left = sum(c.closed_at is None for c in idle)
    await close_all(idle)
    held = HeldRun(
        args.auth_timeout,
        baseline,
        loaded,
        [auth_opened, idle_opened],
        memory,
        auth_closed_early,
        idle_closed_early,
        by_timeout,
        reply,
        left,
    )
    for cycle in range(2, args.cycles + 1):
        say(f"cycle {cycle}/{args.cycles}: open everything again, close it from our side ...")
        await churn(b, args, held, cycle)
    churned = (args.cycles - 1) * (args.auth + args.idle)
    if churned:
        first = next(m for m in held.memory if m.step == "after auth timeout")
        growth_kib = (held.memory[-1].rss_mib - first.rss_mib) * 1024
        held.growth_kib_per_conn = round(growth_kib / churned, 2)
    return held


async def churn(b: Backend, args: argparse.Namespace, held: HeldRun, cycle: int) -> None:
    """One more open/close cycle. Python rarely gives freed memory back to the system, so
    RSS after the first cycle stays near its peak; only growth from cycle to cycle would
    be a leak."""
    opening = {"concurrency": args.concurrency, "sources": args.sources}
    auth, auth_opened = await open_many(
        f"authenticated, cycle {cycle}", args.auth, b.endpoint, b.auth_line(), **opening
    )
    idle, idle_opened = await open_many(
        f"unauthenticated, cycle {cycle}", args.idle, b.endpoint, None, **opening
    )
    held.cycles += [auth_opened, idle_opened]
    held.memory.append(b.memory(f"cycle {cycle}: all open"))
    await close_all(auth + idle)
    await wait_server_count(b, 0, 15.0)
    await asyncio.sleep(2.0)  # the unauthenticated closes are not counted by the API
    held.memory.append(b.memory(f"cycle {cycle}: all closed"))


async def timeout_run(b: Backend, args: argparse.Namespace, say: Any) -> TimeoutRun:
    """At the default auth timeout every unauthenticated connection must be closed, with
    the timeout reply, a little after 5 s, while the API keeps answering."""
    memory = [b.memory("started, one cache")]
    with Probe(b) as probe:
        say(f"default timeout: opening {args.idle} unauthenticated connections ...")
        seconds = DEFAULT_AUTH_TIMEOUT + 5.0
        window = asyncio.create_task(asyncio.to_thread(probe.window, seconds))
        idle, opened = await open_many(
            "unauthenticated", args.idle, b.endpoint, None, args.concurrency, args.sources
        )
        memory.append(b.memory("all open"))
        await wait_closed_by_server(idle, time.monotonic() + DEFAULT_AUTH_TIMEOUT + 15.0)
        latency = await window
    await asyncio.sleep(1.0)
    memory.append(b.memory("after auth timeout"))
    after = sorted(c.closed_at - c.opened_at for c in idle if c.closed_at is not None)
    closed = len(after)
    reply = sum(b"authentication timeout" in c.received for c in idle)
    left = sum(c.closed_at is None for c in idle)
    await close_all(idle)
    return TimeoutRun(
        DEFAULT_AUTH_TIMEOUT,
        opened,
        closed,
        reply,
        left,
        round(after[len(after) // 2], 2) if after else None,
        round(after[-1], 2) if after else None,
        memory,
        latency,
    )


# ---------------------------------------------------------------- report


def problems(held: HeldRun, timeout: TimeoutRun | None) -> list[str]:
    """Everything that makes the exit status 1."""
    out = []
    for o in held.opened + held.cycles + ([timeout.opened] if timeout else []):
        if o.opened != o.wanted:
            out.append(f"{o.kind}: {o.wanted - o.opened} of {o.wanted} not opened {o.failures}")
    if held.auth_closed_early:
        out.append(f"{held.auth_closed_early} authenticated connections closed by the server")
    if held.idle_closed_early:
        out.append(
            f"{held.idle_closed_early} unauthenticated connections closed before the "
            f"{held.auth_timeout:g} s timeout"
        )
    if held.idle_left_open:
        out.append(f"{held.idle_left_open} unauthenticated connections outlived the timeout")
    if held.growth_kib_per_conn is not None and held.growth_kib_per_conn > GROWTH_LIMIT_KIB:
        out.append(
            f"RSS grew {held.growth_kib_per_conn:.2f} KiB per connection opened and "
            f"closed after cycle 1 (limit {GROWTH_LIMIT_KIB:g}): memory not given back"
        )
    windows = [held.baseline, held.loaded] + ([timeout.latency] if timeout else [])
    for window in windows:
        for kind, lat in window.items():
            if lat.errors:
                out.append(f"{kind}: {lat.errors} errors, e.g. {lat.error_samples[:2]}")
    if timeout is not None:
        if timeout.left_open:
            out.append(f"default timeout: {timeout.left_open} connections never closed")
        if timeout.with_reply != timeout.opened.opened:
            out.append(
                f"default timeout: {timeout.opened.opened - timeout.with_reply} closed "
                "without the timeout reply"
            )
    return out


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def print_report(
    args: argparse.Namespace, held: HeldRun, timeout: TimeoutRun | None, issues: list[str]
) -> None:
    print(
        f"\nheld run: --auth {args.auth} --idle {args.idle} --seconds {args.seconds:g}, "
        f"backend --auth-timeout {held.auth_timeout:g}"
    )
    for o in held.opened + held.cycles:
        print(
            f"  opened {o.opened}/{o.wanted} {o.kind} in {o.seconds:.1f} s"
            + (f"  failures: {o.failures}" if o.failures else "")
        )
    print(
        f"\n  {'latency, ms':<28}{'baseline p50/p99/max':>24}{'loaded p50/p99/max':>24}"
        f"{'n':>7}{'err':>5}"
    )
    for kind in Probe.KINDS:
        a, z = held.baseline[kind], held.loaded[kind]
        print(
            f"  {kind:<28}{fmt(a.p50_ms):>8}{fmt(a.p99_ms):>8}{fmt(a.max_ms):>8}"
            f"{fmt(z.p50_ms):>8}{fmt(z.p99_ms):>8}{fmt(z.max_ms):>8}"
            f"{z.count:>7}{a.errors + z.errors:>5}"
        )
    print(f"\n  {'backend':<28}{'RSS MiB':>10}{'fds':>8}{'conns (auth)':>14}")
    for m in held.memory:
        conns = "-" if m.server_connections is None else str(m.server_connections)
        print(f"  {m.step:<28}{m.rss_mib:>10.1f}{m.fds:>8}{conns:>14}")
    if held.growth_kib_per_conn is not None:
        print(
            f"  RSS growth over cycles 2..{args.cycles}: {held.growth_kib_per_conn:.2f} KiB per "
            f"connection opened and closed (limit {GROWTH_LIMIT_KIB:g})"
        )
    print(
        f"\n  unauthenticated closed by the {held.auth_timeout:g} s timeout: "
        f"{held.idle_closed_by_timeout} (with the timeout reply: {held.idle_timeout_reply}), "
        f"left open: {held.idle_left_open}"
    )
    if timeout is not None:
        t = timeout
        print(
            f"\ndefault auth timeout ({t.auth_timeout:g} s): opened {t.opened.opened}/"
            f"{t.opened.wanted} unauthenticated in {t.opened.seconds:.1f} s; closed by the "
            f"server {t.closed} (with the timeout reply {t.with_reply}), left open "
            f"{t.left_open}; closed after p50 {fmt(t.close_after_p50_s)} s, max "
            f"{fmt(t.close_after_max_s)} s"
        )
        for m in t.memory:
            print(f"  {m.step:<28}{m.rss_mib:>10.1f} MiB{m.fds:>8} fds")
        for kind, lat in t.latency.items():
            print(
                f"  {kind:<28} p50 {fmt(lat.p50_ms)} p99 {fmt(lat.p99_ms)} max "
                f"{fmt(lat.max_ms)} ms, {lat.errors} errors"
            )
    print("\nresult: " + ("OK" if not issues else "PROBLEMS"))
    for line in issues:
        print(f"  - {line}")


def summary(
    args: argparse.Namespace, held: HeldRun, timeout: TimeoutRun | None, issues: list[str]
) -> dict[str, Any]:
    return {
        "args": {k: v for k, v in vars(args).items() if k != "json"},
        "held": asdict(held),
        "default_timeout": asdict(timeout) if timeout else None,
        "problems": issues,
        "ok": not issues,
    }


def bench(args: argparse.Namespace, workdir: Path) -> tuple[HeldRun, TimeoutRun | None]:
    say = (lambda _msg: None) if args.json else (lambda msg: print(msg, flush=True))
    limit = raise_nofile(args.auth + args.idle + FD_MARGIN)
    say(f"RLIMIT_NOFILE {limit} (script and backend)")
    with backend(workdir, "held", args.auth_timeout) as b:
        held = asyncio.run(held_run(b, args, say))
    timeout = None
    if not args.no_timeout_run and args.idle:
        with backend(workdir, "timeout", None) as b:
            timeout = asyncio.run(timeout_run(b, args, say))
    return held, timeout


def main(argv: list[str] | None = None) -> int:
    """Exit 0 if every connection opened and behaved and no probe failed, 1 otherwise,
    2 on setup errors, 130 when interrupted."""
    args = parse_args(argv)
    unwind_on_sigterm()
    try:
        with tempfile.TemporaryDirectory(prefix="cachier-conn-bench-") as tmp:
            held, timeout = bench(args, Path(tmp))
    except (BenchError, httpx.HTTPError, OSError) as exc:
        print(f"connections bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("connections bench: interrupted; backend stopped", file=sys.stderr)
        return 130
    issues = problems(held, timeout)
    if args.json:
        print(json.dumps(summary(args, held, timeout, issues), indent=2))
    else:
        print_report(args, held, timeout, issues)
    return 1 if issues else 0


if __name__ == "__main__":
    sys.exit(main())
