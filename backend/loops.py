"""A second thread with its own asyncio loop, for everything that must not hold the loop
that serves memcache traffic.

The data plane (proxies, region endpoints, sessions, stores) runs on the *serving loop*:
the main loop of ``cachier-backend``, Textual's loop in the in-process dashboard. The
control plane, the HTTP API, the monitor, analytics sampling, log drains and the demo's
incident timeline run on a ``ControlThread``. A slow request (listing 10 000 caches, a
``/metrics`` scrape, a database round trip) then waits on its own loop; the serving loop
only competes with it for the GIL, which CPython hands over every switch interval
(``sys.getswitchinterval``) instead of after the request.

Two rules cross the threads, and nothing else is shared mutable:

* control -> data: events the data plane subscribes to are delivered on the serving loop
  (``EventBus.subscribe(..., loop=)``, ``call_soon_threadsafe``, in publication order);
* data -> control: what the data plane reports (a client's flush to log) is handed to the
  control loop with ``call_soon_threadsafe``; it never writes the database itself.

Reads the control side makes of data-plane figures are plain reads of ints and dict
lookups, or atomic copies (``dict.copy()``, ``list(d.values())``: one C call, no bytecode
boundary, so no other thread runs in between) of a structure the serving loop mutates;
see ``DataPlane``'s docstring.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
STOP_TIMEOUT_S = 10.0
# While the control thread runs Python, a memcache request that arrives waits for the GIL
# up to the switch interval (then CPython makes the running thread drop it). CPython's
# default, 5 ms, became the serving loop's p99 under a busy API (bench/loop_stall.py,
# 10 000 caches: p99 10.2 ms at 5 ms, 3.5 ms at 1 ms, 4.1 ms at 0.5 ms on a shared 2-core
# VM). It only costs anything while two threads want the GIL.
SWITCH_INTERVAL_S = 0.001


class ControlThread:
    """An asyncio loop in a daemon thread: start it, run coroutines on it, stop it.

    ``start`` returns once the loop runs (or raises what prevented it); ``run`` and
    ``call`` are awaited from another loop and return the result or raise the exception
    of the work done here, so start-up errors reach the caller as they did in one loop.
    ``stop`` cancels whatever tasks are left, closes the loop and joins the thread.
    """

    def __init__(self, name: str = "cachier-control") -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the control thread is not running")
        return self._loop

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def in_thread(self) -> bool:
        """True when called from the control loop's own thread."""
        return self._thread is not None and threading.get_ident() == self._thread.ident

    def start(self) -> None:
        """Start the thread and its loop; blocks (for about a millisecond) until it runs.

        The loop comes from the current event loop policy, so with uvloop installed (the
        CLI does) the control loop is a uvloop too. The interpreter's switch interval is
        lowered to ``SWITCH_INTERVAL_S`` while it runs (restored by ``stop``).
        """
        if self.running:
            raise RuntimeError("the control thread is already running")
        _lower_switch_interval()
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._main, args=(ready,), name=self.name, daemon=True
        )
        self._thread.start()
        try:
            ready.result()  # re-raises what stopped the loop from starting
        except BaseException:
            self._thread = None
            _restore_switch_interval()
            raise

    def _main(self, ready: concurrent.futures.Future[None]) -> None:
        try:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
        except BaseException as exc:  # reported to start()'s caller
            ready.set_exception(exc)
            return
        self._loop = loop

        async def serve() -> None:
            self._stopped = asyncio.Event()
            ready.set_result(None)
            await self._stopped.wait()
            await _cancel_all(loop)

        try:
            loop.run_until_complete(serve())
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the control loop from any thread."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` run on the control loop, from another loop (or this one)."""
        if self.in_thread():
            return await coro
        return await asyncio.wrap_future(self.submit(coro))

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Await a plain function run on the control loop (control-plane operations are
        synchronous: they must run where the repository and the records live)."""

        async def call() -> T:
            return fn(*args)

        return await self.run(call())

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Hand ``fn(*args)`` to the control loop without waiting (data -> control)."""
        self.loop.call_soon_threadsafe(fn, *args)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Cancel remaining tasks, close the loop, join the thread. Idempotent; call it
        from another thread than the control loop's."""
        thread, loop = self._thread, self._loop
        if thread is None:
            return
        if loop is not None and self._stopped is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed meanwhile
                loop.call_soon_threadsafe(self._stopped.set)
        thread.join(timeout_s)
        if thread.is_alive():
            log.warning("control thread did not stop within %.0f s", timeout_s)
        self._thread = self._loop = self._stopped = None
        _restore_switch_interval()


_switch_lock = threading.Lock()
_switch_users = 0
_switch_previous = 0.0


def _lower_switch_interval() -> None:
    """Counted, so the interval comes back only when the last control thread stops."""
    global _switch_users, _switch_previous
    with _switch_lock:
        if _switch_users == 0:
            _switch_previous = sys.getswitchinterval()
            sys.setswitchinterval(min(_switch_previous, SWITCH_INTERVAL_S))
        _switch_users += 1


def _restore_switch_interval() -> None:
    global _switch_users
    with _switch_lock:
        _switch_users -= 1
        if _switch_users == 0:
            sys.setswitchinterval(_switch_previous)


async def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel and await every other task of the loop, bounded so a stop never hangs."""
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks(loop) if t is not current]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=5)
