"""`cachier-tui` refuses to start with a readable one-line reason, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import RunningService, free_port


def run_tui(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui.cli", *args], capture_output=True,
                          text=True, timeout=60, env=env)  # fmt: skip


def assert_one_line(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode != 0
    assert fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


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
