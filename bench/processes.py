"""What every benchmark script needs from the processes it starts: run, stop, explain.

The scripts run as ``python bench/<script>.py``, so this module sits beside them and is
imported by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

STOP_TIMEOUT = 10.0  # seconds a process gets after SIGTERM before SIGKILL
HEALTH_TIMEOUT = 30.0  # seconds cachier-backend may take to answer /healthz


class BenchError(Exception):
    """A setup failure worth one line (missing tool, server that did not come up)."""


@contextlib.contextmanager
def run_process(
    cmd: list[str], log: Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server for the duration of the block and always stop it afterwards.

    It gets its own session so a Ctrl-C reaches only the script, which then shuts it down
    in order.
    """
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, wait, then SIGKILL: a graceful stop first so a server releases its port."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        except KeyboardInterrupt:  # a second Ctrl-C while stopping: stop hard, then go on
            proc.kill()
            proc.wait()
            raise


def log_tail(log: Path, lines: int = 5) -> str:
    """The end of a server's log, to say why it did not come up."""
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def wait_for_health(proc: subprocess.Popen[bytes], log: Path, client: httpx.Client) -> None:
    """cachier-backend answers /healthz only after every listener is bound."""
    deadline = time.monotonic() + HEALTH_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"cachier-backend exited with {proc.returncode}: {log_tail(log)}")
        with contextlib.suppress(httpx.HTTPError):
            if client.get("/healthz").status_code == 200:
                return
        time.sleep(0.1)
    raise BenchError(f"cachier-backend did not answer /healthz in {HEALTH_TIMEOUT}s")


def unwind_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C, so the with-blocks still stop every server."""

    def terminate(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminate)


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Ports the kernel says are free; all sockets are held at once so they are distinct."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in socks:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in socks]


def rss_bytes(pid: int | str = "self") -> int:
    """A process's resident set (VmRSS), what the kernel charges it for memory."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise BenchError(f"no VmRSS for pid {pid}")


def proc_stat(pid: int) -> list[str]:
    """Fields after the command name of /proc/<pid>/stat (index 0 is field 3, the state)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    return data[data.rindex(b")") + 2 :].decode().split()


def cpu_ticks(pid: int) -> int:
    """utime + stime of every thread of the process, in clock ticks."""
    fields = proc_stat(pid)
    return int(fields[11]) + int(fields[12])


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of the process, in seconds."""
    return cpu_ticks(pid) / os.sysconf("SC_CLK_TCK")
