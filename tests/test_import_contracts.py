"""The packages' import contracts, checked on the source (every import statement, also the
ones under ``if TYPE_CHECKING`` or inside functions):

- ``backend`` never imports Textual (nor any ``textual_*`` package) nor ``tui``: the
  service runs, and is tested, without the dashboard;
- ``tui`` knows the backend through its HTTP API, whose models are
  ``backend.api.schemas``; only the two modules that start a backend inside the
  dashboard may import its in-process entry point (``ENTRY_POINT``).

A new import that breaks a contract fails here with the file, line and import named.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = "backend.api.schemas"
# The in-process entry point: what `cachier-tui` needs to run a backend in its own loop.
# tui/cli.py takes the backend's own flags (parser, Config, their errors); tui/app.py
# starts the Service and routes its log lines (with their redaction) to the Logs page.
ENTRY_POINT: dict[str, frozenset[str]] = {
    "tui/cli.py": frozenset(
        {"backend.cli", "backend.config", "backend.topology", "backend.service"}
    ),
    "tui/app.py": frozenset({"backend.service", "backend.logs"}),
}


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def imported(source: str, path: str) -> Iterator[tuple[int, str]]:
    """``(line, name)`` of every import in ``source``: ``import a.b`` yields ``a.b`` and
    ``from a import b`` yields ``a.b`` (what it brings in, a module or a name in one),
    relative imports resolved against ``path``."""
    package = path.removesuffix(".py").split("/")[:-1]
    for node in ast.walk(ast.parse(source, path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package[: len(package) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def _is(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations(source: str, path: str) -> list[str]:
    """What in ``source`` (the file at ``path``, relative to the repository) breaks a
    contract, as ``path:line imports module`` lines."""
    found = []
    if path.startswith("backend/"):
        for line, module in imported(source, path):
            top = module.split(".")[0]
            if top == "textual" or top.startswith("textual_") or top == "tui":
                found.append(f"{path}:{line} imports {module}")
    elif path.startswith("tui/"):
        allowed = {SCHEMAS} | ENTRY_POINT.get(path, frozenset())
        for line, module in imported(source, path):
            if module == "backend" or not _is(module, "backend"):
                continue  # `from backend import x` is judged as backend.x
            if not any(_is(module, ok) for ok in allowed):
                found.append(f"{path}:{line} imports {module}")
    return sorted(set(found))


def check(package: str) -> list[str]:
    return [
        problem
        for file in modules(package)
        for problem in violations(file.read_text(), file.relative_to(ROOT).as_posix())
    ]


def test_backend_never_imports_textual_nor_the_dashboard() -> None:
    assert modules("backend")
    assert check("backend") == []


def test_the_dashboard_imports_only_the_schemas_and_the_in_process_entry_point() -> None:
    assert modules("tui")
    assert check("tui") == []


def test_the_entry_point_list_names_real_modules_and_importers() -> None:
    """A renamed module must not leave a stale, wider-than-needed allowance behind."""
    for importer, allowed in ENTRY_POINT.items():
        assert (ROOT / importer).is_file(), importer
        for module in allowed:
            path = ROOT / Path(*module.split("."))
            assert path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("backend/api/app.py", "from textual.app import App"),
        ("backend/store.py", "import textual_plotext"),
        ("backend/demo.py", "def f():\n    from tui.client import CachierClient"),
        ("tui/pages/caches.py", "from backend.control.models import PLANS"),
        ("tui/pages/caches.py", "from backend.control import models"),
        ("tui/pages/caches.py", "import backend.control.db"),
        ("tui/pages/caches.py", "from backend import service"),  # the entry point's place
        ("tui/widgets/graph.py", "if TYPE_CHECKING:\n    from backend.analytics import Series"),
        ("tui/app.py", "from backend.cli import build_parser"),  # cli.py's, not app.py's
        ("tui/pages/x.py", "from ...backend.control import models"),
    ],
)
def test_a_forbidden_import_is_reported(path: str, source: str) -> None:
    (problem,) = {p.split(" imports ")[0] for p in violations(source, path)}
    assert problem.startswith(f"{path}:")


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("tui/client.py", "from backend.api.schemas import CacheOut"),
        ("tui/pages/x.py", "if TYPE_CHECKING:\n    from backend.api.schemas import StatsOut"),
        ("tui/cli.py", "from backend.cli import build_parser\nfrom backend.service import Service"),
        ("tui/app.py", "from backend import logs"),
        ("tui/messages.py", "from backend.api import schemas"),
        ("backend/api/app.py", "from fastapi import FastAPI\nimport textwrap"),
    ],
)
def test_an_allowed_import_is_not_reported(path: str, source: str) -> None:
    assert violations(source, path) == []
