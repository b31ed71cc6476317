#!/usr/bin/env python3
"""Status-monitor sensitivity: how fast real faults show, and that jitter does not.

Starts a fresh ``cachier-backend`` with a short probe interval and drives it only through
its public HTTP API: faults go in via POST /api/v1/admin/proxies/{hostname}/fault, and the
cluster lights and incidents come back via GET /api/v1/status. Nothing is mocked, so the
numbers include the real probes, the real debounce and the real event loop.

1. Detection: per trial, ``down`` until the cluster is red, ``none`` until blue, wait for
   green (the resolved window), ``slow`` until yellow, ``none`` until blue, wait for green.
   Times run from the moment the fault call returns until the status API shows the light,
   polled every interval/5, and are reported in probe intervals.
2. Jitter: every proxy's delay is redrawn every interval around a baseline B (±50 %,
   uniform), with rare single-interval spikes of 10×B, for at least --probes probes of
   every proxy. Every incident recorded meanwhile is a false transition (target 0).

    python bench/status_sensitivity.py
    python bench/status_sensitivity.py --interval 0.2 --trials 3 --probes 500
    python bench/status_sensitivity.py --json

All traffic stays on 127.0.0.1; the backend and its temp dir are removed on exit,
including Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import secrets
import statistics
import sys
import tempfile
import time
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
DEFAULT_PROXY = "proxy-1.local-a.local.cachier.internal"
HTTP_TIMEOUT = 5.0  # seconds for one API call; the backend is local, so this means "hung"
SLOW_FACTOR = 20  # a slow fault is at least this many times the proxy's usual latency
SPIKE_FACTOR = 10  # a jitter spike is this many times B
PROBE_MARGIN = 0.05  # extra jitter intervals, since each probe period overshoots a little
STATUS_EVERY = 20  # jitter intervals between status reads (to keep incident details)


@dataclass(frozen=True)
class Debounce:
    """The monitor's debounce counts and slow test, read from backend.monitor (the code the
    subprocess runs), so the floors and the jitter check never drift from it."""

    enter_down: int
    leave_down: int
    enter_slow: int
    leave_slow: int
    slow_factor: float
    slow_floor_ms: float

    def is_slow(self, latency_ms: float, baseline_ms: float | None) -> bool:
        """The monitor's test for one probe (baseline None: only the floor applies)."""
        above_usual = baseline_ms is None or latency_ms > self.slow_factor * baseline_ms
        return latency_ms > self.slow_floor_ms and above_usual


@dataclass
class Wait:
    """One detection: seconds until the light showed (None: never), and the lights seen."""

    seconds: float | None
    lights: list[str]


@dataclass
class Metric:
    """One row of the table: every trial's time, and the target in probe intervals."""

    name: str
    target: str
    low: float | None  # pass needs every trial >= low (intervals), when set
    high: float | None  # pass needs every trial <= high (intervals), when set
    floor: float  # best case the debounce allows, in intervals, to tell slow from strict
    waits: list[Wait] = field(default_factory=list)

    def intervals(self, interval: float) -> list[float]:
        return [w.seconds / interval for w in self.waits if w.seconds is not None]

    def missed(self) -> int:
        return sum(w.seconds is None for w in self.waits)

    def passed(self, interval: float) -> bool | None:
        """None when there is no target; otherwise every trial must be seen and in range."""
        if self.low is None and self.high is None:
            return None
        values = self.intervals(interval)
        if self.missed() or not values:
            return False
        low_ok = self.low is None or min(values) >= self.low
        return low_ok and (self.high is None or max(values) <= self.high)


@dataclass
class Jitter:
    """What the jitter phase did and what the monitor made of it."""

    probes_per_proxy: int
    seconds: float
    proxies: int
    delay_range_ms: tuple[int, int]
    spike_ms: int
    spikes: int
    changes: int
    late_intervals: int
    slow_probes_seen: int
    failed_probes_seen: int
    max_normal_ms: float
    warmup_incidents: list[dict[str, Any]]
    incidents: list[dict[str, Any]]
    false_transitions: int


