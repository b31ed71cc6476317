#!/usr/bin/env python3
"""Durability: kill -9 the backend during control-plane writes; no acknowledged write lost.

A 2xx answer from the HTTP API is a promise that the change is stored. This script checks
that promise the hard way, ``--kills`` times: start the backend on one data directory, let
``--writers`` threads change the control plane through the API as fast as it answers
(create caches, add and delete credentials, PATCH capabilities, promote, rotate the
dashboard SSO secret, set and remove a log drain), SIGKILL the process at a random moment
0.2-2 s in, restart it on the same data, and compare what the API now shows with every
write that had been acknowledged.

Each thread owns its caches, so the order of the writes to every field is known. A field
must show its last acknowledged value, or the value of the one write that was in flight
when the process died (it may or may not have committed). When it shows an older value,
every acknowledged write after that value is lost; a value nobody wrote is a phantom.
The dashboard URL is checked by use as well: the current one answers, every URL rotated
away in the round answers 404.

    python bench/durability.py                    # 20 kills, ~1.5 min
    python bench/durability.py --kills 5 --writers 2
    python bench/durability.py --data-dir /tmp/d  # keep the data (and logs) afterwards
    python bench/durability.py --json

The backend command is built in one place (``backend_command``), the only part that knows
where the control plane stores its data: another database is another argument there.

All traffic stays on 127.0.0.1 (the log drain is a sink in this process, so the backend
is started with ``--allow-internal-drains`` when this tree has the flag; without it the
drain writes are skipped). The backend is stopped and the temp dir removed on exit,
including Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import http.server
import json
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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
HTTP_TIMEOUT = 5.0  # seconds for one API call; local, so anything longer means "hung"
CACHES_PER_WRITER = 6  # caches a writer creates at most, so every round touches old ones
MIN_CREDENTIALS, MAX_CREDENTIALS = 2, 6  # per cache: deletes and adds keep it in between
PLANS = ("free", "100mb", "250mb")


class AnyNew:
    """The value of an in-flight write whose result the server chooses (a new cache id,
    a new dashboard URL): any value not seen before in the round is accepted."""

    def __repr__(self) -> str:
        return "<any new value>"


ANY_NEW = AnyNew()


# ---------------------------------------------------------------- state of the control plane


@dataclass
class CacheState:
    """What the API shows of one cache, in the terms the writers change."""

    name: str
    id: str
    path: str  # the dashboard URL's path, /dashboard/<secret>; the host part is not ours
    credentials: dict[str, tuple[str, bool, bool]]  # username -> (password, write, flush)
    primary: str
    drain: str | None
    app_username: str  # MEMCACHIER_USERNAME of the app: pushed with every promote

    def fields(self) -> dict[str, Any]:
        """Flat field -> value, the unit in which writes are recorded and compared."""
        out: dict[str, Any] = {
            f"cache {self.name}": self.id,
            f"primary {self.name}": self.primary,
            f"app-user {self.name}": self.app_username,
            f"sso {self.name}": self.path,
            f"drain {self.name}": self.drain,
        }
        for user, (password, write, flush) in self.credentials.items():
            out[f"credential {self.name} {user}"] = password
            out[f"caps {self.name} {user}"] = (write, flush)
        return out


def url_path(url: str) -> str:
    return urlsplit(url).path


def read_state(client: httpx.Client, token: str, prefix: str) -> dict[str, CacheState]:
    """Every cache of this run (names start with ``prefix``) as the API shows it now."""
    listed: list[dict] = []
    params = {"q": prefix, "limit": 1000}
    while True:  # the list answers in pages
        resp = client.get(
            "/api/v1/admin/caches", params=params, headers={"Authorization": f"Bearer {token}"}
        )
        expect(resp, 200, "GET /api/v1/admin/caches")
        listed += resp.json()["items"]
        if resp.json()["next_cursor"] is None:
            break
        params["cursor"] = resp.json()["next_cursor"]
    caches = {}
    for c in listed:
        if not c["name"].startswith(prefix):
            continue
        path = url_path(c["dashboard_url"])
        app = client.get(f"{path}/api/app")
        expect(app, 200, f"GET app of {c['name']}")
        body = app.json()
        creds = {x["username"]: (x["password"], x["write"], x["flush"]) for x in c["credentials"]}
        primary = next((x["username"] for x in c["credentials"] if x["primary"]), "")
        caches[c["name"]] = CacheState(
            c["name"],
            c["id"],
            path,
            creds,
            primary,
            body["log_drain"],
            body["config_vars"].get("MEMCACHIER_USERNAME", ""),
        )
    return caches


def expect(resp: httpx.Response, status: int, what: str) -> None:
    if resp.status_code != status:
        raise BenchError(f"{what}: HTTP {resp.status_code} {resp.text[:200]}")


# ---------------------------------------------------------------- the record of writes


@dataclass
class Write:
    """One API call that changes the control plane, and the fields it sets."""

    id: int
    what: str
    values: dict[str, Any]  # field -> value it must show afterwards
    new_cache: str | None = None  # a create: the fields of this cache are all new
    new_credential_of: str | None = None  # an add: one unknown credential may appear


@dataclass
class Ledger:
    """Every writer's acknowledged writes, in order, and the one each had in flight."""

    acked: list[Write] = field(default_factory=list)
    in_flight: list[Write] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    next_id: int = 0

    def new(self, what: str, values: dict[str, Any], **kw: Any) -> Write:
        with self.lock:
            self.next_id += 1
            return Write(self.next_id, what, values, **kw)


