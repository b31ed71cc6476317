"""Delivery of alert notifications to the owners' webhooks: JSON POSTs, retried with backoff.

Runs on the control thread's loop (``backend.loops``), beside the API and the alert
evaluator, and never blocks either: ``submit`` appends to a bounded per-URL queue and returns;
one worker task per URL POSTs its queue in order, one notification at a time, retrying a
failed POST (an error, a non-2xx answer or no answer within the timeout) with exponential
backoff, and giving up on it after ``retries`` retries (counted) so a dead receiver cannot
hold newer notifications back forever. A full queue drops its oldest notification (counted).
A slow or dead webhook therefore costs its own queue only, never the data plane, the API or
another cache's webhook.

Connections go through the same SSRF guard as log drains (``backend.egress``: loopback and
private addresses only with ``--allow-internal-drains``; redirects not followed).

A webhook URL can carry tokens (path, query, user:password): it is never logged; logs name
a webhook by scheme, host and port only.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from backend.egress import EgressPolicy, guarded_client

log = logging.getLogger(__name__)

USER_AGENT = "cachier-alerts/1"
TIMEOUT_S = 5.0
MAX_BACKOFF_S = 30.0
STOP_GRACE_S = 2.0


def describe(url: str) -> str:
    """How logs name a webhook: scheme, host and port, never the path, query or password."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return "<invalid url>"


@dataclass(eq=False)
class _Hook:
    url: str
    queue: deque[tuple[str, dict[str, Any]]]  # (delivery id, payload)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    delivered: int = 0
    dropped: int = 0
    failed_attempts: int = 0
    failing: bool = False


class Webhooks:
    """Non-blocking, retried JSON POSTs, one worker per webhook URL.

    ``stats(url)`` is ``{"delivered", "dropped", "failed_attempts", "queued"}`` for a URL
    (notifications, except ``failed_attempts``: POSTs that did not succeed)."""

    def __init__(
        self,
        egress: EgressPolicy | None = None,
        queue_max: int = 100,
        retries: int = 5,
        backoff_s: float = 0.5,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        if queue_max < 1 or retries < 0 or backoff_s < 0 or timeout_s <= 0:
            raise ValueError("webhooks: need queue_max >= 1, retries, backoff_s >= 0, timeout > 0")
        self._egress = egress or EgressPolicy()
        self._queue_max = queue_max
        self._retries = retries
        self._backoff_s = backoff_s
        self._timeout_s = timeout_s
        self._hooks: dict[str, _Hook] = {}
        self._client: httpx.AsyncClient | None = None
        self._running = False
        self._closing = False

    def stats(self, url: str) -> dict[str, int]:
        hook = self._hooks.get(url)
        if hook is None:
            return {"delivered": 0, "dropped": 0, "failed_attempts": 0, "queued": 0}
        return {
            "delivered": hook.delivered,
            "dropped": hook.dropped,
            "failed_attempts": hook.failed_attempts,
            "queued": len(hook.queue),
        }

    def submit(self, url: str, payload: dict[str, Any]) -> None:
        """Queue one notification; O(1), never awaits, never raises. Call on the loop's
        thread (the alert evaluator runs there). Before ``start`` it waits in the queue."""
        try:
            hook = self._hooks.get(url)
            if hook is None:
                hook = self._hooks[url] = _Hook(url, deque(maxlen=self._queue_max))
            if len(hook.queue) == self._queue_max:
                hook.dropped += 1
            hook.queue.append((uuid.uuid4().hex, payload))
            self._wake(hook)
        except Exception as exc:  # an alert must not fail because of its webhook
            log.warning("webhook: notification not queued (%s)", type(exc).__name__)

    def _wake(self, hook: _Hook) -> None:
        if not self._running or self._closing:
            return
        if hook.task is None or hook.task.done():
            hook.task = asyncio.get_running_loop().create_task(self._run(hook), name="webhook")
        hook.wake.set()

    async def start(self) -> None:
        if self._running:
            return
        self._client = guarded_client(self._egress, self._timeout_s)
        self._running, self._closing = True, False
        for hook in self._hooks.values():
            hook.wake = asyncio.Event()
            if hook.queue:
                self._wake(hook)

    async def stop(self) -> None:
        """Let the workers finish for up to ~2 s, then cancel; the rest counts as dropped."""
        if not self._running:
            return
        self._closing = True
        tasks = [h.task for h in self._hooks.values() if h.task is not None and not h.task.done()]
        for hook in self._hooks.values():
            hook.wake.set()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=STOP_GRACE_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._running = False
        for hook in self._hooks.values():
            hook.task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _run(self, hook: _Hook) -> None:
        try:
            while True:
                if not hook.queue:
                    if self._closing:
                        return
                    hook.wake.clear()
                    await hook.wake.wait()
                    continue
                delivery, payload = hook.queue[0]  # stays queued (and counted) while retried
                await self._deliver(hook, delivery, payload)
                if hook.queue and hook.queue[0][0] == delivery:  # not pushed out meanwhile
                    hook.queue.popleft()
        except asyncio.CancelledError:
            hook.dropped += len(hook.queue)
            hook.queue.clear()
            raise

    async def _deliver(self, hook: _Hook, delivery: str, payload: dict[str, Any]) -> None:
        headers = {
            "User-Agent": USER_AGENT,
            "X-Cachier-Delivery": delivery,  # the same on every retry: receivers can de-dupe
        }
        for attempt in range(self._retries + 1):
            if attempt:
                await asyncio.sleep(min(self._backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S))
            if await self._post(hook.url, payload, headers):
                hook.delivered += 1
                self._set_failing(hook, False)
                return
            hook.failed_attempts += 1
        hook.dropped += 1
        self._set_failing(hook, True)

    async def _post(self, url: str, payload: dict[str, Any], headers: dict[str, str]) -> bool:
        assert self._client is not None
        try:
            response = await asyncio.wait_for(
                self._client.post(url, json=payload, headers=headers, timeout=self._timeout_s),
                self._timeout_s,
            )
        except Exception:  # connection errors, refusals by the egress guard, timeouts
            return False
        return 200 <= response.status_code < 300

    def _set_failing(self, hook: _Hook, failing: bool) -> None:
        if failing == hook.failing:
            return
        hook.failing = failing
        if failing:
            log.warning(
                "alert webhook %s: notification dropped after %d attempts",
                describe(hook.url),
                self._retries + 1,
            )
        else:
            log.info("alert webhook %s: delivering again", describe(hook.url))