# ---------------------------------------------------------------- setup


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line flags; the defaults finish in under three minutes."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--interval",
        type=float,
        default=0.05,
        help="backend --probe-interval in seconds (default: 0.05)",
    )
    p.add_argument("--trials", type=int, default=5, help="detection trials (default: 5)")
    p.add_argument(
        "--window", type=int, default=20, help="resolved window in probe intervals (default: 20)"
    )
    p.add_argument("--proxy", default=DEFAULT_PROXY, help="proxy to fault (default: %(default)s)")
    # A probe waits for its answer, so a delay longer than one interval stretches every
    # probe and the detection time measures the fault, not the monitor: 40 ms stays within
    # the 50 ms interval while being 100x the loopback baseline and twice the slow floor.
    p.add_argument(
        "--slow-ms",
        type=int,
        default=40,
        help=f"slow fault delay; raised to {SLOW_FACTOR}x the proxy's baseline "
        "if that is more (default: 40)",
    )
    p.add_argument(
        "--probes",
        type=int,
        default=2000,
        help="jitter phase length in probes per proxy (default: 2000)",
    )
    p.add_argument(
        "--base-ms",
        type=int,
        default=6,
        help="jitter baseline B in ms; even, so that B±50%% is whole ms (default: 6)",
    )
    p.add_argument(
        "--spike-chance",
        type=float,
        default=1 / 200,
        help="chance per proxy and interval of a 10xB spike (default: 0.005)",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=100,
        help="intervals at B before the jitter counts (default: 100)",
    )
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    p.add_argument("--json", action="store_true", help="print a JSON summary instead of a table")
    args = p.parse_args(argv)
    if not 0.01 <= args.interval <= 5:
        p.error("--interval must be between 0.01 and 5 seconds")
    if not 1 <= args.trials <= 100:
        p.error("--trials must be between 1 and 100")
    if not 2 <= args.window <= 10_000:
        p.error("--window must be between 2 and 10000 intervals")
    if not 0 <= args.probes <= 1_000_000 or not 0 <= args.warmup <= 100_000:
        p.error("--probes and --warmup must be between 0 and a million")
    if not 2 <= args.base_ms <= 1000:
        p.error("--base-ms must be between 2 and 1000")
    if not 0 <= args.spike_chance <= 0.5:
        p.error("--spike-chance must be between 0 and 0.5")
    if args.seed is None:
        args.seed = secrets.randbelow(2**32)
    return args


def debounce() -> Debounce:
    """The backend's own defaults: the repo's monitor is what the subprocess runs."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from backend.monitor import Sensitivity

    s = Sensitivity()
    return Debounce(
        s.enter_down, s.leave_down, s.enter_slow, s.leave_slow, s.slow_factor, s.slow_floor_ms
    )


def probe_timeout(interval: float) -> float:
    """The monitor's probe timeout (Monitor.timeout_s); a slower probe counts as down."""
    return max(0.5, 2 * interval)


# ---------------------------------------------------------------- backend process


# ---------------------------------------------------------------- API


class Api:
    """The two endpoints this benchmark uses, with errors turned into BenchError."""

    def __init__(self, client: httpx.Client, token: str) -> None:
        self.client = client
        self.auth = {"Authorization": f"Bearer {token}"}

    def status(self) -> dict[str, Any]:
        resp = self.client.get("/api/v1/status")
        if resp.status_code != 200:
            raise BenchError(f"GET /api/v1/status: HTTP {resp.status_code} {resp.text[:200]}")
        return resp.json()

    def fault(self, hostname: str, mode: str, delay_ms: int = 0) -> dict[str, Any]:
        body = {"mode": mode, "delay_ms": delay_ms}
        resp = self.client.post(
            f"/api/v1/admin/proxies/{hostname}/fault", json=body, headers=self.auth
        )
        if resp.status_code != 200:
            raise BenchError(
                f"fault {mode} on {hostname}: HTTP {resp.status_code} {resp.text[:200]}"
            )
        return resp.json()


