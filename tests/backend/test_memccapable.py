"""libmemcached's conformance tester against the authenticating endpoint.

memccapable cannot log in, so ``tools/authshim.c`` (LD_PRELOAD, in this repository)
authenticates each socket it opens. CI installs gcc and libmemcached-tools; only a
developer machine without them skips, saying which is missing.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import CacheHandle, require_tool

AUTHSHIM = Path(__file__).resolve().parents[2] / "tools" / "authshim.c"


def _require(tool: str) -> str:
    return require_tool(tool, "gcc" if tool == "gcc" else "libmemcached-tools")


@pytest.fixture(scope="session")
def authshim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = _require("gcc")
    if not AUTHSHIM.exists():
        pytest.fail(f"authshim source not found at {AUTHSHIM}")
    target = tmp_path_factory.mktemp("shim") / "authshim.so"
    subprocess.run(
        [gcc, "-shared", "-fPIC", "-O2", "-o", str(target), str(AUTHSHIM), "-ldl"], check=True
    )
    return target


def run_memccapable(cache: CacheHandle, shim: Path, mode: str, flag: str) -> str:
    tool = _require("memccapable")
    host, port = cache.endpoint
    env = os.environ | {
        "LD_PRELOAD": str(shim),
        "AUTH_PORT": str(port),
        "AUTH_USER": cache.username,
        "AUTH_PASS": cache.password,
        "AUTH_MODE": mode,
    }
    result = subprocess.run(
        [tool, "-h", host, "-p", str(port), "-t", "5", flag],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.stdout + result.stderr


def test_memccapable_ascii_passes_all_but_the_two_delete_tests(
    cache: CacheHandle, authshim: Path
) -> None:
    """memccapable's delete tests expect ``delete <key> <n>`` to be refused, as memcached
    1.6.18 did; memcached 1.6.45 deletes (and fails the same two tests), and so do we."""
    output = run_memccapable(cache, authshim, "ascii", "-a")
    passed = re.findall(r"^ascii .*\[pass\]$", output, re.MULTILINE)
    assert len(passed) == 25, output
    assert "2 of 27 tests failed" in output, output


def test_memccapable_binary_passes_all_27_tests(cache: CacheHandle, authshim: Path) -> None:
    output = run_memccapable(cache, authshim, "binary", "-b")
    passed = re.findall(r"^binary .*\[pass\]$", output, re.MULTILINE)
    assert len(passed) == 27, output
    assert "All tests passed" in output, output