@dataclass
class Verdict:
    """What the restarted backend showed against one round's ledger."""

    acked: int
    verified: int
    lost: list[str]  # "what: field expected X, shows Y"
    phantom: list[str]  # fields showing a value nobody wrote
    stale_urls: list[str]  # rotated-away dashboard URLs that still answer
    dead_urls: list[str]  # the current dashboard URL does not answer
    applied_in_flight: int  # unacknowledged writes that did commit (the answer was lost)


def verify(
    before: dict[str, CacheState],
    ledger: Ledger,
    after: dict[str, CacheState],
    client: httpx.Client,
) -> Verdict:
    """Compare the state after the restart with the state before the round plus the
    acknowledged writes, field by field (see the module docstring for the rules)."""
    history: dict[str, list[tuple[Any, int | None]]] = {}
    for state in before.values():
        for key, value in state.fields().items():
            history[key] = [(value, None)]
    for w in ledger.acked:
        for key, value in w.values.items():
            history.setdefault(key, [(None, None)]).append((value, w.id))
    in_flight: dict[str, list[Any]] = {}
    new_caches = {w.new_cache for w in ledger.in_flight if w.new_cache}
    new_credentials = {w.new_credential_of for w in ledger.in_flight if w.new_credential_of}
    for w in ledger.in_flight:
        for key, value in w.values.items():
            in_flight.setdefault(key, []).append(value)
    observed: dict[str, Any] = {}
    for state in after.values():
        observed.update(state.fields())
    by_id = {w.id: w for w in ledger.acked}
    lost_ids: dict[int, str] = {}
    phantom: list[str] = []
    for key, entries in history.items():
        shows = observed.get(key)
        seen = [v for v, _ in entries]
        if shows == seen[-1]:
            continue
        flying = in_flight.get(key, [])
        if shows in flying or (
            any(v is ANY_NEW for v in flying) and shows is not None and shows not in seen
        ):
            continue
        older = [i for i, v in enumerate(seen) if v == shows]
        start = older[-1] + 1 if older else 0
        written = [(value, write_id) for value, write_id in entries[start:] if write_id]
        for value, write_id in written:
            if write_id not in lost_ids:
                what = by_id[write_id].what
                lost_ids[write_id] = f"{what}: {key} should be {value!r}, shows {shows!r}"
        if not written:  # no write since the value it shows: it changed by itself
            phantom.append(f"{key} changed from {seen[-1]!r} to {shows!r} without a write")
    for key, shows in observed.items():
        if key in history:
            continue
        words = key.split()
        if words[1] in new_caches or (
            words[0] in ("credential", "caps") and words[1] in new_credentials
        ):
            continue
        phantom.append(f"{key} shows {shows!r}, never written")
    stale, dead = check_urls(history, after, client)
    applied = sum(was_applied(w, history, observed) for w in ledger.in_flight)
    return Verdict(
        len(ledger.acked),
        len(ledger.acked) - len(lost_ids),
        sorted(lost_ids.values()),
        phantom,
        stale,
        dead,
        applied,
    )


