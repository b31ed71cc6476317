"""No code turns certificate verification off, anywhere (issue 17): a client that cannot
verify the backend says so and stops; it never falls back to trusting whoever answers.

Checked on the source of every tree, tests included (a test that disables verification
would prove nothing about the clients people run)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREES = ["backend", "tui", "tests", "bench", "tools"]
# httpx/requests' switch, the ssl module's ways to stop checking, and its unverified context.
DISABLED = re.compile(
    r"verify\s*=\s*False"
    r"|CERT_NONE"
    r"|check_hostname\s*=\s*False"
    r"|_create_unverified_context"
    r"|PYTHONHTTPSVERIFY"
)


def sources() -> list[Path]:
    """Every Python file, but this one (it spells the patterns out)."""
    here = Path(__file__).resolve()
    return sorted(
        path for tree in TREES for path in (ROOT / tree).rglob("*.py") if path.resolve() != here
    )


def test_no_source_disables_certificate_verification() -> None:
    files = sources()
    assert ROOT / "tui" / "client.py" in files  # the check reads the clients we ship
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if DISABLED.search(line)
    ]
    assert found == []


def test_the_pattern_catches_what_it_is_for() -> None:
    for line in (
        "httpx.AsyncClient(verify=False)",
        "context.verify_mode = ssl.CERT_NONE",
        "context.check_hostname = False",
        "ssl._create_unverified_context()",
    ):
        assert DISABLED.search(line), line
