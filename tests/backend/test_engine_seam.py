"""The storage engine seam holds: only backend/store.py touches items and the LRU order.

Everything else reaches a cache through ``backend.engine.Engine`` (get / store / delete /
arith / touch / flush / usage / stats ...), so another engine can replace the in-process
LRU without the codecs, commands, stats, analytics or API noticing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import backend
from backend.engine import Mode, Outcome
from backend.store import LruEngine

BACKEND = Path(backend.__file__).parent
# Item and LruEngine's private state and helpers. move_to_end is not listed: other modules
# (the auth throttle) keep OrderedDicts of their own.
ENGINE_INTERNALS = {
    "Item",
    "_items",
    "_bytes",
    "_flush_at",
    "_lookup",
    "_link",
    "_unlink",
    "_unlink_key",
    "_replace_value",
    "_evict",
    "_expire",
    "_set_expiry",
}


def test_nothing_outside_the_engine_touches_items_or_the_lru_order() -> None:
    offenders = []
    for path in sorted(BACKEND.rglob("*.py")):
        if path == BACKEND / "store.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr in ENGINE_INTERNALS:
                offenders.append(f"{path.relative_to(BACKEND)}:{node.lineno} .{node.attr}")
            elif isinstance(node, ast.ImportFrom) and node.module == "backend.store":
                names = {alias.name for alias in node.names} & ENGINE_INTERNALS
                offenders += [
                    f"{path.relative_to(BACKEND)}:{node.lineno} imports {n}" for n in sorted(names)
                ]
    assert offenders == []


def test_usage_follows_stores_deletes_and_flushes() -> None:
    engine = LruEngine("c", 10 * 1024 * 1024)
    assert engine.usage().items == 0
    assert engine.store(Mode.SET, b"a", b"12345", 0, 0)[0] is Outcome.STORED
    assert engine.store(Mode.SET, b"b", b"x", 0, 0)[0] is Outcome.STORED
    usage = engine.usage()
    assert usage.items == 2 and usage.bytes > 6 and usage.limit == 10 * 1024 * 1024
    assert [entry.key for entry in engine.dump()] == [b"b", b"a"]  # most recently used first
    assert engine.delete(b"a") is Outcome.DELETED
    assert engine.usage().items == 1
    engine.flush()
    assert engine.usage() == (0, 10 * 1024 * 1024, 0)


def test_a_get_returns_a_view_and_counts_itself() -> None:
    engine = LruEngine("c", 10 * 1024 * 1024)
    engine.store(Mode.SET, b"k", b"v", 7, 0)
    item = engine.get(b"k")
    assert item is not None and (item.value, item.flags) == (b"v", 7)
    assert engine.get(b"missing") is None
    stats = engine.stats
    assert (stats.cmd_get, stats.get_hits, stats.get_misses, stats.cmd_set) == (2, 1, 1, 1)
