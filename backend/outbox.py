"""Per-destination outboxes: a bounded queue and one worker task per URL, retried POSTs.

Log drains (``backend.control.drains``) and alert webhooks (``backend.webhooks``) both send
to URLs their tenants chose, from the control thread's loop (``backend.loops``), and neither
may block it or let one slow receiver cost another. This module holds what they share, so it
is written (and fixed) once: the per-URL queue that drops its oldest item when full (counted),
the worker that is started on demand and woken by an event, the graceful ``stop`` that lets
workers flush for ``STOP_GRACE_S`` before cancelling them (what is left counts as dropped),
the retry loop with capped exponential backoff, one bounded POST through the egress-guarded
client, and logging a destination going bad or recovering once rather than per attempt.

What is sent, how it is framed, and how a destination is named in logs stay with the
subclass: ``_deliver_next`` takes the next piece of the queue and sends it with ``_send``.
Logs never name a destination by its URL (which can carry tokens), only by ``_name``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar
from urllib.parse import urlsplit

import httpx

from backend.egress import EgressPolicy, guarded_client

STOP_GRACE_S = 2.0  # how long stop() lets the workers flush before cancelling them
MAX_BACKOFF_S = 30.0

T = TypeVar("T")


def describe(url: str) -> str:
    """How logs name a destination: scheme, host and port, never the path, query or password."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return "<invalid url>"


@dataclass(eq=False)
class Destination(Generic[T]):
    """Queue, counters and worker of one destination URL."""

    url: str
    queue: deque[T]
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    delivered: int = 0
    dropped: int = 0
    failed_attempts: int = 0
    in_flight: int = 0  # items taken off the queue and being sent; dropped if cancelled
    failing: bool = False  # only state changes are logged, not every failed attempt

    def stats(self) -> dict[str, int]:
        return {
            "delivered": self.delivered,
            "dropped": self.dropped,
            "failed_attempts": self.failed_attempts,
            "queued": len(self.queue),
        }


D = TypeVar("D", bound=Destination[Any])


class Outbox(Generic[D]):
    """The shared machinery; subclasses set ``_log``, ``_kind`` and ``_unit`` (for the
    "<kind> <name>: <unit> dropped after N attempts" log line), ``_task_name`` (the
    workers' asyncio task name) and implement
    ``_deliver_next`` (and ``_name`` if the URL's scheme, host and port are not enough)."""

    _log: ClassVar[logging.Logger]
    _kind: ClassVar[str]  # e.g. "log drain"
    _unit: ClassVar[str]  # e.g. "batch"
    _task_name: ClassVar[str]

    def __init__(
        self,
        *,
        client: httpx.AsyncClient | None,
        egress: EgressPolicy | None,
        queue_max: int,
        retries: int,
        backoff_s: float,
        timeout_s: float,
    ) -> None:
        self._client = client
        self._own_client = client is None
        self._egress = egress or EgressPolicy()  # a client of the caller's own is its affair
        self._queue_max = queue_max
        self._retries = retries
        self._backoff_s = backoff_s
        self._timeout_s = timeout_s
        self._dests: dict[str, D] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = False
        self._closing = False

    # -- the caller's side --------------------------------------------------------------
    def _enqueue(self, dest: D, item: Any) -> None:
        """Append ``item``; a full queue drops its oldest item (counted), since the newest
        are the ones an operator looks at."""
        if len(dest.queue) == self._queue_max:
            dest.dropped += 1
        dest.queue.append(item)

    def _notify(self, dest: D) -> None:
        """Wake (or start) the destination's worker, from the loop's thread or any other."""
        try:
            in_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            in_loop = False
        if in_loop:
            self._wake(dest)
        elif self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake, dest)

    def _wake(self, dest: D) -> None:
        if not self._running:
            return
        if dest.task is None or dest.task.done():
            if self._closing:  # stop() waits for no new worker: the item waits for start()
                return
            dest.task = asyncio.get_running_loop().create_task(
                self._run(dest), name=self._task_name
            )
        dest.wake.set()

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Start delivering: workers start for destinations with queued items, others on
        submit."""
        if self._running:
            return
        self._loop = asyncio.get_running_loop()
        if self._client is None:
            self._client = guarded_client(self._egress, self._timeout_s)
        self._running = True
        self._closing = False
        for dest in self._dests.values():
            dest.wake = asyncio.Event()  # an Event must not outlive the loop it waited in
            if dest.queue:
                self._wake(dest)

    async def stop(self) -> None:
        """Flush for up to ~2 s, then cancel; what is still undelivered counts as dropped."""
        if not self._running:
            return
        self._closing = True
        tasks = [d.task for d in self._dests.values() if d.task is not None and not d.task.done()]
        for dest in self._dests.values():
            dest.wake.set()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=STOP_GRACE_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._running = False
        for dest in self._dests.values():
            dest.task = None
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- delivery -----------------------------------------------------------------------
    async def _run(self, dest: D) -> None:
        try:
            while True:
                if not dest.queue:
                    if self._closing:
                        return
                    dest.wake.clear()
                    await dest.wake.wait()
                    continue
                await self._deliver_next(dest)
        except asyncio.CancelledError:
            dest.dropped += dest.in_flight + len(dest.queue)
            dest.in_flight = 0
            dest.queue.clear()
            raise

    async def _deliver_next(self, dest: D) -> None:
        """Send the next piece of a non-empty queue (with ``_send``); must make progress."""
        raise NotImplementedError

    async def _send(self, dest: D, count: int, attempt: Callable[[], Awaitable[bool]]) -> None:
        """Run ``attempt`` until it succeeds, retrying with exponential backoff; give up
        (``count`` items dropped) after ``retries`` retries so a dead destination cannot
        hold its newer items back forever."""
        for n in range(self._retries + 1):
            if n:
                await asyncio.sleep(min(self._backoff_s * 2 ** (n - 1), MAX_BACKOFF_S))
            if await attempt():
                dest.delivered += count
                self._set_failing(dest, False)
                return
            dest.failed_attempts += 1
        dest.dropped += count
        self._set_failing(dest, True)

    async def _post(self, url: str, headers: dict[str, str], **body: Any) -> bool:
        """One attempt: True on a 2xx answer within the timeout, False on anything else.

        ``body`` is httpx's ``content=`` or ``json=``. The overall ``wait_for`` bounds what
        httpx's per-phase timeouts do not (a receiver trickling its answer)."""
        assert self._client is not None
        try:
            response = await asyncio.wait_for(
                self._client.post(url, headers=headers, timeout=self._timeout_s, **body),
                self._timeout_s,
            )
        except Exception:  # connection errors, egress refusals, timeouts: all mean "retry"
            return False
        return 200 <= response.status_code < 300

    def _name(self, dest: D) -> str:
        return describe(dest.url)

    def _set_failing(self, dest: D, failing: bool) -> None:
        """Log a destination going bad or recovering once, not once per attempt."""
        if failing == dest.failing:
            return
        dest.failing = failing
        if failing:
            self._log.warning(
                "%s %s: %s dropped after %d attempts",
                self._kind,
                self._name(dest),
                self._unit,
                self._retries + 1,
            )
        else:
            self._log.info("%s %s: delivering again", self._kind, self._name(dest))
