#!/usr/bin/env python3
"""Dashboard cost: how fast cachier-tui shows a cache, and what it costs while it sits there.

The backend runs as its own process (``cachier-backend --demo``: seeded caches and real
memcache traffic), so every number below belongs to the TUI alone. The TUI is opened on
one cache's dashboard URL inside a detached tmux session of 80x24, the size the pages are
designed for, and is read off the screen with ``tmux capture-pane``.

1. First frame, ``--runs`` times, from the ``tmux new-session`` call, polled every 10 ms:
   until the Analytics page is painted (its header and footer keys, the title still
   "loading…"; target: median and max <= 1.0 s), and until it shows the cache's data (the
   cache's name and its "graphs:" line; reported against the same 1.0 s).
2. Idle CPU: one more TUI on the Analytics page at ``--refresh`` 1 s; after ``--warmup``
   seconds its utime+stime (/proc/<pid>/stat, all threads) is sampled over ``--seconds``.
   Target: <= 3 % of one core. The page holds up to 10 minutes of samples (one a
   second), so the work per refresh grows a little with the backend's age until it is
   10 minutes old: ``--history 600`` waits for full graphs before both timed phases (the
   steady state of a long-running backend).
3. Floor, timed first, for reading the numbers on a given machine: the first frame of a
   bare Textual app (header, one line of text, footer) launched the same way, ``--runs``
   times. No Textual dashboard can show its first frame sooner on that machine.

The exit status follows the issue's targets: the painted page and the idle CPU.

Before timing, this tree's modules are compiled to bytecode, as pip does when it installs
cachier; without it every launch would also compile them (this matters where
PYTHONDONTWRITEBYTECODE is set, since then Python never saves what it compiles).

    python bench/tui_cost.py
    python bench/tui_cost.py --runs 10 --seconds 30
    python bench/tui_cost.py --history 600      # both phases with full graphs (~13 min)
    python bench/tui_cost.py --json

All traffic stays on 127.0.0.1; tmux runs on a private socket, and that tmux server, the
backend and the temp dir are removed on exit, including Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import json
import os
import platform
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from processes import (
    BenchError,
    cpu_ticks,
    log_tail,
    proc_stat,
    run_process,
    unwind_on_sigterm,
    wait_for_health,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
WIDTH, HEIGHT = 80, 24
SEED_TIMEOUT = 10.0  # seconds for the demo's caches to appear after /healthz answers
HTTP_TIMEOUT = 5.0  # seconds for one API call; the backend is local, so this means "hung"
POLL_S = 0.010  # screen poll step of the first-frame measurement
FRAME_TIMEOUT = 30.0  # seconds a launch may take before the run counts as failed
TUI_EXIT_TIMEOUT = 5.0  # seconds a TUI gets to exit after its tmux session is killed
FIRST_FRAME_TARGET_S = 1.0
IDLE_CPU_TARGET_PCT = 3.0
CONTENT_MARK = "graphs:"  # the Analytics page's servers line, written with the cache's name
PAGE_MARKS = ("cachier", "Flush cache")  # the page's header title and its first footer key


@dataclass
class Launch:
    """One timed start of the TUI."""

    page_s: float  # the page painted: header and footer keys (the title still "loading…")
    content_s: float  # the cache's name and "graphs:" on the pane


@dataclass
class Idle:
    """CPU time the idle TUI used over the window."""

    pid: int
    seconds: float
    cpu_seconds: float
    percent: float
    per_second_pct: list[float] = field(default_factory=list)
    samples: int = 0  # samples in the graphs' 10-minute window (at the window's end)
    screen_changed: bool = False  # the refreshes really redrew something
    still_on_page: bool = False  # no crash, modal or error page at the end


# ---------------------------------------------------------------- setup


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line flags; the defaults take about 1.5 minutes."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5, help="first-frame launches (default: 5)")
    p.add_argument(
        "--seconds", type=float, default=60.0, help="idle CPU sampling window (default: 60)"
    )
    p.add_argument(
        "--warmup",
        type=float,
        default=5.0,
        help="seconds on screen before idle sampling (default: 5)",
    )
    p.add_argument(
        "--refresh", type=float, default=1.0, help="the TUI's --refresh in seconds (default: 1)"
    )
    p.add_argument(
        "--history",
        type=float,
        default=0.0,
        help="seconds the backend must have been up (collecting samples) before "
        "the measurements; 600 fills the graphs (default: 0)",
    )
    p.add_argument("--cache", default="shop", help="demo cache to open (default: shop)")
    p.add_argument("--json", action="store_true", help="print a JSON summary instead of a table")
    args = p.parse_args(argv)
    if not 1 <= args.runs <= 100:
        p.error("--runs must be between 1 and 100")
    if not 1 <= args.seconds <= 3600:
        p.error("--seconds must be between 1 and 3600")
    if not 0 <= args.warmup <= 600:
        p.error("--warmup must be between 0 and 600")
    if not 0 <= args.history <= 3600:
        p.error("--history must be between 0 and 3600")
    if not 0.1 <= args.refresh <= 60:
        p.error("--refresh must be between 0.1 and 60")
    return args


def require_tmux() -> str:
    """Fail early with the package to install."""
    path = shutil.which("tmux")
    if path is None:
        raise BenchError("tmux is missing; install the Debian package tmux")
    return path


def demo_regions() -> int:
    """Region i of the demo listens on --endpoint-port + i, so that many ports must be free."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from backend.topology import demo_topology

    return len(demo_topology().regions)


