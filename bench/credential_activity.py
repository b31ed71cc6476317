#!/usr/bin/env python3
"""What per-credential activity costs the hot path (issue 16 item 1).

Two measurements, each against a tree without the counting (``--before``: its
``backend/protocol/commands.py``, loaded beside this tree's in the same process):

* the engine calls alone: ``commands.get`` / ``commands.store`` through a real session;
* a command as the ASCII codec runs it: ``AsciiCodec.feed`` of a ``get`` / ``set`` line
  through a real authenticated session (the codec's ``commands`` swapped between the two
  modules), i.e. everything of a command but the socket and the event loop.

Blocks of each alternate, timed in CPU time of this thread (``time.thread_time_ns``), so
the other work of a shared machine, which preempts us, is not counted, and drift hits both.

    git archive <base> | tar -x -C /tmp/base
    python bench/credential_activity.py --before /tmp/base --blocks 200

Each block runs ``--ops`` commands: 90 % gets (half of them hits), 10 % sets.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from one_cache import LOGIN, one_cache_dataplane  # noqa: E402

from backend.activity import CredentialActivity  # noqa: E402
from backend.control.models import Credential  # noqa: E402
from backend.engine import Mode  # noqa: E402
from backend.protocol import ascii as ascii_codec  # noqa: E402
from backend.protocol import commands as after  # noqa: E402
from backend.session import AuthenticatedSession, Session  # noqa: E402
from backend.store import LruEngine  # noqa: E402
from backend.topology import default_topology  # noqa: E402


def load_before(tree: Path) -> ModuleType:
    path = tree / "backend" / "protocol" / "commands.py"
    spec = importlib.util.spec_from_file_location("commands_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert "session.activity" not in path.read_text(), f"{path} counts activity already"
    return module


def block(commands: ModuleType, session: AuthenticatedSession, keys: list[bytes], ops: int) -> int:
    value = b"x" * 100
    distinct = len(keys)
    get, store, mode = commands.get, commands.store, Mode.SET
    started = time.thread_time_ns()
    for i in range(ops):
        key = keys[(i * 7919) % distinct]
        if i % 10 == 0:
            store(session, mode, key, value, 0, 0)
        else:
            get(session, key)
    return time.thread_time_ns() - started


def ascii_session() -> ascii_codec.AsciiCodec:
    """An ASCII codec logged in to a cache of a real data plane (no socket, no loop)."""
    dataplane, cluster = one_cache_dataplane()
    codec = ascii_codec.AsciiCodec(Session(dataplane, "127.0.0.1", cluster.region, lambda: None))
    assert codec.feed(LOGIN) == b"STORED\r\n"
    return codec


def codec_block(commands: ModuleType, codec: ascii_codec.AsciiCodec, lines: list[bytes]) -> int:
    ascii_codec.commands = commands  # type: ignore[attr-defined]
    feed = codec.feed
    started = time.thread_time_ns()
    for line in lines:
        feed(line)
    return time.thread_time_ns() - started


def report(title: str, timings: dict[str, list[float]], blocks: int, ops: int) -> None:
    b, a = timings["before"], timings["after"]
    print(f"| {title} | best ns | median ns | ({blocks} blocks of {ops}) |")
    print("|---|---|---|---|")
    print(f"| before (no counting) | {min(b):.0f} | {statistics.median(b):.0f} | |")
    print(f"| after (counting) | {min(a):.0f} | {statistics.median(a):.0f} | |")
    print(
        f"\nafter / before: best {min(a) / min(b) - 1:+.1%}, "
        f"median {statistics.median(a) / statistics.median(b) - 1:+.1%}, "
        f"total {sum(a) / sum(b) - 1:+.1%}\n"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--before", type=Path, required=True, help="a tree without the counting")
    p.add_argument("--ops", type=int, default=20_000, help="commands per block")
    p.add_argument("--blocks", type=int, default=200, help="blocks of each, alternating")
    p.add_argument("--distinct", type=int, default=10_000)
    args = p.parse_args()
    before = load_before(args.before)
    proxy = default_topology().proxies()[0]
    engine = LruEngine("c0", 64 << 20)
    record = CredentialActivity(time.monotonic())
    session = AuthenticatedSession(
        Credential("u", b"p", "c0"),
        engine,
        proxy,
        "127.0.0.1",
        None,  # type: ignore[arg-type]  # the data plane is not reached by get/store
        record,
    )
    keys = [f"user:{i}".encode() for i in range(args.distinct)]
    for key in keys[: args.distinct // 2]:
        after.store(session, Mode.SET, key, b"x" * 100, 0, 0)
    timings: dict[str, list[float]] = {"before": [], "after": []}
    gc.disable()
    for i in range(args.blocks):
        order = [("before", before), ("after", after)]
        for name, module in order if i % 2 == 0 else reversed(order):
            timings[name].append(block(module, session, keys, args.ops) / args.ops)
    assert record.commands > 0  # the counting ran
    report("commands.get/store", timings, args.blocks, args.ops)

    codec = ascii_session()
    lines = []
    for i in range(args.ops):
        key = keys[(i * 7919) % args.distinct]
        lines.append(
            b"set %b 0 0 100\r\n%b\r\n" % (key, b"x" * 100) if i % 10 == 0 else b"get %b\r\n" % key
        )
    for line in lines[:2000]:
        codec.feed(line)
    timings = {"before": [], "after": []}
    for i in range(args.blocks):
        order = [("before", before), ("after", after)]
        for name, module in order if i % 2 == 0 else reversed(order):
            timings[name].append(codec_block(module, codec, lines) / args.ops)
    ascii_codec.commands = after  # type: ignore[attr-defined]
    gc.enable()
    assert codec.auth.activity.commands > 0
    report("AsciiCodec.feed (get / set)", timings, args.blocks, args.ops)


if __name__ == "__main__":
    main()
