"""The code's own rules, checked by the test run (so `.ci/run` fails when one breaks):
ruff's lint and format, and mypy over `backend` and `tui` with zero errors (its settings
are in pyproject.toml). The import contracts are tests/test_import_contracts.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TREES = ["backend", "tui", "tests", "bench"]


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *command], cwd=REPO, capture_output=True, text=True, timeout=600
    )


@pytest.mark.parametrize(
    "check", [["ruff", "check"], ["ruff", "format", "--check"]], ids=["lint", "format"]
)
def test_ruff_is_clean(check: list[str]) -> None:
    result = run(*check, *TREES)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]


def test_mypy_finds_no_error_in_backend_and_tui() -> None:
    result = run("mypy")  # files and settings: [tool.mypy] in pyproject.toml
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]