def free_ports(count: int) -> tuple[int, int]:
    """An API port plus ``count`` consecutive endpoint ports, all free on loopback."""
    for _ in range(100):
        with contextlib.ExitStack() as stack:
            api = stack.enter_context(socket.socket())
            api.bind((HOST, 0))
            first = stack.enter_context(socket.socket())
            first.bind((HOST, 0))
            base = first.getsockname()[1]
            try:
                for offset in range(1, count):
                    stack.enter_context(socket.socket()).bind((HOST, base + offset))
            except OSError:
                continue
            return api.getsockname()[1], base
    raise BenchError(f"found no {count} consecutive free ports on {HOST}")


# ---------------------------------------------------------------- backend process


def samples_shown(client: httpx.Client, url: str) -> int:
    """How many samples the Analytics page graphs: those of the last 600 s."""
    resp = client.get(f"{url}/api/stats", params={"window": 600})
    if resp.status_code != 200:
        raise BenchError(f"GET stats: HTTP {resp.status_code} {resp.text[:200]}")
    return len(resp.json()["samples"])


def dashboard_url(client: httpx.Client, token: str, name: str, log: Path) -> str:
    """The demo cache's dashboard URL, from the admin cache list.

    The demo seeds its caches just after the API starts, so /healthz can answer while the
    list is still empty: the list is polled until the cache shows up.
    """
    deadline = time.monotonic() + SEED_TIMEOUT
    while True:
        resp = client.get("/api/v1/admin/caches", headers={"Authorization": f"Bearer {token}"})
        if resp.status_code != 200:
            raise BenchError(f"GET /api/v1/admin/caches: HTTP {resp.status_code} {resp.text[:200]}")
        caches = {c["name"]: c for c in resp.json()}
        if name in caches:
            break
        if time.monotonic() > deadline:
            raise BenchError(
                f"no cache {name!r} after {SEED_TIMEOUT:.0f}s; the demo has: "
                f"{', '.join(sorted(caches)) or 'none'}; backend log: "
                f"{log_tail(log)}"
            )
        time.sleep(0.1)
    url = caches[name]["dashboard_url"]
    if urlsplit(url).hostname not in (HOST, "localhost"):
        raise BenchError(f"dashboard URL {url} is not on {HOST}")
    return url


# ---------------------------------------------------------------- tmux


