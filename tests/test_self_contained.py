"""A plain clone runs its tests and benchmarks: nothing they read lies outside the repo.

The conformance test and the data-plane benchmark once compiled ``../shared/tools/
authshim.c``, a file beside the development checkout; in a clone those tests errored.
This runs their path lookups from a copy of the tracked files with nothing beside it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

CHECK = """
import runpy, sys
from pathlib import Path
root = Path.cwd().resolve()
from tests.backend.test_memccapable import AUTHSHIM
sys.path.insert(0, str(root / "bench"))
bench = runpy.run_path(str(root / "bench" / "dataplane.py"), run_name="dataplane")
readers = {"test_memccapable": AUTHSHIM, "bench/dataplane.py": bench["DEFAULT_AUTHSHIM"]}
for name, path in readers.items():
    path = Path(path).resolve()
    assert path.is_file(), f"{name} reads {path}, which a clone does not have"
    assert path.is_relative_to(root), f"{name} reads {path}, outside the repository"
"""


def tracked_files() -> list[str]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: cannot tell which files a clone has")
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=30
    ).stdout
    return [name for name in listed.decode().split("\0") if name]


def test_the_conformance_test_and_the_benchmark_find_authshim_in_a_clone(
    tmp_path: Path,
) -> None:
    clone = tmp_path / "nested" / "clone"  # no ../shared beside it
    for name in tracked_files():
        if (REPO / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, clone / name)
    result = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=clone, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