def was_applied(
    write: Write, history: dict[str, list[tuple[Any, int | None]]], observed: dict[str, Any]
) -> bool:
    """Whether an unacknowledged write committed: shown to say the kills really landed
    inside requests, not only between them."""
    if write.new_credential_of:
        prefix = f"credential {write.new_credential_of} "
        return any(k.startswith(prefix) and k not in history for k in observed)
    for key, value in write.values.items():
        shows = observed.get(key)
        if value is ANY_NEW:
            if shows is None or shows in [v for v, _ in history.get(key, [])]:
                return False
        elif shows != value:
            return False
    return True


def check_urls(
    history: dict[str, list[tuple[Any, int | None]]],
    after: dict[str, CacheState],
    client: httpx.Client,
) -> tuple[list[str], list[str]]:
    """The current dashboard URL of every cache answers; every other one seen this round
    (rotated away) answers 404."""
    stale, dead = [], []
    for state in after.values():
        if client.get(f"{state.path}/api/cache").status_code != 200:
            dead.append(f"{state.name}: current dashboard URL does not answer 200")
        for path, _ in history.get(f"sso {state.name}", []):
            if isinstance(path, str) and path != state.path:
                code = client.get(f"{path}/api/cache").status_code
                if code != 404:
                    stale.append(f"{state.name}: a rotated-away dashboard URL answers {code}")
    return stale, dead


# ---------------------------------------------------------------- writers


class Stop(Exception):
    """The backend stopped answering: this writer's round is over."""


