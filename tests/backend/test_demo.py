"""`cachier-backend --demo` says where a person looks when its traffic cannot run."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

# The real command line, in a process where the binary client's package cannot be
# imported (as on an install that lost it): sys.modules[name] = None makes import fail.
WITHOUT_BMEMCACHED = (
    "import sys; sys.modules['bmemcached'] = None; "
    "from backend.cli import main; sys.exit(main(sys.argv[1:]))"
)


def test_a_demo_client_that_cannot_run_logs_one_warning_naming_the_package(tmp_path) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            WITHOUT_BMEMCACHED,
            "--demo",
            "--data-dir",
            str(tmp_path),
            "--api-port",
            "0",
            "--endpoint-port",
            "0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(0.5)
        deadline = time.monotonic() + 20
        lines: list[str] = []
        seen = 0  # both binary clients warn, each when it starts: wait for the second
        while time.monotonic() < deadline and process.poll() is None:
            line = process.stderr.readline()
            lines.append(line)
            seen += "cannot run" in line
            if seen == 2:
                break
    finally:
        process.send_signal(signal.SIGTERM)
        rest = process.communicate(timeout=20)[1]
    warnings = [line for line in lines + rest.splitlines() if "cannot run" in line]
    # Two binary demo clients (sessions, eu-api), one warning each; ASCII clients run.
    assert len(warnings) == 2, "".join(lines) + rest
    assert all("WARNING" in w and "bmemcached package is missing" in w for w in warnings)
    assert "Traceback" not in rest


def test_a_dropped_connection_that_comes_back_is_no_warning_but_a_lasting_failure_is(
    caplog,
) -> None:
    """The demo takes a proxy down on purpose: its clients reconnect, quietly. A client
    that stays down is a notice in the dashboard (WARNING), once, and so is its return."""
    import logging

    from backend.demo import ClientHealth, DemoClient

    caplog.set_level(logging.DEBUG, logger="backend.demo")
    health = ClientHealth(DemoClient("shop", "127.0.0.1:1", "u", "p", 10, 10))
    health.WARN_AFTER_S = 0.2
    health.failed(ConnectionResetError())
    health.worked()
    assert [r.levelname for r in caplog.records] == ["INFO", "INFO"]
    caplog.clear()
    for _ in range(3):
        health.failed(ConnectionRefusedError("refused"))
        time.sleep(0.15)
    health.worked()
    levels = [r.levelname for r in caplog.records]
    assert levels.count("WARNING") == 2  # "has been failing", then "working again"
    assert "has been failing" in caplog.records[levels.index("WARNING")].getMessage()
