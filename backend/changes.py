"""Which caches' figures moved since the analytics sampler last looked (issue 15).

Analytics samples every cache once a second, but at 10 000 caches almost all of them are
idle, and visiting each to find that out was most of the backend's idle CPU and held the
GIL from the serving loop for ~20 ms a second. Instead, whatever changes an engine's
sampled figures (a connection's read, a connection opened or closed, a flush or a move
from the control plane) *notes* the engine here, and the sampler visits only the engines
noted since its last tick (``backend.analytics``).

Threads: ``note`` runs on the serving loop, ``take`` on the control thread, with no lock:

* ``take`` first moves ``epoch`` on (one store), then empties the queue with
  ``popleft`` (each atomic under the GIL);
* ``note`` appends an engine the first time it is noted in an epoch (``engine.noted``
  remembers the epoch it was last queued in), so the queue holds each busy engine about
  once per tick, however many reads it served.

Nothing noted is lost: an engine queued after ``take`` emptied the queue stays queued for
the next ``take``, and an engine whose mark is the current epoch was queued after that
epoch began, so it is still in the queue or was taken after its change. An engine may be
taken twice in a row (it was queued while ``take`` ran); callers treat a visit to an
unchanged engine as harmless.

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
        """``engine``'s figures moved (serving loop)."""
        epoch = self.epoch
        if engine.noted != epoch:
            engine.noted = epoch
            self._queue.append(engine)

    def take(self) -> list[Engine]:
        """The engines noted since the last call, in the order noted, a few perhaps twice
        (control thread)."""
        self.epoch += 1
        queue, taken = self._queue, []
        while True:
            try:
                taken.append(queue.popleft())
            except IndexError:
                return taken
