#!/usr/bin/env python3
"""Aggregate memcaslap throughput: one process per cluster against everything in one (issue 14).

N clusters (``--clusters``, default 2), one cache on each, one scratch PostgreSQL database
and one key file. Mode **A** runs one ``cachier-backend`` with every cluster; mode **B**
runs one process per cluster (``--clusters <name>``, its own data dir and ports). In each
round one memcaslap per cache loads its cache at the same time, each through the region
endpoint of the process that owns that cache (direct, never relayed), and the round's
throughput is the sum. Rounds alternate A B A B so drift on a shared machine hits both.

    python bench/scaleout.py                          # 2 clusters, 10 s, 3 rounds of each
    python bench/scaleout.py --seconds 15 --rounds 5
    python bench/scaleout.py --clusters 3 --json

Every process is started fresh for its round (the caches start empty: warm-restart
snapshots are removed before each start) and stopped after it; the database and temp
dirs are removed on exit, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import secrets
import statistics
import string
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
from memcaslap import (
    DEFAULT_AUTHSHIM,
    HOST,
    REPO_ROOT,
    Load,
    RunError,
    RunResult,
    build_authshim,
    memcaslap_command,
    probe_auth,
    require_tools,
    shim_env,
)
from multiproc import create_cache, default_postgres, scratch_database, share_key, tree_backend
from processes import (
    BenchError,
    cpu_seconds,
    free_ports,
    run_process,
    unwind_on_sigterm,
    wait_for_health,
)

REGION = "local"
ONE = "A"  # everything in one process
PER_CLUSTER = "B"  # one process per cluster


@dataclass
class Tenant:
    """One cache, the cluster placement put it on, and its login."""

    cluster: str
    user: str
    password: str


@dataclass
class Backend:
    """One cachier-backend process of a mode: what it runs and where it listens."""

    name: str
    clusters: list[str] | None  # None: every cluster
    data_dir: Path
    api_port: int
    endpoint_port: int

    @property
    def api(self) -> str:
        return f"http://{HOST}:{self.api_port}"

    def serves(self, cluster: str) -> bool:
        return self.clusters is None or cluster in self.clusters


@dataclass
class Round:
    """One timed round of one mode: every client's result and every process's CPU."""

    number: int
    mode: str
    results: dict[str, RunResult] = field(default_factory=dict)  # cluster -> memcaslap
    backend_cpu_s: dict[str, float] = field(default_factory=dict)  # process -> CPU seconds
    clients_cpu_s: float = 0.0  # every memcaslap together
    load_before: float = 0.0  # 1-minute load average
    load_after: float = 0.0
    error: str | None = None

    @property
    def total_tps(self) -> int:
        return sum(r.tps for r in self.results.values())

    @property
    def total_ops(self) -> int:
        return sum(r.ops for r in self.results.values())


# ---------------------------------------------------------------- setup


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line flags; defaults match the numbers quoted in bench/README.md."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clusters", type=int, default=2, help="clusters, one cache each (default: 2)")
    p.add_argument(
        "--proxies", type=int, default=2, help="proxies per cluster (default: 2, as built in)"
    )
    p.add_argument("--seconds", type=int, default=10, help="length of each run (default: 10)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of each mode (default: 3)")
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
    p.add_argument(
        "--postgres",
        default=default_postgres(),
        metavar="URL",
        help=f"a PostgreSQL database to create a scratch one from "
        f"(default: $CACHIER_TEST_POSTGRES or {default_postgres()})",
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary instead of a table")
    args = p.parse_args(argv)
    if not 1 <= args.clusters <= len(string.ascii_lowercase):
        p.error(f"--clusters must be between 1 and {len(string.ascii_lowercase)}")
    if not 1 <= args.proxies <= 16:
        p.error("--proxies must be between 1 and 16")
    if not 1 <= args.seconds <= 3600:
        p.error("--seconds must be between 1 and 3600")
    if not 1 <= args.rounds <= 50:
        p.error("--rounds must be between 1 and 50")
    return args


def cluster_names(count: int) -> list[str]:
    """local-a, local-b, ...: the built-in topology's names, extended."""
    return [f"{REGION}-{letter}" for letter in string.ascii_lowercase[:count]]


