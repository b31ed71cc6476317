"""Which caches' figures moved since the analytics sampler last looked (issue 15).

Analytics samples every cache once a second, but at 10 000 caches almost all of them are
idle, and visiting each to find that out was most of the backend's idle CPU and held the
GIL from the serving loop for ~20 ms a second. Instead, whatever changes an engine's
sampled figures (a connection's read, a connection opened or closed, a flush or a move
from the control plane) *notes* the engine here, and the sampler visits only the engines
noted since its last tick (``backend.analytics``).

Threads: ``note`` runs on the serving loop (or any thread), ``take`` on the control
thread, with no lock:

* ``note`` appends an engine the first time it is noted in an epoch (``engine.noted``
  remembers the epoch it was last queued in), so the queue holds each busy engine about
  once per tick, however many reads it served;
* ``take`` first empties the queue with ``popleft``, then moves ``epoch`` on (each
  atomic under the GIL); the caller reads the engines it got after that.

Nothing noted is lost, in this order: a note that queues its engine has it taken by the
next ``take`` whose emptying comes after it. A note that finds its engine queued in the
current epoch already (no append) comes before the bump that ends that epoch, and so
before the caller of that epoch's ``take`` reads the engine, which that ``take`` either
returned or left queued. (Bumping first would lose a change: an engine queued just after
the bump, taken by the same ``take`` and read, then changed again in the same epoch, would
not be queued again.) An engine may be taken twice in a row; callers treat a visit to an
unchanged engine as harmless. ``tests/backend/test_changes.py`` plays both orders.

The hot path pays two attribute reads and one comparison per read
(``MemcacheProtocol.data_received`` inlines ``note``'s test).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from backend.engine import Engine


class Changes:
    """A queue of engines whose figures moved, fed by the serving loop, emptied by the
    analytics sampler."""

    __slots__ = ("epoch", "_queue")

    def __init__(self) -> None:
        self.epoch = 0
        self._queue: deque[Engine] = deque()

    def note(self, engine: Engine) -> None:
        """``engine``'s figures moved (after the change: the serving loop)."""
        epoch = self.epoch
        if engine.noted != epoch:
            engine.noted = epoch
            self._queue.append(engine)

    def take(self) -> list[Engine]:
        """The engines noted since the last call, in the order noted, a few perhaps twice
        (control thread)."""
        queue, taken = self._queue, []
        while True:
            try:
                taken.append(queue.popleft())
            except IndexError:
                break
        self.epoch += 1  # after: see the module's docstring
        return taken