class Writer(threading.Thread):
    """Changes its own caches through the API, one call at a time, until the backend dies
    or ``stop`` is set; every answered call goes into the ledger before the next one."""

    def __init__(
        self,
        index: int,
        base_url: str,
        token: str,
        prefix: str,
        state: dict[str, CacheState],
        ledger: Ledger,
        stop: threading.Event,
        rng: random.Random,
        drain_url: str | None,
        round_no: int,
    ) -> None:
        super().__init__(name=f"writer-{index}", daemon=True)
        self.prefix = f"{prefix}w{index}-"
        self.caches = {n: s for n, s in state.items() if n.startswith(self.prefix)}
        self.client = httpx.Client(base_url=base_url, timeout=HTTP_TIMEOUT, trust_env=False)
        self.token, self.ledger, self.stop, self.rng = token, ledger, stop, rng
        self.drain_url, self.round_no, self.count = drain_url, round_no, 0

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.step()
        except Stop:
            pass
        finally:
            self.client.close()

    def call(self, write: Write, method: str, url: str, ok: int, **kw: Any) -> dict[str, Any]:
        """One write. Acknowledged = the expected 2xx arrived; a connection that failed
        before sending means it was never made; anything else is in flight."""
        headers = {"Authorization": f"Bearer {self.token}"} if url.startswith("/api") else {}
        try:
            resp = self.client.request(method, url, headers=headers, **kw)
        except httpx.ConnectError:
            raise Stop from None
        except httpx.HTTPError:
            self.ledger.in_flight.append(write)
            raise Stop from None
        if resp.status_code != ok:
            self.ledger.errors.append(f"{write.what}: HTTP {resp.status_code} {resp.text[:120]}")
            if resp.status_code >= 500:
                self.ledger.in_flight.append(write)
            raise Stop
        self.ledger.acked.append(write)
        return resp.json()

    def step(self) -> None:
        ops: list[tuple[str, int]] = []
        if len(self.caches) < CACHES_PER_WRITER:
            ops.append(("create", 2 if self.caches else 100))
        if self.caches:
            ops += [("add", 3), ("delete", 2), ("patch", 6), ("promote", 3), ("rotate", 3)]
            if self.drain_url:
                ops.append(("drain", 3))
        op = self.rng.choices([o for o, _ in ops], [w for _, w in ops])[0]
        if op == "create":
            self.create()
            return
        cache = self.caches[self.rng.choice(sorted(self.caches))]
        getattr(self, op)(cache)

    def create(self) -> None:
        self.count += 1
        name = f"{self.prefix}r{self.round_no}-{self.count}"
        write = self.ledger.new(f"create cache {name}", {f"cache {name}": ANY_NEW}, new_cache=name)
        body = self.call(
            write,
            "POST",
            "/api/v1/admin/caches",
            201,
            json={"name": name, "plan": self.rng.choice(PLANS)},
        )
        primary = next(c for c in body["credentials"] if c["primary"])
        state = CacheState(
            name,
            body["id"],
            url_path(body["dashboard_url"]),
            {c["username"]: (c["password"], c["write"], c["flush"]) for c in body["credentials"]},
            primary["username"],
            None,
            primary["username"],
        )
        write.values = state.fields()  # acknowledged: every field of the new cache is known
        self.caches[name] = state

    def add(self, cache: CacheState) -> None:
        if len(cache.credentials) >= MAX_CREDENTIALS:
            return self.patch(cache)
        write = self.ledger.new(f"add credential to {cache.name}", {}, new_credential_of=cache.name)
        body = self.call(write, "POST", f"{cache.path}/api/credentials", 201)
        user = body["username"]
        cache.credentials[user] = (body["password"], body["write"], body["flush"])
        write.values = {
            f"credential {cache.name} {user}": body["password"],
            f"caps {cache.name} {user}": (body["write"], body["flush"]),
        }

    def delete(self, cache: CacheState) -> None:
        others = sorted(u for u in cache.credentials if u != cache.primary)
        if len(cache.credentials) <= MIN_CREDENTIALS or not others:
            return self.add(cache)
        user = self.rng.choice(others)
        write = self.ledger.new(
            f"delete credential {user} of {cache.name}",
            {f"credential {cache.name} {user}": None, f"caps {cache.name} {user}": None},
        )
        self.call(write, "DELETE", f"{cache.path}/api/credentials/{user}", 200)
        del cache.credentials[user]

    def patch(self, cache: CacheState) -> None:
        user = self.rng.choice(sorted(cache.credentials))
        password, write_cap, flush_cap = cache.credentials[user]
        choices = [
            (w, f) for w in (False, True) for f in (False, True) if (w, f) != (write_cap, flush_cap)
        ]
        new = self.rng.choice(choices)
        write = self.ledger.new(
            f"PATCH capabilities of {user} in {cache.name} to {new}",
            {f"caps {cache.name} {user}": new},
        )
        self.call(
            write,
            "PATCH",
            f"{cache.path}/api/credentials/{user}",
            200,
            json={"write": new[0], "flush": new[1]},
        )
        cache.credentials[user] = (password, *new)

    def promote(self, cache: CacheState) -> None:
        others = sorted(u for u in cache.credentials if u != cache.primary)
        if not others:
            return self.add(cache)
        user = self.rng.choice(others)
        write = self.ledger.new(
            f"promote {user} in {cache.name}",
            {f"primary {cache.name}": user, f"app-user {cache.name}": user},
        )
        self.call(write, "POST", f"{cache.path}/api/credentials/{user}/promote", 200)
        cache.primary = cache.app_username = user

    def rotate(self, cache: CacheState) -> None:
        write = self.ledger.new(f"rotate SSO of {cache.name}", {f"sso {cache.name}": ANY_NEW})
        body = self.call(write, "POST", f"{cache.path}/api/sso/rotate", 200)
        cache.path = url_path(body["dashboard_url"])
        write.values = {f"sso {cache.name}": cache.path}

    def drain(self, cache: CacheState) -> None:
        url = None if cache.drain else f"{self.drain_url}/{secrets.token_hex(4)}"
        write = self.ledger.new(
            f"{'set' if url else 'remove'} log drain of {cache.name}", {f"drain {cache.name}": url}
        )
        self.call(write, "PUT", f"{cache.path}/api/app/log-drain", 200, json={"url": url})
        cache.drain = url


# ---------------------------------------------------------------- the backend and a drain sink


@dataclass
class Target:
    """Where the backend keeps its control plane and how to reach it; fixed for the run,
    so every restart opens the same data on the same ports."""

    data_dir: Path
    api_port: int
    endpoint_port: int
    token: str
    internal_drains: bool


def backend_command(target: Target) -> list[str]:
    """The one place that knows how the backend is told where its data lives."""
    cmd = [
        sys.executable,
        "-m",
        "backend.cli",
        "--data-dir",
        str(target.data_dir),
        "--host",
        HOST,
        "--api-port",
        str(target.api_port),
        "--endpoint-port",
        str(target.endpoint_port),
        "--admin-token",
        target.token,
    ]
    if target.internal_drains:
        cmd.append("--allow-internal-drains")
    return cmd