def write_topology(path: Path, clusters: list[str], proxies: int) -> Path:
    """One region with the clusters; proxies on ports the kernel picks."""
    lines = ["[[regions]]", f'name = "{REGION}"']
    for name in clusters:
        lines += ["[[regions.clusters]]", f'name = "{name}"', f"proxies = {proxies}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def plan_backends(clusters: list[str], workdir: Path) -> dict[str, list[Backend]]:
    """Both modes' processes, on ports fixed for the whole run (a client's target is
    known before its round)."""
    ports = iter(free_ports(2 * (1 + len(clusters))))
    one = [Backend("all", None, workdir / "all", next(ports), next(ports))]
    per_cluster = [
        Backend(name, [name], workdir / name, next(ports), next(ports)) for name in clusters
    ]
    return {ONE: one, PER_CLUSTER: per_cluster}


class Topology:
    """What every process of the run is started with, apart from its own clusters and ports."""

    def __init__(self, database: str, topology: Path, token: str, workdir: Path) -> None:
        self.database = database
        self.topology = topology
        self.token = token
        self.workdir = workdir

    def command(self, backend: Backend) -> list[str]:
        cmd = [*tree_backend()[0], "--host", HOST, "--admin-token", self.token]
        cmd += ["--lenient-keys", "--database", self.database, "--topology", str(self.topology)]
        cmd += ["--data-dir", str(backend.data_dir)]
        cmd += ["--api-port", str(backend.api_port), "--endpoint-port", str(backend.endpoint_port)]
        if backend.clusters is not None:
            cmd += ["--clusters", ",".join(backend.clusters)]
        return cmd

    @contextlib.contextmanager
    def running(self, backends: list[Backend], tag: str) -> Iterator[list[int]]:
        """Start the processes together, wait until each answers, stop them all after.

        Warm-restart snapshots from the previous round are removed first, so every round
        starts with empty caches whichever mode ran before.
        """
        env = tree_backend()[1]
        with contextlib.ExitStack() as stack:
            procs: list[tuple[subprocess.Popen[bytes], Path, Backend]] = []
            for backend in backends:
                backend.data_dir.mkdir(parents=True, exist_ok=True)
                for snapshot in backend.data_dir.glob("warm-*.snapshot"):
                    snapshot.unlink()
                log = self.workdir / f"{tag}-{backend.name}.log"
                proc = stack.enter_context(
                    run_process(self.command(backend), log, cwd=REPO_ROOT, env=env)
                )
                procs.append((proc, log, backend))
            for proc, log, backend in procs:
                with httpx.Client(base_url=backend.api, timeout=2.0) as client:
                    wait_for_health(proc, log, client)
            yield [proc.pid for proc, _, _ in procs]


def create_tenants(topo: Topology, backends: list[Backend], clusters: list[str]) -> list[Tenant]:
    """One cache per cluster, made through the all-clusters process. Placement takes the
    least loaded cluster (ties by name), so equal plans land one per cluster, in order;
    create_cache checks it."""
    (backend,) = backends
    tenants = []
    with topo.running(backends, "setup"):
        for cluster in clusters:
            _, user, password = create_cache(
                backend.api, topo.token, f"bench-{cluster}", cluster, plan="1gb"
            )
            tenants.append(Tenant(cluster, user, password))
    return tenants


# ---------------------------------------------------------------- one round


def children_cpu_s() -> float:
    """CPU of every child reaped so far: the memcaslaps of a round, by difference (the
    backends of the round are not reaped until after it)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def owner(backends: list[Backend], cluster: str) -> Backend:
    return next(b for b in backends if b.serves(cluster))


def run_round(
    rnd: Round,
    topo: Topology,
    backends: list[Backend],
    tenants: list[Tenant],
    args: argparse.Namespace,
    shim: Path,
) -> None:
    """Start the mode's processes, load every cache at once through its owner's endpoint,
    and read each process's CPU time over the load."""
    with topo.running(backends, f"r{rnd.number}{rnd.mode}") as pids:
        targets = []
        for tenant in tenants:
            port = owner(backends, tenant.cluster).endpoint_port
            refused = probe_auth(port, tenant.user, tenant.password, args.mode)
            if refused:
                raise RunError(f"{tenant.cluster} at port {port}: {refused}")
            targets.append((tenant, port))
        rnd.load_before = os.getloadavg()[0]
        before = {b.name: cpu_seconds(pid) for b, pid in zip(backends, pids, strict=True)}
        clients_before = children_cpu_s()
        loads = []
        try:
            for tenant, port in targets:
                env = shim_env(shim, port, tenant.user, tenant.password, args.mode)
                out = topo.workdir / f"r{rnd.number}{rnd.mode}-{tenant.cluster}.out"
                loads.append((tenant.cluster, Load(port, env, args.seconds, args.mode, out)))
            for cluster, load in loads:
                rnd.results[cluster] = load.result()
        finally:
            for _, load in loads:
                load.stop()
        rnd.clients_cpu_s = children_cpu_s() - clients_before
        rnd.backend_cpu_s = {
            b.name: cpu_seconds(pid) - before[b.name] for b, pid in zip(backends, pids, strict=True)
        }
        rnd.load_after = os.getloadavg()[0]


def bench(args: argparse.Namespace, workdir: Path) -> tuple[list[Round], dict[str, list[Backend]]]:
    """Set up once, then alternate the modes round by round."""
    shim = build_authshim(args.authshim, workdir)
    clusters = cluster_names(args.clusters)
    topology = write_topology(workdir / "topology.toml", clusters, args.proxies)
    modes = plan_backends(clusters, workdir)
    rounds: list[Round] = []
    with scratch_database(args.postgres) as database:
        topo = Topology(database, topology, secrets.token_urlsafe(24), workdir)
        tenants = create_tenants(topo, modes[ONE], clusters)
        for backend in modes[PER_CLUSTER]:
            share_key(modes[ONE][0].data_dir, backend.data_dir)
        for number in range(1, args.rounds + 1):
            for mode in (ONE, PER_CLUSTER):
                rnd = Round(number, mode)
                rounds.append(rnd)
                if not args.json:
                    print(f"round {number}/{args.rounds}: mode {mode} ...", flush=True)
                try:
                    run_round(rnd, topo, modes[mode], tenants, args, shim)
                except (RunError, BenchError) as exc:
                    rnd.error = str(exc)
                    if not args.json:
                        print(f"  failed: {exc}", flush=True)
    return rounds, modes


# ---------------------------------------------------------------- report


def median_tps(rounds: list[Round], mode: str) -> float | None:
    values = [r.total_tps for r in rounds if r.mode == mode and not r.error]
    return statistics.median(values) if values else None


def pair_ratios(rounds: list[Round]) -> list[float]:
    """B/A of each round's pair, run back to back: the drift between pairs cancels."""
    ratios = []
    for number in sorted({r.number for r in rounds}):
        pair = {r.mode: r for r in rounds if r.number == number and not r.error}
        if ONE in pair and PER_CLUSTER in pair and pair[ONE].total_tps:
            ratios.append(pair[PER_CLUSTER].total_tps / pair[ONE].total_tps)
    return ratios


def summary(rounds: list[Round], args: argparse.Namespace) -> dict[str, float | None]:
    a, b = median_tps(rounds, ONE), median_tps(rounds, PER_CLUSTER)
    pairs = pair_ratios(rounds)
    return {
        "median_tps_A": a,
        "median_tps_B": b,
        "ratio_B_A": b / a if a and b else None,
        "median_pair_ratio_B_A": statistics.median(pairs) if pairs else None,
    }


def print_table(
    rounds: list[Round], modes: dict[str, list[Backend]], args: argparse.Namespace
) -> None:
    """A Markdown table to paste into bench/README.md or an issue."""
    clusters = cluster_names(args.clusters)
    print()
    head = ["round", "mode", "ops/s total", *(f"{c} ops/s" for c in clusters)]
    head += ["backend CPU s (per process)", "memcaslap CPU s", "backend CPU µs/op", "load avg"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rounds:
        if r.error:
            print(f"| {r.number} | {r.mode} | not measured: {r.error} |")
            continue
        per_cache = [f"{r.results[c].tps:,}" if c in r.results else "-" for c in clusters]
        cpu = " + ".join(f"{v:.1f}" for v in r.backend_cpu_s.values())
        per_op = sum(r.backend_cpu_s.values()) / r.total_ops * 1e6 if r.total_ops else 0.0
        cells = [str(r.number), r.mode, f"**{r.total_tps:,}**", *per_cache, cpu]
        cells += [f"{r.clients_cpu_s:.1f}", f"{per_op:.1f}"]
        cells.append(f"{r.load_before:.1f} → {r.load_after:.1f}")
        print("| " + " | ".join(cells) + " |")
    s = summary(rounds, args)
    print()

    def shown(v: float | None, fmt: str) -> str:
        return format(v, fmt) if v is not None else "n/a"

    print(f"median aggregate ops/s: A (one process) {shown(s['median_tps_A'], ',.0f')}, ", end="")
    print(f"B (one per cluster) {shown(s['median_tps_B'], ',.0f')}")
    print(f"B/A of the medians {shown(s['ratio_B_A'], '.2f')}; ", end="")
    pairs = ", ".join(f"{x:.2f}" for x in pair_ratios(rounds))
    print(f"per round pair {pairs or 'n/a'} (median {shown(s['median_pair_ratio_B_A'], '.2f')})")
    print(f"machine: {os.cpu_count()} CPUs; load average at the end {os.getloadavg()}")
    print()
    client = " ".join(memcaslap_command(0, args.seconds, args.mode)).replace(":0 ", ":PORT ")
    print(
        f"{args.clusters} cluster(s) x {args.proxies} proxies, one 1gb cache each; "
        f"{args.mode}, {args.seconds}s per run, {args.rounds} round(s) per mode; each client: "
        f"LD_PRELOAD=authshim.so AUTH_PORT=PORT ... {client} "
        "(PORT: the endpoint of the process that owns its cache)"
    )
    for mode, backends in modes.items():
        for b in backends:
            print(f"  {mode} {b.name}: --clusters {','.join(b.clusters or ['(all)'])}")


def print_json(rounds: list[Round], args: argparse.Namespace) -> None:
    """Machine-readable summary for comparing runs over time."""
    out = {
        "clusters": args.clusters,
        "proxies": args.proxies,
        "mode": args.mode,
        "seconds": args.seconds,
        "rounds": [
            {
                "round": r.number,
                "mode": r.mode,
                "total_tps": r.total_tps,
                "clients": {c: asdict(res) for c, res in r.results.items()},
                "backend_cpu_s": r.backend_cpu_s,
                "clients_cpu_s": r.clients_cpu_s,
                "load_avg_before_after": [r.load_before, r.load_after],
                "error": r.error,
            }
            for r in rounds
        ],
        **summary(rounds, args),
        "pair_ratios_B_A": pair_ratios(rounds),
    }
    print(json.dumps(out, indent=2))


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Exit 0 if every round was measured, 1 if one was not, 2 on setup errors."""
    args = parse_args(argv)
    unwind_on_sigterm()
    try:
        require_tools(("memcaslap", "gcc"))
        with tempfile.TemporaryDirectory(prefix="cachier-scaleout-") as tmp:
            rounds, modes = bench(args, Path(tmp))
    except BenchError as exc:
        print(f"scaleout bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("scaleout bench: interrupted; servers stopped", file=sys.stderr)
        return 130
    if args.json:
        print_json(rounds, args)
    else:
        print_table(rounds, modes, args)
    return 0 if all(r.error is None for r in rounds) else 1


if __name__ == "__main__":
    sys.exit(main())
