"""An installed cachier carries every file its packages read, not just the Python modules.

The quick start installs with `pip install .` (not editable), so a file missing from the
wheel breaks it while every test run from the source tree still passes.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent


PACKAGES = ("backend", "tui")


def build_wheel(tmp_path: Path) -> Path:
    """The wheel `pip install .` would install, built from a copy of the packages.

    Built from a copy: an egg-info left in the working tree by an editable install would
    otherwise add the files it once listed, and hide a missing declaration."""
    source = tmp_path / "source"
    for package in PACKAGES:
        shutil.copytree(
            REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--wheel-dir",
            str(tmp_path),
            str(source),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    return next(tmp_path.glob("cachier-*.whl"))


def test_the_wheel_carries_every_file_of_both_packages(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    shipped = set(zipfile.ZipFile(wheel).namelist())
    sources = {
        path.relative_to(REPO).as_posix()
        for package in PACKAGES
        for path in (REPO / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert "tui/cachier.tcss" in sources
    assert sources - shipped == set()


def _secrets_of(caches: list[dict]) -> set[str]:
    """Every secret the demo holds: dashboard secrets and every credential's password."""
    found = set()
    for cache in caches:
        found.add(cache["dashboard_url"].rsplit("/dashboard/", 1)[1])
        found.update(c["password"] for c in cache["credentials"])
    return found


def _demo_is_live(api: httpx.Client) -> bool:
    """Connections, get hits, and a hit rate that moves, on every demo cache."""
    caches = api.get("/api/v1/admin/caches").json()["items"]
    if len(caches) < 5:
        return False
    for cache in caches:
        usage = cache["usage"]
        if usage["connections"] == 0 or usage["get_hits"] == 0:
            return False
        stats = api.get(cache["dashboard_url"] + "/api/stats", params={"window": 60}).json()
        rates = {s["hit_rate"] for s in stats["samples"] if s["hit_rate"] is not None}
        if len(rates) < 2:
            return False
    return True


def _api_url_from_banner(out: Path, backend: subprocess.Popen, deadline: float) -> str:
    """Where the backend's API listens (ports 0: the kernel picks free ones, no race)."""
    while time.monotonic() < deadline:
        match = re.search(r"API\s+(http://\S+)", out.read_text())
        if match:
            return match.group(1)
        assert backend.poll() is None, "cachier-backend exited before it listened"
        time.sleep(0.1)
    raise AssertionError("cachier-backend never printed where its API listens")


def test_a_plain_install_runs_the_demo_with_live_traffic(tmp_path: Path) -> None:
    """The quick start on a fresh machine: the wheel without extras in a new virtualenv,
    then the demo, whose traffic must reach every cache (its clients are runtime
    dependencies), and whose logs must hold none of the secrets it knows."""
    wheel = build_wheel(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    extras = subprocess.run([str(python), "-c", "import pytest"], capture_output=True)
    assert extras.returncode != 0, "the test extra leaked into a plain install"

    token = "newcomer-admin-token-" + "x" * 20
    out, err = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with out.open("w") as stdout, err.open("w") as stderr:
        backend = subprocess.Popen(
            [
                str(venv / "bin" / "cachier-backend"),
                "--demo",
                "--data-dir",
                str(tmp_path / "d"),
                "--api-port",
                "0",
                "--endpoint-port",
                "0",
                "--admin-token",
                token,
            ],
            stdout=stdout,
            stderr=stderr,
            cwd=tmp_path,  # not the source tree
        )
    try:
        api_url = _api_url_from_banner(out, backend, deadline=time.monotonic() + 60)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=api_url, headers=headers, timeout=10) as api:
            deadline = time.monotonic() + 30
            live = False
            while not live and time.monotonic() < deadline:
                assert backend.poll() is None, err.read_text()[-2000:]
                with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
                    live = _demo_is_live(api)
                if not live:
                    time.sleep(1)
            assert live, "demo traffic never reached every cache:\n" + err.read_text()[-2000:]
            caches = api.get("/api/v1/admin/caches").json()["items"]
            secrets = _secrets_of(caches) | {token}
            app_logs = [
                line["message"]
                for cache in caches
                for line in api.get(
                    cache["dashboard_url"] + "/api/logs", params={"limit": 500}
                ).json()["lines"]
            ]
    finally:
        backend.send_signal(signal.SIGTERM)
        backend.wait(30)
    assert backend.returncode == 0
    logs = {"stdout": out.read_text(), "stderr": err.read_text(), "app": "\n".join(app_logs)}
    assert "cannot run" not in logs["stderr"], logs["stderr"][-2000:]
    for name, text in logs.items():
        leaked = [s[:6] + "…" for s in secrets if s in text]
        assert leaked == [], f"secrets in the {name} log: {leaked}"
