"""The data plane notes an engine *after* changing it (``backend.changes``): a reader whose
take lands right after a note (the control thread given the GIL there) must find the
change made. Each test runs the readers' work inside ``note``, the worst moment, through
a ``Changes`` that calls back after each note, and checks what analytics and ``/metrics``
then say against what a fresh reader that looks at every cache says."""

from __future__ import annotations

import asyncio
import contextlib
import time
import types
from collections.abc import Callable

from backend.analytics import Analytics
from backend.changes import Changes
from backend.control.models import Credential
from backend.engine import Engine
from backend.events import CacheCreated, CacheMoved
from backend.listeners import MemcacheProtocol
from backend.metrics import Exposition
from tests.backend.planes import dataplane


class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t


class Interrupting(Changes):
    """Runs ``then`` right after the next note (once)."""

    __slots__ = ("then",)

    def __init__(self) -> None:
        super().__init__()
        self.then: Callable[[], object] | None = None

    def note(self, engine: Engine) -> None:
        super().note(engine)
        then, self.then = self.then, None
        if then is not None:
            then()


class StandIn:
    """A transport that keeps what is written."""

    def __init__(self, written: list[bytes]) -> None:
        self.write = written.append

    def get_extra_info(self, key: str) -> object:
        return ("127.0.0.1", 1) if key == "peername" else None

    def set_write_buffer_limits(self, high: int) -> None:
        pass

    def close(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False


def no_monitor() -> types.SimpleNamespace:
    return types.SimpleNamespace(health={}, clusters={})


def test_a_created_cache_and_a_moved_one_are_seen_by_a_take_right_after_their_note() -> None:
    plane = dataplane(2)
    changes = plane.changes = Interrupting()
    clock = Clock()
    analytics = Analytics(plane, 1.0, clock=clock)
    exposition = Exposition(plane, no_monitor())  # type: ignore[arg-type]

    def readers() -> None:
        clock.t += 1
        analytics.sample()
        exposition()

    readers()
    changes.then = readers
    cluster = plane.caches["c0"].cluster
    plane._cache_created(CacheCreated("new", "newname", "100mb", "local", cluster))
    for _ in range(3):
        readers()
    assert len(analytics.series("new")["samples"]) == 4  # from the tick after the note
    assert b'cache="newname"' in exposition()

    moved = plane.caches["c1"]
    changes.then = readers
    plane._cache_moved(CacheMoved("c1", moved.cluster, "elsewhere", "p"))  # not served here
    readers()
    assert b'cache="n1"' not in exposition()
    before = len(analytics.series("c1")["samples"])
    for _ in range(3):
        readers()
    assert len(analytics.series("c1")["samples"]) == before  # gone: no more rows


def test_commands_in_the_read_that_logs_in_are_seen() -> None:
    """The read that authenticates also carries a set: ``attach`` notes the engine in the
    middle of it, a scrape lands there, and the set counted after must still show."""

    async def scenario() -> tuple[bytes, bytes]:
        plane = dataplane(1)
        changes = plane.changes = Interrupting()
        cache = plane.caches["c0"]
        credential = Credential("u0", b"secret", "c0", True, True, True)
        plane.credentials["u0"] = credential
        cache.credentials.append(credential)
        exposition = Exposition(plane, no_monitor())  # type: ignore[arg-type]
        exposition()
        written: list[bytes] = []
        transport = StandIn(written)
        protocol = MemcacheProtocol(plane, "local", 5.0)
        protocol.connection_made(transport)  # type: ignore[arg-type]
        changes.then = exposition
        protocol.data_received(b"set u0 0 0 6\r\nsecret\r\nset k 0 0 5\r\nhello\r\n")
        return b"".join(written), exposition()

    replies, body = asyncio.run(scenario())
    assert replies == b"STORED\r\nSTORED\r\n"
    assert b'cachier_cache_cmd_set_total{cache="n0"} 1\n' in body
    assert b'cachier_cache_items{cache="n0"} 1\n' in body


def test_safety_nets_find_what_nobody_noted(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A change nobody noted (a bug's, or a test's behind the data plane's back) is found
    anyway: analytics looks for caches without a track once a round, ``/metrics`` reads
    every cache every ``FULL_SCAN_EVERY_S``; and a failed tick or scrape makes the next
    one read every cache, as the engines it had taken were not read."""
    from backend import metrics  # noqa: PLC0415

    plane = dataplane(1)
    clock = Clock()
    analytics = Analytics(plane, 60.0, clock=clock)  # a round is 10 ticks
    exposition = Exposition(plane, no_monitor())  # type: ignore[arg-type]
    analytics.sample()
    exposition()
    engine = plane.engine_of("c0")
    assert engine is not None
    engine.stats.cmd_set += 5  # not noted (its bytes counted, as every command's are)
    engine.stats.bytes_read += 100
    extra = dataplane(2)  # c1, with its engine, put in without CacheCreated (not noted)
    plane.caches["c1"] = extra.caches["c1"]
    plane.stores[extra.caches["c1"].cluster].engines["c1"] = extra.engine_of("c1")  # type: ignore[assignment]
    assert b'cache="n0"} 0\n' in exposition()  # not read: the next full scan is far
    later = time.monotonic() + metrics.FULL_SCAN_EVERY_S
    monkeypatch.setattr(metrics.time, "monotonic", lambda: later)
    assert b'cachier_cache_cmd_set_total{cache="n0"} 5\n' in exposition()
    for _ in range(11):
        clock.t += 60
        analytics.sample()
    assert analytics.series("c1")["samples"]  # found within a round
    assert analytics.series("c0")["samples"][-1]["cmd_set"] == 5  # its turn came too

    def broken(*args: object) -> list[int]:
        raise RuntimeError("a bug")

    real = analytics._sample
    analytics._sample = broken  # type: ignore[method-assign,assignment]
    clock.t += 60
    with contextlib.suppress(RuntimeError):
        analytics.sample()
    analytics._sample = real  # type: ignore[method-assign]
    engine.stats.cmd_set += 1  # not noted: only a visit of every cache finds it now
    engine.stats.bytes_read += 20
    clock.t += 60
    analytics.sample()
    assert analytics.series("c0")["samples"][-1]["cmd_set"] == 6