def clusters_of(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Cluster name -> its status entry, across regions."""
    return {c["name"]: c for r in status["regions"] for c in r["clusters"]}


def proxies_of(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Proxy hostname -> its status entry (with the cluster name added)."""
    return {
        p["hostname"]: {**p, "cluster": name}
        for name, c in clusters_of(status).items()
        for p in c["proxies"]
    }


def last_incident_id(status: dict[str, Any]) -> int:
    """Incident ids only grow (AUTOINCREMENT), so a difference of two counts every row."""
    return max((i["id"] for i in status["incidents"]), default=0)


def wait_light(
    api: Api, cluster: str, want: str, started: float, timeout: float, poll: float
) -> Wait:
    """Poll until the cluster shows ``want``; keeps the lights passed on the way."""
    lights: list[str] = []
    deadline = started + timeout
    while True:
        light = clusters_of(api.status())[cluster]["light"]
        now = time.monotonic()
        if not lights or lights[-1] != light:
            lights.append(light)
        if light == want:
            return Wait(now - started, lights)
        if now >= deadline:
            return Wait(None, lights)
        time.sleep(poll)


def wait_all(api: Api, want: str, timeout: float, poll: float) -> dict[str, Any]:
    """Until every cluster shows ``want`` and every proxy is up with a baseline."""
    deadline = time.monotonic() + timeout
    while True:
        status = api.status()
        lights = {n: c["light"] for n, c in clusters_of(status).items()}
        proxies = proxies_of(status).values()
        if all(v == want for v in lights.values()) and all(
            p["state"] == "up" and p["baseline_ms"] is not None for p in proxies
        ):
            return status
        if time.monotonic() >= deadline:
            raise BenchError(f"clusters did not all turn {want} in {timeout:.1f}s: {lights}")
        time.sleep(poll)


# ---------------------------------------------------------------- detection


def detection_metrics(args: argparse.Namespace, d: Debounce, slow_ms: int) -> list[Metric]:
    """The rows, with their targets and best cases (both in probe intervals).

    The floors are what the debounce allows at best: e.g. ``enter_slow`` slow probes in a
    row, each lasting the injected delay, cannot be seen sooner than their total length.
    """
    i, delay = args.interval, slow_ms / 1000
    period = max(i, delay)  # a probe slower than the interval starts the next at once
    window = args.window
    return [
        Metric("red (down)", "<= 3", None, 3, d.enter_down - 1),
        Metric("yellow (slow)", "<= 5", None, 5, ((d.enter_slow - 1) * period + delay) / i),
        Metric("blue (down cleared)", "report", None, None, d.leave_down - 1),
        Metric("blue (slow cleared)", "report", None, None, d.leave_slow - 1),
        Metric("green (after blue)", f"~ {window} (window)", window - 1, window + 2, window),
    ]


def run_trial(
    api: Api,
    args: argparse.Namespace,
    cluster: str,
    slow_ms: int,
    rows: dict[str, Metric],
    rng: random.Random,
) -> None:
    """One down and one slow episode on the proxy, each back to green before the next.

    Each fault call waits a random part of a probe period first: the light changes right
    after a probe, so without it every call would land at the same probe phase and the
    times would show one point of the schedule instead of its spread.
    """
    i, poll = args.interval, args.interval / 5
    detect_timeout = max(5.0, 60 * i)
    green_timeout = args.window * i + detect_timeout
    period = max(i, slow_ms / 1000)
    for mode, light, cleared in (
        ("down", "red", "blue (down cleared)"),
        ("slow", "yellow", "blue (slow cleared)"),
    ):
        time.sleep(rng.uniform(0, period))
        api.fault(args.proxy, mode, slow_ms if mode == "slow" else 0)
        started = time.monotonic()
        rows[f"{light} ({mode})"].waits.append(
            wait_light(api, cluster, light, started, detect_timeout, poll)
        )
        time.sleep(rng.uniform(0, period))
        api.fault(args.proxy, "none")
        started = time.monotonic()
        blue = wait_light(api, cluster, "blue", started, detect_timeout, poll)
        rows[cleared].waits.append(blue)
        if blue.seconds is not None:
            seen_blue = started + blue.seconds
            rows["green (after blue)"].waits.append(
                wait_light(api, cluster, "green", seen_blue, green_timeout, poll)
            )
        wait_all(api, "green", green_timeout, poll)


def slow_delay(args: argparse.Namespace, baseline_ms: float) -> int:
    """Clearly slow (>= SLOW_FACTOR x usual, >= --slow-ms) yet below the probe timeout,
    so the monitor sees a slow proxy and not a down one."""
    delay = max(args.slow_ms, math.ceil(SLOW_FACTOR * baseline_ms))
    limit = probe_timeout(args.interval) * 1000 * 0.8
    if delay > limit:
        raise BenchError(
            f"a slow delay of {delay} ms would come too close to the probe "
            f"timeout ({limit / 0.8:.0f} ms); lower --slow-ms"
        )
    return delay


# ---------------------------------------------------------------- jitter


def jitter_range(base_ms: int) -> tuple[int, int]:
    """B±50 % in whole ms (delay_ms is an integer), never outside the ±50 % band."""
    return math.ceil(base_ms * 0.5), math.floor(base_ms * 1.5)


def incident_brief(row: dict[str, Any]) -> dict[str, Any]:
    """What a false transition report needs: which cluster, which lights, why."""
    keys = ("id", "cluster", "previous", "light", "started_at", "cause")
    return {k: row[k] for k in keys}


@dataclass
class ProbeWatch:
    """Probe results as the fault replies show them (each carries the latest probe).

    Sampled once per interval, so the counts are lower bounds; a spike's slow result is
    mostly missed, since the next probe starts at once and replaces it a few ms later.
    What they show: no probe failed, and how close normal probes came to the slow floor.
    """

    d: Debounce
    last: dict[str, float | None] = field(default_factory=dict)
    slow: int = 0
    failed: int = 0
    max_normal_ms: float = 0.0

    def see(self, host: str, reply: dict[str, Any]) -> None:
        latency = reply["latency_ms"]
        if host in self.last and latency == self.last[host]:
            return  # no new probe since the last reply
        self.last[host] = latency
        if latency is None:
            self.failed += 1
        elif self.d.is_slow(latency, reply["baseline_ms"]):
            self.slow += 1
        else:
            self.max_normal_ms = max(self.max_normal_ms, latency)


def set_all(api: Api, hosts: list[str], delays: dict[str, int], watch: ProbeWatch) -> None:
    """One fault call per proxy; mode slow with the drawn delay."""
    for host in hosts:
        watch.see(host, api.fault(host, "slow", delays[host]))


def run_jitter(api: Api, args: argparse.Namespace, rng: random.Random, d: Debounce) -> Jitter:
    """Warm up at B, then redraw every proxy's delay each interval and count incidents.

    Ticks run on an absolute clock so the phase lasts exactly ticks x interval even when a
    round of fault calls is slow; a round that starts more than an interval late is counted.
    """
    i = args.interval
    hosts = sorted(proxies_of(api.status()))
    lo, hi = jitter_range(args.base_ms)
    spike_ms = SPIKE_FACTOR * args.base_ms
    before_warmup = last_incident_id(api.status())
    set_all(api, hosts, dict.fromkeys(hosts, args.base_ms), ProbeWatch(d))
    time.sleep(args.warmup * i)
    status = api.status()
    start_id = last_incident_id(status)
    warmup = [incident_brief(r) for r in status["incidents"] if r["id"] > before_warmup]

    ticks = math.ceil(args.probes * (1 + PROBE_MARGIN))
    seen: dict[int, dict[str, Any]] = {}
    spiked = dict.fromkeys(hosts, False)
    spikes = changes = late = 0
    watch = ProbeWatch(d)
    t0 = time.monotonic()
    for tick in range(ticks):
        due = t0 + tick * i
        lag = due - time.monotonic()
        if lag > 0:
            time.sleep(lag)
        elif -lag > i:
            late += 1
        delays = {}
        for host in hosts:
            spike = not spiked[host] and rng.random() < args.spike_chance
            spiked[host] = spike
            spikes += spike
            delays[host] = spike_ms if spike else rng.randint(lo, hi)
        set_all(api, hosts, delays, watch)
        changes += len(hosts)
        if tick % STATUS_EVERY == STATUS_EVERY - 1:
            seen.update({r["id"]: r for r in api.status()["incidents"] if r["id"] > start_id})
    elapsed = time.monotonic() - t0
    status = api.status()  # before clearing the faults: clearing must not count
    end_id = last_incident_id(status)
    seen.update({r["id"]: r for r in status["incidents"] if start_id < r["id"] <= end_id})
    for host in hosts:
        api.fault(host, "none")
    return Jitter(
        probes_per_proxy=round(elapsed / i),
        seconds=round(elapsed, 3),
        proxies=len(hosts),
        delay_range_ms=(lo, hi),
        spike_ms=spike_ms,
        spikes=spikes,
        changes=changes,
        late_intervals=late,
        slow_probes_seen=watch.slow,
        failed_probes_seen=watch.failed,
        max_normal_ms=watch.max_normal_ms,
        warmup_incidents=warmup,
        incidents=[incident_brief(seen[k]) for k in sorted(seen)],
        false_transitions=end_id - start_id,
    )


# ---------------------------------------------------------------- report


def fmt_time(values: list[float], pick: Any, interval: float) -> str:
    """'median (seconds)' cells: intervals first, since targets are in intervals."""
    if not values:
        return "-"
    v = pick(values)
    return f"{v:5.1f} ({v * interval:.2f}s)"


def floor_reason(m: Metric, args: argparse.Namespace, meta: dict[str, Any]) -> str:
    """Why a target is out of reach, so a FAIL is not read as a slow monitor."""
    slow_ms, interval_ms = meta["slow_ms"], args.interval * 1000
    if m.name.startswith("yellow") and slow_ms > interval_ms:
        return (
            f"each slow probe lasts the {slow_ms} ms delay ({slow_ms / interval_ms:.1f} "
            f"intervals) and probes never overlap; use a longer --interval or a "
            f"--slow-ms near the interval"
        )
    return "the debounce needs more probes than the target allows"


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("pass" if ok else "FAIL")


def print_table(
    args: argparse.Namespace, meta: dict[str, Any], rows: list[Metric], jitter: Jitter | None
) -> None:
    """A table a person can paste into an issue, with what produced it."""
    i = args.interval
    print()
    print(
        f"probe interval {i:g} s, probe timeout {probe_timeout(i):g} s, resolved window "
        f"{args.window} intervals ({args.window * i:g} s), proxy {args.proxy}, "
        f"slow fault {meta['slow_ms']} ms (baseline {meta['baseline_ms']:.2f} ms), "
        f"seed {args.seed}"
    )
    print("times in probe intervals (seconds), from the fault call's return to the status API")
    print()
    head = f"{'metric':<21} {'n':>3} {'median':>14} {'max':>14} {'floor':>6}  {'target':<14} result"
    print(head)
    print("-" * len(head))
    for m in rows:
        values = m.intervals(i)
        n = f"{len(values)}" + (f"+{m.missed()} missed" if m.missed() else "")
        print(
            f"{m.name:<21} {n:>3} {fmt_time(values, statistics.median, i):>14} "
            f"{fmt_time(values, max, i):>14} {m.floor:6.1f}  {m.target:<14} "
            f"{verdict(m.passed(i))}"
        )
    for m in rows:
        if m.high is not None and m.floor > m.high:
            print(
                f"  note: {m.name}: even the best case ({m.floor:.1f} intervals) misses the "
                f"target; {floor_reason(m, args, meta)}"
            )
    detours = [(m.name, w.lights) for m in rows for w in m.waits if len(w.lights) > 2]
    for name, lights in detours:
        print(f"  note: {name} went {' -> '.join(lights)}")
    if jitter is not None:
        print_jitter(jitter, i)


def print_jitter(j: Jitter, interval: float) -> None:
    """The false-transition line, plus every incident that counted against it."""
    ok = j.false_transitions == 0
    print()
    print(
        f"jitter: {j.probes_per_proxy} probes per proxy ({j.seconds:.1f} s / {interval:g} s) "
        f"x {j.proxies} proxies, delay {j.delay_range_ms[0]}..{j.delay_range_ms[1]} ms "
        f"redrawn every interval ({j.changes} fault calls, {j.late_intervals} late), "
        f"{j.spikes} spikes of {j.spike_ms} ms injected"
    )
    print(
        f"jitter: probe results sampled from the fault replies: {j.slow_probes_seen} slow, "
        f"{j.failed_probes_seen} failed, highest normal {j.max_normal_ms:.1f} ms"
    )
    print(f"jitter: false transitions {j.false_transitions} (target 0) {verdict(ok)}")
    for row in j.warmup_incidents:
        print(
            f"  warm-up incident (not counted): {row['cluster']} {row['previous']} -> "
            f"{row['light']}: {row['cause']}"
        )
    for row in j.incidents:
        print(
            f"  incident #{row['id']} {row['started_at']} {row['cluster']} "
            f"{row['previous']} -> {row['light']}: {row['cause']}"
        )


def rounded(value: float | None, digits: int = 2) -> float | None:
    """Two decimals of an interval count are plenty: the poll step is a fifth of one."""
    return None if value is None else round(value, digits)


def metric_json(m: Metric, interval: float) -> dict[str, Any]:
    """One row with every trial, a missed trial as null."""
    values = m.intervals(interval)
    return {
        "target": m.target,
        "floor_intervals": rounded(m.floor),
        "intervals": [
            rounded(None if w.seconds is None else w.seconds / interval) for w in m.waits
        ],
        "seconds": [rounded(w.seconds, 4) for w in m.waits],
        "lights_seen": [w.lights for w in m.waits],
        "median_intervals": rounded(statistics.median(values)) if values else None,
        "max_intervals": rounded(max(values, default=None)),
        "pass": m.passed(interval),
    }


def summary(
    args: argparse.Namespace, meta: dict[str, Any], rows: list[Metric], jitter: Jitter | None
) -> dict[str, Any]:
    """Machine-readable results, every trial included."""
    i = args.interval
    return {
        "interval_s": i,
        "probe_timeout_s": probe_timeout(i),
        "resolved_window_intervals": args.window,
        "proxy": args.proxy,
        "seed": args.seed,
        **meta,
        "metrics": {m.name: metric_json(m, i) for m in rows},
        "jitter": None
        if jitter is None
        else {**asdict(jitter), "pass": jitter.false_transitions == 0},
    }


def all_passed(args: argparse.Namespace, rows: list[Metric], jitter: Jitter | None) -> bool:
    checks = [m.passed(args.interval) for m in rows]
    return all(c is not False for c in checks) and (jitter is None or not jitter.false_transitions)


# ---------------------------------------------------------------- main


def bench(args: argparse.Namespace, workdir: Path) -> tuple[dict, list[Metric], Jitter | None]:
    """Start the backend, run both phases, and stop it (the with-block does, on any exit)."""
    api_port, ep_port = free_ports(2)
    token = secrets.token_urlsafe(24)
    data_dir = workdir / "data"
    cmd = [
        sys.executable,
        "-m",
        "backend.cli",
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
        "--probe-interval",
        str(args.interval),
        "--resolved-window",
        str(args.window * args.interval),
    ]
    log = workdir / "backend.log"
    say = (lambda _msg: None) if args.json else (lambda msg: print(msg, flush=True))
    client = httpx.Client(
        base_url=f"http://{HOST}:{api_port}", timeout=HTTP_TIMEOUT, trust_env=False
    )
    with client, run_process(cmd, log, cwd=REPO_ROOT) as proc:
        wait_for_health(proc, log, client)
        api = Api(client, token)
        poll = args.interval / 5
        status = wait_all(api, "green", max(10.0, 100 * args.interval), poll)
        proxies = proxies_of(status)
        if args.proxy not in proxies:
            raise BenchError(f"no proxy {args.proxy!r}; there are: {', '.join(proxies)}")
        time.sleep(10 * args.interval)  # a few more normal probes for a settled baseline
        target = proxies_of(api.status())[args.proxy]
        meta = {
            "baseline_ms": target["baseline_ms"],
            "slow_ms": slow_delay(args, target["baseline_ms"]),
        }
        d = debounce()
        rows = detection_metrics(args, d, meta["slow_ms"])
        by_name = {m.name: m for m in rows}
        rng = random.Random(args.seed)
        for trial in range(1, args.trials + 1):
            say(f"detection trial {trial}/{args.trials} on {args.proxy} ...")
            run_trial(api, args, target["cluster"], meta["slow_ms"], by_name, rng)
            if proc.poll() is not None:
                raise BenchError(f"cachier-backend died: {log_tail(log)}")
        jitter = None
        if args.probes:
            seconds = (args.warmup + args.probes * (1 + PROBE_MARGIN)) * args.interval
            say(
                f"jitter: {args.warmup} warm-up + {args.probes}+ probe intervals "
                f"(~{seconds:.0f} s) ..."
            )
            jitter = run_jitter(api, args, rng, d)
        if proc.poll() is not None:
            raise BenchError(f"cachier-backend died: {log_tail(log)}")
    return meta, rows, jitter


def main(argv: list[str] | None = None) -> int:
    """Exit 0 if every target was met, 1 if one was missed, 2 on setup errors."""
    args = parse_args(argv)
    unwind_on_sigterm()
    try:
        with tempfile.TemporaryDirectory(prefix="cachier-status-bench-") as tmp:
            meta, rows, jitter = bench(args, Path(tmp))
    except (BenchError, httpx.HTTPError) as exc:
        print(f"status bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("status bench: interrupted; backend stopped", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(summary(args, meta, rows, jitter), indent=2))
    else:
        print_table(args, meta, rows, jitter)
    return 0 if all_passed(args, rows, jitter) else 1


if __name__ == "__main__":
    sys.exit(main())