class Tmux:
    """A private tmux server (own socket, no config file), so no user session is touched.

    A holder session keeps the server up between launches, so a launch never pays for
    starting the tmux server.
    """

    def __init__(self, exe: str) -> None:
        self.base = [exe, "-L", f"cachier-tui-cost-{secrets.token_hex(4)}", "-f", "/dev/null"]
        self.socket: Path | None = None
        try:
            self._run(
                "new-session",
                "-d",
                "-s",
                "holder",
                "-x",
                str(WIDTH),
                "-y",
                str(HEIGHT),
                "sleep 86400",
            )
            self.socket = Path(self._run("display-message", "-p", "#{socket_path}").strip())
        except BaseException:
            self.close()
            raise

    def _run(self, *args: str) -> str:
        proc = subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=10)
        if proc.returncode != 0:
            raise BenchError(f"tmux {args[0]} failed: {proc.stderr.strip()}")
        return proc.stdout

    def launch(self, session: str, shell: str) -> None:
        self._run(
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            str(WIDTH),
            "-y",
            str(HEIGHT),
            "-c",
            str(REPO_ROOT),
            shell,
        )

    def screen(self, session: str) -> str:
        return self._run("capture-pane", "-p", "-t", session)

    def pane_pid(self, session: str) -> int:
        return int(self._run("list-panes", "-t", session, "-F", "#{pane_pid}").split()[0])

    def kill_session(self, session: str) -> None:
        subprocess.run([*self.base, "kill-session", "-t", session], capture_output=True, timeout=10)

    def close(self) -> None:
        """Stop the server and every TUI in it; tmux leaves its socket file behind."""
        subprocess.run([*self.base, "kill-server"], capture_output=True, timeout=10)
        if self.socket is not None and self.socket.name.startswith("cachier-tui-cost-"):
            self.socket.unlink(missing_ok=True)


FLOOR_APP = """
from textual.app import App
from textual.widgets import Footer, Header, Static

class Floor(App):
    BINDINGS = [("q", "quit", "Quit")]

    def compose(self):
        yield Header()
        yield Static("floor graphs: a bare Textual app")
        yield Footer()

Floor().run()
"""


def floor_command(workdir: Path) -> list[str]:
    """A bare Textual app: the first frame no Textual dashboard can beat on this machine."""
    script = workdir / "floor_app.py"
    script.write_text(FLOOR_APP)
    return [sys.executable, str(script)]


def compile_tree() -> None:
    """Bytecode for this tree, as an installed cachier has (pip compiles at install)."""
    for package in ("backend", "tui"):
        if not compileall.compile_dir(REPO_ROOT / package, quiet=1):
            raise BenchError(f"could not compile {package}/ to bytecode")


def tui_command(url: str, refresh: float) -> list[str]:
    """The dashboard on one cache; run from the repo root, so this tree's code."""
    return [sys.executable, "-m", "tui.cli", url, "--refresh", f"{refresh:g}"]


def pane_shell(cmd: list[str]) -> str:
    """The pane's shell line: the TUI, then its exit status kept on screen if it dies."""
    return f"{shlex.join(cmd)}; echo EXITED-$?; sleep 600"


def shows_content(screen: str, cache: str) -> bool:
    return cache in screen and CONTENT_MARK in screen


def exited(screen: str) -> str | None:
    """The TUI's exit line, if it is gone (the pane shell prints it)."""
    return next((line for line in screen.splitlines() if line.startswith("EXITED-")), None)


def screen_tail(screen: str, lines: int = 6) -> str:
    text = [line.rstrip() for line in screen.splitlines() if line.strip()]
    return " | ".join(text[-lines:]) or "(blank)"


# ---------------------------------------------------------------- /proc


def tui_ticks(tmux: Tmux, session: str, pid: int) -> int:
    """cpu_ticks of the TUI, or why it is gone (its last screen)."""
    try:
        return cpu_ticks(pid)
    except OSError:
        screen = tmux.screen(session)
        raise BenchError(
            f"the TUI (pid {pid}) exited during the idle window: {screen_tail(screen)}"
        ) from None