def has_flag(flag: str) -> bool:
    """Whether this tree's backend has a flag (older trees lack --allow-internal-drains)."""
    out = subprocess.run(
        [sys.executable, "-m", "backend.cli", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return flag in out.stdout


class Sink(http.server.BaseHTTPRequestHandler):
    """The log drain: takes every frame and answers 204, so drains cost the backend
    nothing but the delivery."""

    def do_POST(self) -> None:  # noqa: N802 (the http.server interface)
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@contextlib.contextmanager
def drain_sink() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer((HOST, 0), Sink)
    thread = threading.Thread(target=server.serve_forever, name="drain-sink", daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{server.server_address[1]}/drain"
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------- rounds


@dataclass
class Round:
    number: int
    kill_after_s: float
    acked: int
    in_flight: int
    applied: int  # of those in flight, how many committed
    verified: int
    lost: int
    phantom: int
    stale_urls: int
    errors: int
    restart_s: float
    details: list[str]


def write_round(
    client: httpx.Client,
    target: Target,
    args: argparse.Namespace,
    prefix: str,
    state: dict[str, CacheState],
    rng: random.Random,
    drain_url: str | None,
    proc: subprocess.Popen[bytes],
    number: int,
) -> tuple[Ledger, float]:
    """Writers run until the kill, which comes at a random moment 0.2-2 s in."""
    ledger, stop = Ledger(), threading.Event()
    base = str(client.base_url)
    writers = [
        Writer(
            i,
            base,
            target.token,
            prefix,
            copy.deepcopy(state),
            ledger,
            stop,
            random.Random(rng.random()),
            drain_url,
            number,
        )
        for i in range(args.writers)
    ]
    kill_after = rng.uniform(args.min_delay, args.max_delay)
    for w in writers:
        w.start()
    time.sleep(kill_after)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stop.set()
    for w in writers:
        w.join(HTTP_TIMEOUT * 2)
    if any(w.is_alive() for w in writers):
        raise BenchError("a writer did not stop after the kill")
    return ledger, kill_after


def bench(args: argparse.Namespace, workdir: Path) -> list[Round]:
    say = (lambda _msg: None) if args.json else (lambda msg: print(msg, flush=True))
    api_port, endpoint_port = free_ports(2)
    data_dir = args.data_dir or workdir / "data"
    target = Target(
        data_dir,
        api_port,
        endpoint_port,
        secrets.token_urlsafe(24),
        has_flag("--allow-internal-drains"),
    )
    if not target.internal_drains:
        say("this backend has no --allow-internal-drains: log-drain writes are skipped")
    prefix = f"dur{secrets.token_hex(3)}-"
    rng = random.Random(args.seed)
    logs = data_dir.with_name(f"{data_dir.name}.logs") if args.data_dir else workdir
    logs.mkdir(parents=True, exist_ok=True)
    client = httpx.Client(
        base_url=f"http://{HOST}:{api_port}", timeout=HTTP_TIMEOUT, trust_env=False
    )
    rounds: list[Round] = []
    with client, drain_sink() as sink:
        drain_url = sink if target.internal_drains else None
        pending: tuple[dict[str, CacheState], Ledger, float] | None = None
        for number in range(args.kills + 1):
            log = logs / f"backend-{number:02d}.log"
            started = time.monotonic()
            with run_process(backend_command(target), log, cwd=REPO_ROOT) as proc:
                wait_for_health(proc, log, client)
                restart_s = time.monotonic() - started
                state = read_state(client, target.token, prefix)
                if pending is not None:
                    before, ledger, kill_after = pending
                    v = verify(before, ledger, state, client)
                    r = Round(
                        number,
                        round(kill_after, 2),
                        v.acked,
                        len(ledger.in_flight),
                        v.applied_in_flight,
                        v.verified,
                        len(v.lost),
                        len(v.phantom),
                        len(v.stale_urls),
                        len(ledger.errors) + len(v.dead_urls),
                        round(restart_s, 2),
                        v.lost + v.phantom + v.stale_urls + v.dead_urls + ledger.errors,
                    )
                    rounds.append(r)
                    say(row(r))
                    state = read_state(client, target.token, prefix)  # unchanged by checks
                if number == args.kills:
                    break  # the last start only verifies; the with-block stops it gracefully
                ledger, kill_after = write_round(
                    client, target, args, prefix, state, rng, drain_url, proc, number + 1
                )
                pending = (state, ledger, kill_after)
                if proc.returncode != -signal.SIGKILL:
                    raise BenchError(
                        f"backend exited with {proc.returncode} before the kill: {log_tail(log)}"
                    )
    return rounds


# ---------------------------------------------------------------- report


HEADER = (
    f"{'kill':>4} {'after s':>7} {'acked':>6} {'in flight':>9} {'applied':>7} "
    f"{'verified':>8} {'lost':>5} {'phantom':>7} {'stale':>5} {'errors':>6} "
    f"{'restart s':>9}"
)


def row(r: Round) -> str:
    return (
        f"{r.number:>4} {r.kill_after_s:>7.2f} {r.acked:>6} {r.in_flight:>9} {r.applied:>7} "
        f"{r.verified:>8} {r.lost:>5} {r.phantom:>7} {r.stale_urls:>5} {r.errors:>6} "
        f"{r.restart_s:>9.2f}"
    )


def totals(rounds: list[Round]) -> dict[str, int]:
    keys = ("acked", "in_flight", "applied", "verified", "lost", "phantom", "stale_urls", "errors")
    return {k: sum(getattr(r, k) for r in rounds) for k in keys}


def failed(rounds: list[Round]) -> bool:
    t = totals(rounds)
    return bool(t["lost"] or t["phantom"] or t["stale_urls"] or t["errors"])


def print_report(rounds: list[Round]) -> None:
    t = totals(rounds)
    print(
        f"\ntotal over {len(rounds)} kills: acknowledged {t['acked']}, verified "
        f"{t['verified']}, lost {t['lost']}, in flight at the kill {t['in_flight']} "
        f"(committed anyway: {t['applied']}), "
        f"phantom {t['phantom']}, stale URLs {t['stale_urls']}, "
        f"errors {t['errors']}"
    )
    for r in rounds:
        for line in r.details[:10]:
            print(f"  kill {r.number}: {line}")
    print("result: " + ("LOST OR WRONG WRITES" if failed(rounds) else "OK, nothing lost"))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line flags; the defaults are the issue's 20 kills."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=20, help="kill -9 and restart cycles (20)")
    p.add_argument("--writers", type=int, default=4, help="writer threads (4)")
    p.add_argument(
        "--min-delay",
        type=float,
        default=0.2,
        help="earliest kill, seconds after the writers start (0.2)",
    )
    p.add_argument(
        "--max-delay",
        type=float,
        default=2.0,
        help="latest kill, seconds after the writers start (2.0)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="the backend's data directory, kept afterwards with the logs "
        "(default: a temp dir, removed)",
    )
    p.add_argument("--seed", type=int, default=None, help="seed for the kill times and ops")
    p.add_argument("--json", action="store_true", help="print the rounds as JSON")
    args = p.parse_args(argv)
    if args.kills < 1 or args.writers < 1 or not 0 < args.min_delay <= args.max_delay:
        p.error("--kills and --writers must be >= 1 and 0 < --min-delay <= --max-delay")
    return args


def main(argv: list[str] | None = None) -> int:
    """Exit 0 if nothing was lost, 1 if a write was lost or wrong (phantom, stale URL,
    API error), 2 on setup errors, 130 when interrupted."""
    args = parse_args(argv)
    unwind_on_sigterm()
    if not args.json:
        print(HEADER, flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="cachier-durability-") as tmp:
            rounds = bench(args, Path(tmp))
    except (BenchError, httpx.HTTPError, OSError) as exc:
        print(f"durability bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("durability bench: interrupted; backend stopped", file=sys.stderr)
        return 130
    if args.json:
        print(
            json.dumps(
                {
                    "rounds": [asdict(r) for r in rounds],
                    "totals": totals(rounds),
                    "ok": not failed(rounds),
                },
                indent=2,
            )
        )
    else:
        print_report(rounds)
    return 1 if failed(rounds) else 0


if __name__ == "__main__":
    sys.exit(main())
