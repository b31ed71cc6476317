"""`cachier-tui` refuses to start with a readable one-line reason, never a traceback.

Run in a pseudo-terminal, as a person runs it: a backend that cannot be used is found out
while the first page is already on screen, so what counts is what stays on the terminal
once the app has given it back.
"""

from __future__ import annotations

import os
import pty
import re
import select
import struct
import sys
import termios
import time
from fcntl import ioctl

import pytest

from tests.conftest import RunningService, free_port

LEAVE_ALTERNATE_SCREEN = "\x1b[?1049l"
CONTROL_SEQUENCE = re.compile(r"\x1b\[[0-9;?<>=$]*[A-Za-z~]|\x1b[=>]")


def run_in_pty(args: list[str], timeout: float, quit_on: str | None = None) -> tuple[int, str]:
    """Run `cachier-tui` in an 80x24 pseudo-terminal until it exits or ``timeout``: its exit
    status and everything the terminal received (decoded, control sequences kept).

    With ``quit_on``, q is pressed once that text is on screen (control sequences removed),
    and a child that never showed it is killed."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the TUI on the pseudo-terminal
        os.execv(sys.executable, [sys.executable, "-m", "tui.cli", *args])
    ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    output = bytearray()
    deadline = time.monotonic() + timeout
    quit_sent = False
    try:
        while time.monotonic() < deadline:
            if (
                quit_on is not None
                and not quit_sent
                and quit_on in CONTROL_SEQUENCE.sub("", output.decode(errors="replace"))
            ):
                os.write(fd, b"q")
                quit_sent = True
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
    finally:
        os.close(fd)
        if quit_on is not None and not quit_sent:
            os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    assert quit_on is None or quit_sent, f"{quit_on!r} never appeared"
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def run_tui(*args: str, timeout: float = 60.0) -> tuple[int, str]:
    """The exit status, and the text left on an 80x24 terminal after the app exits."""
    status, output = run_in_pty(list(args), timeout)
    text = output.rsplit(LEAVE_ALTERNATE_SCREEN, 1)[-1]
    return status, CONTROL_SEQUENCE.sub("", text)


def assert_one_line(result: tuple[int, str], fragment: str) -> None:
    status, left_on_screen = result
    assert status != 0
    lines = [line for line in left_on_screen.replace("\r", "").splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("cachier-tui: error: ") and fragment in lines[0]
    assert "Traceback" not in left_on_screen


def test_unreachable_backend(tmp_path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert_one_line(run_tui("--api", url, "--admin-token", "x"), "cannot reach the backend")


def test_refused_admin_token(service: RunningService) -> None:
    result = run_tui("--api", service.api_url, "--admin-token", "wrong")
    assert_one_line(result, "the admin token was refused")


def test_missing_admin_token(service: RunningService, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CACHIER_ADMIN_TOKEN", raising=False)
    assert_one_line(run_tui("--api", service.api_url), "--api needs --admin-token")


def test_dead_dashboard_url(service: RunningService) -> None:
    result = run_tui(f"{service.api_url}/dashboard/no-such-secret")
    assert_one_line(result, "this dashboard URL is not valid")


def test_not_a_dashboard_url() -> None:
    assert_one_line(run_tui("http://example.invalid/nothing"), "a dashboard URL looks like")
