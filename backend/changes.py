"""Which caches' figures moved since the analytics sampler last looked (issue 15).

Analytics samples every cache once a second, but at 10 000 caches almost all of them are
idle, and visiting each to find that out was most of the backend's idle CPU and held the
GIL from the serving loop for ~20 ms a second. Instead, whatever changes an engine's
sampled figures (a connection's read, a connection opened or closed, a flush or a move
from the control plane) *notes* the engine here, and the sampler visits only the engines
noted since its last tick (``backend.analytics``).

Threads: ``note`` runs on the serving loop (or any thread), every reader's ``take`` on
the control thread, with no lock:

* ``note`` appends an engine to every reader's queue the first time it is noted in an
  epoch (``engine.noted`` remembers the epoch it was last queued in), so a queue holds
  each busy engine about once per take, however many reads it served;
* ``take`` first empties its queue with ``popleft``, then moves the shared ``epoch`` on
  (each atomic under the GIL); the caller reads the engines it got after that. Another
  reader's take moving the epoch only makes notes append more often.

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

import threading
import weakref
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from backend.engine import Engine

# A reader's queue holds at most this many engines; past it (a reader that stopped
# taking, while another moves the epoch on) it is emptied and its next ``take`` says
# "look at everything", which at that size costs no more than the queue would.
MAX_QUEUED = 100_000


class ChangeReader:
    """One reader's queue of the engines noted since its last ``take``."""

    __slots__ = ("_changes", "_queue", "overflows", "_overflows_seen", "__weakref__")

    def __init__(self, changes: Changes) -> None:
        self._changes = changes
        self._queue: deque[Engine] = deque()
        self.overflows = 0  # written by noters only
        self._overflows_seen = 0  # written by the reader only

    def push(self, engine: Engine) -> None:
        """Queue ``engine`` (``Changes`` does, for its noters)."""
        queue = self._queue
        queue.append(engine)
        if len(queue) > MAX_QUEUED:
            self.overflows += 1  # before emptying: ``take`` then says to look at everything
            queue.clear()

    def take(self) -> list[Engine] | None:
        """The engines noted since the last call, in the order noted, a few perhaps twice;
        None when the queue overflowed meanwhile (``MAX_QUEUED``): look at every engine.
        On the reader's thread."""
        queue, taken = self._queue, []
        while True:
            try:
                taken.append(queue.popleft())
            except IndexError:
                break
        self._changes.epoch += 1  # after: see the module's docstring
        overflows = self.overflows
        if overflows != self._overflows_seen:
            self._overflows_seen = overflows
            return None
        return taken


class Changes:
    """Engines whose figures moved, fed by the serving loop, read by each ``reader``
    (the analytics sampler, the ``/metrics`` exposition)."""

    __slots__ = ("epoch", "_readers", "_lock", "__weakref__")

    def __init__(self) -> None:
        self.epoch = 0
        # Weak: a reader dropped (a test's sampler) stops being fed. Replaced whole, never
        # changed in place, as ``note`` may be iterating it on another thread; the lock
        # only orders the replacements (a reader made while another's goes).
        self._readers: list[weakref.ref[ChangeReader]] = []
        self._lock = threading.Lock()

    def reader(self) -> ChangeReader:
        """A new reader: it is told of what is noted from now on (it starts by looking at
        every engine). Every reader takes on one thread, the control thread: ``take``
        moves the shared epoch on with a plain ``+=``."""
        reader = ChangeReader(self)
        me = weakref.ref(self)

        def gone(_: weakref.ref[ChangeReader]) -> None:
            changes = me()
            if changes is not None:
                with changes._lock:
                    changes._readers = [r for r in changes._readers if r() is not None]

        with self._lock:
            self._readers = [*self._readers, weakref.ref(reader, gone)]
        return reader

    def note(self, engine: Engine) -> None:
        """``engine``'s figures moved (after the change; the serving loop)."""
        epoch = self.epoch
        if engine.noted != epoch:
            engine.noted = epoch
            for ref in self._readers:
                reader = ref()
                if reader is not None:
                    reader.push(engine)

    def tell_others(self, engine: Engine, reader: ChangeReader) -> None:
        """Queue ``engine`` for every reader but ``reader``: what a reader changed itself
        (analytics taking a cache's latency window moves the histogram ``/metrics``
        shows). Once per engine per tick at most, so not deduplicated."""
        for ref in self._readers:
            other = ref()
            if other is not None and other is not reader:
                other.push(engine)