def find_tui(pane_pid: int) -> int:
    """The python the pane runs (the TUI or the floor app): the pane's shell's child
    (searched as any descendant)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                children.setdefault(int(proc_stat(int(entry))[1]), []).append(int(entry))
    todo = [pane_pid]
    while todo:
        pid = todo.pop()
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if argv[0] == os.fsencode(sys.executable):
                return pid
        todo += children.get(pid, [])
    raise BenchError(f"no {sys.executable} process under the tmux pane (pid {pane_pid})")


def wait_gone(pid: int) -> None:
    """The TUI gets SIGHUP with its session; make sure it is gone before the next launch."""
    deadline = time.monotonic() + TUI_EXIT_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if proc_stat(pid)[0] == "Z":
                return
        except OSError:
            return
        time.sleep(0.05)
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)


# ---------------------------------------------------------------- measurements


def shows_page(screen: str) -> bool:
    return all(mark in screen for mark in PAGE_MARKS)


def launch(
    tmux: Tmux,
    session: str,
    cmd: list[str],
    cache: str,
    page_shown: Callable[[str], bool] = shows_page,
) -> tuple[Launch, int]:
    """Start the TUI and poll the pane every POLL_S until the page's content shows."""
    shell = pane_shell(cmd)
    started = time.monotonic()
    tmux.launch(session, shell)
    page = None
    while True:
        screen = tmux.screen(session)
        now = time.monotonic() - started
        if page is None and page_shown(screen):
            page = round(now, 4)
        if shows_content(screen, cache):
            return (
                Launch(page if page is not None else round(now, 4), round(now, 4)),
                find_tui(tmux.pane_pid(session)),
            )
        if (line := exited(screen)) is not None:
            raise BenchError(
                f"the TUI exited ({line}) before showing {cache}: {screen_tail(screen)}"
            )
        if now > FRAME_TIMEOUT:
            raise BenchError(
                f"{cache!r} and {CONTENT_MARK!r} not on screen after "
                f"{FRAME_TIMEOUT:.0f}s: {screen_tail(screen)}"
            )
        time.sleep(POLL_S)


def first_frames(
    tmux: Tmux,
    runs: int,
    cmd: list[str],
    mark: str,
    name: str,
    say: Any,
    page_shown: Callable[[str], bool] = shows_page,
) -> list[Launch]:
    """``runs`` launches of ``cmd``, one at a time, each gone before the next starts."""
    results = []
    for run in range(1, runs + 1):
        session = f"{name}-{run}"
        try:
            result, pid = launch(tmux, session, cmd, mark, page_shown)
        finally:
            tmux.kill_session(session)
        wait_gone(pid)
        results.append(result)
        say(f"{name} {run}/{runs}: page {result.page_s:.3f} s, data {result.content_s:.3f} s")
        time.sleep(0.5)  # let the previous launch's exit settle
    return results


def idle_cpu(tmux: Tmux, args: argparse.Namespace, url: str, say: Any) -> Idle:
    """A fresh TUI on the Analytics page, left alone; CPU time sampled once a second."""
    session = "idle"
    try:
        _, pid = launch(tmux, session, tui_command(url, args.refresh), args.cache)
        say(f"idle: TUI pid {pid}, {args.warmup:g} s warm-up, then {args.seconds:g} s sampling")
        time.sleep(args.warmup)
        before = tmux.screen(session)
        tick = os.sysconf("SC_CLK_TCK")
        t0, c0 = time.monotonic(), tui_ticks(tmux, session, pid)
        per_second = []
        t_prev, c_prev = t0, c0
        while (t := time.monotonic()) - t0 < args.seconds:
            time.sleep(min(1.0, args.seconds - (t - t0)))
            t_now, c_now = time.monotonic(), tui_ticks(tmux, session, pid)
            per_second.append(round(100 * (c_now - c_prev) / tick / (t_now - t_prev), 1))
            t_prev, c_prev = t_now, c_now
        elapsed, used = t_prev - t0, (c_prev - c0) / tick
        after = tmux.screen(session)
    finally:
        tmux.kill_session(session)
    wait_gone(pid)
    on_page = shows_content(after, args.cache) and exited(after) is None
    return Idle(
        pid=pid,
        seconds=round(elapsed, 3),
        cpu_seconds=round(used, 3),
        percent=round(100 * used / elapsed, 2),
        per_second_pct=per_second,
        screen_changed=before != after,
        still_on_page=on_page,
    )


