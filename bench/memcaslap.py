"""memcaslap against cachier: the load shape, the login shim, and reading the result.

memcaslap cannot authenticate, so against cachier it runs under the ``LD_PRELOAD`` shim
``tools/authshim.c``, which logs every new connection in before memcaslap sees it. Both
``dataplane.py`` and ``scaleout.py`` load servers this way, so the shape (90/10 get/set, 16
connections, one thread, 1 KiB values) is defined once and their numbers compare.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from processes import BenchError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_AUTHSHIM = REPO_ROOT / "tools" / "authshim.c"
HOST = "127.0.0.1"
RUN_GRACE = 30.0  # seconds memcaslap may overrun --seconds before we give up on it
DEBIAN_PACKAGES = {"memcached": "memcached", "memcaslap": "libmemcached-tools", "gcc": "gcc"}


class RunError(Exception):
    """One server could not be measured; the other servers' numbers are still worth showing."""


@dataclass
class RunResult:
    """The numbers memcaslap prints at the end of one run."""

    tps: int
    ops: int
    cmd_get: int
    cmd_set: int
    get_misses: int


def require_tools(tools: tuple[str, ...] = tuple(DEBIAN_PACKAGES)) -> None:
    """Fail early with the package to install, rather than halfway through a run."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        packages = " ".join(sorted({DEBIAN_PACKAGES[t] for t in missing}))
        raise BenchError(f"missing {', '.join(missing)}; install Debian packages: {packages}")


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


def shim_env(shim: Path, port: int, user: str, password: str, mode: str) -> dict[str, str]:
    """What memcaslap's environment needs for the shim to log in every connection to port."""
    return {
        "LD_PRELOAD": str(shim),
        "AUTH_PORT": str(port),
        "AUTH_USER": user,
        "AUTH_PASS": password,
        "AUTH_MODE": mode,
    }


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
            return probe_ascii(sock, user, password)
    except OSError as exc:
        return f"connection failed: {exc}"


def recv_exact(sock: socket.socket, n: int) -> bytes:
    """Read n bytes or raise, so a closed connection is reported as such."""
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("server closed the connection")
        buf += chunk
    return buf


def probe_ascii(sock: socket.socket, user: str, password: str) -> str | None:
    """ASCII login is a set of the username with the password as value, answered STORED."""
    pw = password.encode()
    sock.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (user.encode(), len(pw), pw))
    line = b""
    while not line.endswith(b"\r\n") and len(line) < 512:
        line += recv_exact(sock, 1)
    return None if line == b"STORED\r\n" else f"ascii login answered {line.strip()!r}"


def _probe_binary(sock: socket.socket, user: str, password: str) -> str | None:
    """Binary login is SASL PLAIN (opcode 0x21), answered with status 0."""
    mech, value = b"PLAIN", b"\0" + user.encode() + b"\0" + password.encode()
    header = struct.pack(">BBHBBHIIQ", 0x80, 0x21, len(mech), 0, 0, 0, len(mech) + len(value), 0, 0)
    sock.sendall(header + mech + value)
    try:
        reply = recv_exact(sock, 24)
    except ConnectionError:
        return "closed the connection on a binary-protocol SASL login (binary not supported?)"
    status, body_len = struct.unpack(">H", reply[6:8])[0], struct.unpack(">I", reply[8:12])[0]
    recv_exact(sock, body_len)
    return None if status == 0 else f"binary SASL login answered status 0x{status:04x}"


# ---------------------------------------------------------------- load


def memcaslap_command(port: int, seconds: int, mode: str) -> list[str]:
    """The one load shape every bench uses, so ratios compare like with like."""
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


def shown_command(port: int, env: dict[str, str], seconds: int, mode: str) -> str:
    """The command as a person would paste it into a shell (shim variables included)."""
    shown_env = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    cmd = shlex.join(memcaslap_command(port, seconds, mode))
    return f"{shown_env} {cmd}" if shown_env else cmd


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
            raise RunError(f"no {name!r} in memcaslap output: {tail(text)}")
        values[name] = int(found[-1])
    return RunResult(**values)


def tail(text: str, lines: int = 4) -> str:
    """The last few lines of tool output, on one line, for error messages."""
    return " | ".join(text.strip().splitlines()[-lines:]) or "(no output)"


class Load:
    """One memcaslap run in the background, so several can load several servers at once.

    Its output goes to a file rather than a pipe: nobody reads a pipe while the others run.
    """

    def __init__(
        self, port: int, env: dict[str, str], seconds: int, mode: str, output: Path
    ) -> None:
        self.seconds = seconds
        self.output = output
        with output.open("wb") as out:
            self.proc = subprocess.Popen(
                memcaslap_command(port, seconds, mode),
                env={**os.environ, **env},
                cwd=output.parent,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def result(self) -> RunResult:
        """Wait for the end; checks that gets really happened, since TPS alone can hide errors."""
        try:
            self.proc.wait(self.seconds + RUN_GRACE)
        except subprocess.TimeoutExpired as exc:
            self.stop()
            limit = self.seconds + RUN_GRACE
            raise RunError(f"memcaslap did not finish within {limit:.0f}s") from exc
        output = self.output.read_text(errors="replace")
        if self.proc.returncode != 0:
            raise RunError(f"memcaslap exited with {self.proc.returncode}: {tail(output)}")
        result = parse_output(output)
        if result.cmd_get == 0 or result.tps == 0:
            raise RunError(f"no gets were served (cmd_get={result.cmd_get}, TPS={result.tps})")
        return result

    def stop(self) -> None:
        """Kill a run that is not wanted any more (an error elsewhere, Ctrl-C)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run_load(port: int, env: dict[str, str], seconds: int, mode: str, workdir: Path) -> RunResult:
    """One memcaslap run, waited for."""
    load = Load(port, env, seconds, mode, workdir / "memcaslap.out")
    try:
        return load.result()
    finally:
        load.stop()
