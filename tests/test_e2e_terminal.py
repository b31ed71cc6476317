"""`cachier-tui --demo` in a real terminal (tmux, 80x24), driven by keys and read off screen."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid

from tests.conftest import free_fixed_ports, require_tool


def _tmux() -> str:
    return require_tool("tmux", "tmux")


class Terminal:
    def __init__(self, command: list[str], width: int = 80, height: int = 24) -> None:
        self.tmux = _tmux()
        self.session = f"cachier-e2e-{uuid.uuid4().hex[:8]}"
        shell = " ".join(command) + "; echo EXITED-$?; sleep 60"
        subprocess.run(
            [
                self.tmux,
                "new-session",
                "-d",
                "-s",
                self.session,
                "-x",
                str(width),
                "-y",
                str(height),
                shell,
            ],
            check=True,
        )

    def screen(self) -> str:
        return subprocess.run(
            [self.tmux, "capture-pane", "-p", "-t", self.session],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    def press(self, *keys: str) -> None:
        subprocess.run([self.tmux, "send-keys", "-t", self.session, *keys], check=True)

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if text in screen:
                return screen
            assert time.monotonic() < deadline, f"{text!r} never appeared on:\n{screen}"
            time.sleep(0.2)

    def wait_gone(self, text: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while text in (screen := self.screen()):
            assert time.monotonic() < deadline, f"{text!r} stayed on:\n{screen}"
            time.sleep(0.2)

    def close(self) -> None:
        subprocess.run([self.tmux, "kill-session", "-t", self.session], capture_output=True)


def test_demo_in_a_real_terminal_visits_every_page_and_quits_cleanly() -> None:
    api, endpoint, _ = free_fixed_ports(3)  # the API, then the two regions' endpoints
    command = [
        sys.executable,
        "-m",
        "tui.cli",
        "--demo",
        "--api-port",
        str(api),
        "--endpoint-port",
        str(endpoint),
        "--demo-rate",
        "20",
    ]
    term = Terminal(command)
    try:
        screen = term.wait_for("sessions")
        assert all(name in screen for name in ("shop", "catalog", "eu-api", "tiny"))
        term.press("4")
        screen = term.wait_for("Recent incidents")
        assert "us-east-1" in screen and "use1-a" in screen and "euw1-b" in screen
        term.press("1")
        term.wait_for("Create cache")
        term.press("Enter")  # opens the first cache by name: catalog
        screen = term.wait_for("graphs: last")
        assert "catalog" in screen and "cluster" in screen
        term.press("3")
        term.wait_for("Config vars")
        term.press("5")
        term.wait_for("App log of catalog")
        term.press("p")  # the safe action: pause, with its badge in the header
        term.wait_for("PAUSED")
        term.press("?")
        term.wait_for("cachier-tui keys")
        term.press("Escape")
        time.sleep(0.5)  # a lone ESC must not merge with the next key into alt+q
        term.wait_gone("cachier-tui keys")
        term.press("q")
        term.wait_for("EXITED-0", timeout=20)
    finally:
        term.close()
    for port in (api, endpoint, endpoint + 1):  # the backend let go of every port
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))