# ---------------------------------------------------------------- report


def verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def spread(values: list[float]) -> dict[str, float]:
    return {"median_s": round(statistics.median(values), 3), "max_s": round(max(values), 3)}


def summary(
    args: argparse.Namespace,
    meta: dict[str, Any],
    runs: list[Launch],
    floor: list[Launch],
    idle: Idle,
) -> dict[str, Any]:
    """Machine-readable results, every run included. ``pass`` is the issue's targets: the
    first painted page and the idle CPU; the page with its data has its own verdict."""
    page, content = spread([r.page_s for r in runs]), spread([r.content_s for r in runs])
    target = FIRST_FRAME_TARGET_S
    return {
        **meta,
        "first_frame": {
            "runs": [asdict(r) for r in runs],
            "page": {**page, "pass": page["max_s"] <= target},
            "with_data": {**content, "pass": content["max_s"] <= target},
            "floor_runs_s": [r.content_s for r in floor],
            "floor_median_s": spread([r.content_s for r in floor])["median_s"],
            "target_s": target,
            "pass": page["max_s"] <= target,
        },
        "idle_cpu": {
            **asdict(idle),
            "target_percent": IDLE_CPU_TARGET_PCT,
            "pass": idle.percent <= IDLE_CPU_TARGET_PCT,
        },
    }


def print_table(result: dict[str, Any]) -> None:
    """A table a person can paste into an issue, with the commands that produced it."""
    ff, idle = result["first_frame"], result["idle_cpu"]
    limit = f"<= {ff['target_s']:g} s"
    rows = (
        [
            (
                f"page painted, {stat}",
                f"{ff['page'][key]:.3f} s",
                limit,
                verdict(ff["page"][key] <= ff["target_s"]),
            )
            for stat, key in (("median", "median_s"), ("max", "max_s"))
        ]
        + [
            (
                f"page with data, {stat}",
                f"{ff['with_data'][key]:.3f} s",
                limit,
                verdict(ff["with_data"][key] <= ff["target_s"]),
            )
            for stat, key in (("median", "median_s"), ("max", "max_s"))
        ]
        + [
            (
                f"idle CPU ({idle['seconds']:.0f} s)",
                f"{idle['percent']:.2f} %",
                f"<= {idle['target_percent']:g} %",
                verdict(idle["pass"]),
            ),
        ]
    )
    print()
    print(
        f"TUI at {result['terminal']} in tmux {result['tmux']}, cache {result['cache']!r}, "
        f"refresh {result['refresh_s']:g} s; {result['cpus']} CPUs, load average "
        f"{result['loadavg_before']} before, {result['loadavg_after']} after"
    )
    print()
    head = f"{'metric':<24} {'value':>10}  {'target':<9} result"
    print(head)
    print("-" * len(head))
    for name, value, target, ok in rows:
        print(f"{name:<24} {value:>10}  {target:<9} {ok}")
    print()
    pages = " ".join(f"{r['page_s']:.3f}" for r in ff["runs"])
    shown = " ".join(f"{r['content_s']:.3f}" for r in ff["runs"])
    print(f"page painted per run (s): {pages}  (header and footer keys; title 'loading…')")
    print(f"with data per run (s):    {shown}  (the cache's name and 'graphs:' line)")
    floor = " ".join(f"{t:.3f}" for t in ff["floor_runs_s"])
    print(
        f"floor per run (s):        {floor}  (median {ff['floor_median_s']:.3f} s: a bare "
        "Textual app launched the same way)"
    )
    print(
        f"idle: {idle['cpu_seconds']:.2f} s CPU in {idle['seconds']:.1f} s (pid {idle['pid']});"
        f" per second min {min(idle['per_second_pct']):.0f} %, median "
        f"{statistics.median(idle['per_second_pct']):.0f} %, max "
        f"{max(idle['per_second_pct']):.0f} %; {idle['samples']} samples on the graphs "
        f"at the end (600 is a full window: --history 600)"
    )
    if not idle["screen_changed"]:
        print("  note: the screen did not change during the window: did the refresh stop?")
    if not idle["still_on_page"]:
        print("  note: the Analytics page was no longer on screen at the end of the window")
    print()
    print("commands:")
    print(f"  backend: {result['commands']['backend']}")
    print(f"  tui:     {result['commands']['tmux']}")


