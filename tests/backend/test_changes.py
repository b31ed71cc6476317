"""``backend.changes``: engines noted on one thread, taken on another, none lost."""

from __future__ import annotations

import sys
import threading
from collections import deque

import pytest

from backend import changes as changes_module
from backend.changes import Changes


class FakeEngine:
    """What ``Changes`` touches of an engine, plus a figure that moves."""

    def __init__(self, name: str) -> None:
        self.cache_id = name
        self.noted = -1
        self.figure = 0


def test_an_engine_is_taken_once_per_epoch_however_often_noted() -> None:
    changes = Changes()
    reader = changes.reader()
    a, b = FakeEngine("a"), FakeEngine("b")
    for _ in range(5):
        changes.note(a)
    changes.note(b)
    assert reader.take() == [a, b]
    assert reader.take() == []
    changes.note(b)
    changes.note(a)
    changes.note(b)
    assert reader.take() == [b, a]


def test_every_reader_is_told_and_a_dropped_one_no_more() -> None:
    changes = Changes()
    first, second = changes.reader(), changes.reader()
    a, b = FakeEngine("a"), FakeEngine("b")
    changes.note(a)
    assert first.take() == [a]
    changes.note(a)  # first's take moved the epoch on: queued again, for both
    changes.note(b)
    assert second.take() == [a, a, b]
    assert first.take() == [a, b]
    changes.tell_others(b, first)  # what ``first`` changed itself
    assert (first.take(), second.take()) == ([], [b])
    del second
    assert len(changes._readers) == 1  # its weak reference went with it


def test_a_reader_that_stops_taking_is_told_to_look_at_everything(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Its queue is bounded: past ``MAX_QUEUED`` it is emptied, and its next take says
    so (None) instead of a partial list."""
    monkeypatch.setattr(changes_module, "MAX_QUEUED", 10)
    changes = Changes()
    busy, idle = changes.reader(), changes.reader()
    engines = [FakeEngine(f"c{i}") for i in range(4)]
    for _ in range(5):
        for engine in engines:
            changes.note(engine)
        busy.take()  # moves the epoch on: every note queues again
    assert len(idle._queue) <= 10
    assert idle.take() is None
    changes.note(engines[0])
    assert idle.take() == [engines[0]]


class Interleaved(deque):  # type: ignore[type-arg]
    """The queue, with the serving thread's work run at the worst moments of a ``take``:
    after each ``popleft`` (while it empties the queue)."""

    def __init__(self, between: list) -> None:  # type: ignore[type-arg]
        super().__init__()
        self.between = between

    def popleft(self):  # type: ignore[no-untyped-def]
        try:
            return super().popleft()
        finally:
            if self.between:
                self.between.pop(0)()


def test_a_change_noted_while_a_take_empties_the_queue_is_taken_later() -> None:
    """e is noted during a take (taken by it), read, then changed and noted again in the
    same epoch: the next take must return it. Bumping the epoch before emptying the queue
    fails this (the second note would find e queued in the current epoch)."""
    changes = Changes()
    e, other = FakeEngine("e"), FakeEngine("other")

    def change() -> None:
        e.figure += 1
        changes.note(e)

    reader = changes.reader()
    reader._queue = Interleaved([change])
    changes.note(other)
    first = reader.take()  # other popped, then e changed and noted: popped too
    assert first is not None
    read = {engine.cache_id: engine.figure for engine in first}
    change()  # after the caller read it
    second = reader.take()
    assert second is not None
    for engine in second:
        read[engine.cache_id] = engine.figure
    assert read["e"] == e.figure == 2


@pytest.mark.parametrize("round_", range(5))
def test_nothing_noted_is_lost_between_threads(round_: int) -> None:
    """A noter thread changes engines and notes them, as the serving loop does; a taker
    thread takes and reads each figure, as the sampler does. After both stop and one more
    take, every engine's last change was read after it was made: a note made while a take
    ran is taken by the next one."""
    engines = [FakeEngine(f"c{i}") for i in range(50)]
    changes = Changes()
    reader = changes.reader()
    seen: dict[str, int] = {}
    done = threading.Event()

    def noter() -> None:
        for i in range(200_000):
            engine = engines[(i * 7) % len(engines)]
            engine.figure += 1
            changes.note(engine)
        done.set()

    def taker() -> None:
        while not done.is_set():
            for engine in reader.take() or ():
                seen[engine.cache_id] = engine.figure

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads interleave as finely as CPython allows
    try:
        threads = [threading.Thread(target=noter), threading.Thread(target=taker)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    for engine in reader.take() or ():
        seen[engine.cache_id] = engine.figure
    assert seen == {e.cache_id: e.figure for e in engines}
    assert reader.take() == []
