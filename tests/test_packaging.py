"""An installed cachier carries every file its packages read, not just the Python modules.

The quick start installs with `pip install .` (not editable), so a file missing from the
wheel breaks it while every test run from the source tree still passes.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


PACKAGES = ("backend", "tui")


def test_the_wheel_carries_every_file_of_both_packages(tmp_path: Path) -> None:
    # Built from a copy: an egg-info left in the working tree by an editable install would
    # otherwise add the files it once listed, and hide a missing declaration.
    source = tmp_path / "source"
    for package in PACKAGES:
        shutil.copytree(REPO / package, source / package,
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--quiet", "--wheel-dir", str(tmp_path), str(source)],
                   check=True, timeout=300, capture_output=True)  # fmt: skip
    wheel = next(tmp_path.glob("cachier-*.whl"))
    shipped = set(zipfile.ZipFile(wheel).namelist())
    sources = {
        path.relative_to(REPO).as_posix()
        for package in PACKAGES
        for path in (REPO / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert "tui/cachier.tcss" in sources
    assert sources - shipped == set()