# ---------------------------------------------------------------- main


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def bench(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Start the backend and tmux, run both phases, and stop both (on any exit)."""
    tmux_exe = require_tmux()
    api_port, ep_port = free_ports(demo_regions())
    token = secrets.token_urlsafe(24)
    cmd = [
        sys.executable,
        "-m",
        "backend.cli",
        "--demo",
        "--data-dir",
        str(workdir / "data"),
        "--host",
        HOST,
        "--api-port",
        str(api_port),
        "--endpoint-port",
        str(ep_port),
        "--admin-token",
        token,
    ]
    log = workdir / "backend.log"
    say = (lambda _msg: None) if args.json else (lambda msg: print(msg, flush=True))
    meta: dict[str, Any] = {"loadavg_before": loadavg()}
    client = httpx.Client(
        base_url=f"http://{HOST}:{api_port}", timeout=HTTP_TIMEOUT, trust_env=False
    )
    with (
        client,
        run_process(cmd, log, cwd=REPO_ROOT) as proc,
        contextlib.closing(Tmux(tmux_exe)) as tmux,
    ):
        wait_for_health(proc, log, client)
        url = dashboard_url(client, token, args.cache, log)
        up_since = time.monotonic()
        compile_tree()
        floor = first_frames(
            tmux,
            args.runs,
            floor_command(workdir),
            "floor",
            "floor",
            say,
            page_shown=lambda screen: shows_content(screen, "floor"),
        )
        if (wait := args.history - (time.monotonic() - up_since)) > 0:
            say(f"waiting {wait:.0f} s until the backend has {args.history:g} s of history")
            time.sleep(wait)
        runs = first_frames(
            tmux, args.runs, tui_command(url, args.refresh), args.cache, "first frame", say
        )
        idle = idle_cpu(tmux, args, url, say)
        idle.samples = samples_shown(client, url)
        if proc.poll() is not None:
            raise BenchError(f"cachier-backend died during the run: {log_tail(log)}")
    tui = pane_shell(tui_command(url, args.refresh)).split(";")[0]
    shown_backend = shlex.join(cmd).replace(token, "<random>")
    version = subprocess.run([tmux_exe, "-V"], capture_output=True, text=True).stdout.split()
    meta.update(
        {
            "cache": args.cache,
            "refresh_s": args.refresh,
            "history_s": args.history,
            "terminal": f"{WIDTH}x{HEIGHT}",
            "tmux": version[-1] if version else "?",
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_after": loadavg(),
            "commands": {
                "backend": shown_backend,
                "tmux": f"tmux new-session -d -x {WIDTH} -y {HEIGHT} {shlex.quote(tui)}",
            },
        }
    )
    return summary(args, meta, runs, floor, idle)


def main(argv: list[str] | None = None) -> int:
    """Exit 0 if every target was met, 1 if one was missed, 2 on setup errors."""
    args = parse_args(argv)
    unwind_on_sigterm()
    try:
        with tempfile.TemporaryDirectory(prefix="cachier-tui-cost-") as tmp:
            result = bench(args, Path(tmp))
    except (BenchError, httpx.HTTPError, subprocess.TimeoutExpired) as exc:
        print(f"tui cost bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tui cost bench: interrupted; TUI, tmux and backend stopped", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    passed = result["first_frame"]["pass"] and result["idle_cpu"]["pass"]
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
