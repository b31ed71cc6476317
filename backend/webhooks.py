"""Delivery of alert notifications to the owners' webhooks: JSON POSTs, retried with backoff.

Runs on the control thread's loop (``backend.loops``), beside the API and the alert
evaluator, and never blocks either: ``submit`` appends to a bounded per-URL queue and returns;
one worker task per URL POSTs its queue in order, one notification at a time, retrying a
failed POST (an error, a non-2xx answer or no answer within the timeout) with exponential
backoff, and giving up on it after ``retries`` retries (counted) so a dead receiver cannot
hold newer notifications back forever. A full queue drops its oldest notification (counted).
A slow or dead webhook therefore costs its own queue only, never the data plane, the API or
another cache's webhook. The queue, worker, retry and stop machinery is ``backend.outbox``,
shared with log drains; what is here is the JSON payload and its delivery-id header.

Connections go through the same SSRF guard as log drains (``backend.egress``: loopback and
private addresses only with ``--allow-internal-drains``; redirects not followed).

A webhook URL can carry tokens (path, query, user:password): it is never logged; logs name
a webhook by scheme, host and port only.
"""

from __future__ import annotations

import logging
import uuid
from collections import deque
from typing import Any, ClassVar

from backend.egress import EgressPolicy
from backend.outbox import Destination, Outbox, describe

__all__ = ["Webhooks", "describe"]

log = logging.getLogger(__name__)

USER_AGENT = "cachier-alerts/1"
TIMEOUT_S = 5.0

_Hook = Destination[tuple[str, dict[str, Any]]]  # queue items: (delivery id, payload)


class Webhooks(Outbox[_Hook]):
    """Non-blocking, retried JSON POSTs, one worker per webhook URL (``backend.outbox``).

    ``stats(url)`` is ``{"delivered", "dropped", "failed_attempts", "queued"}`` for a URL
    (notifications, except ``failed_attempts``: POSTs that did not succeed)."""

    _log: ClassVar[logging.Logger] = log
    _kind: ClassVar[str] = "alert webhook"
    _unit: ClassVar[str] = "notification"
    _task_name: ClassVar[str] = "webhook"

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
        super().__init__(
            client=None,
            egress=egress,
            queue_max=queue_max,
            retries=retries,
            backoff_s=backoff_s,
            timeout_s=timeout_s,
        )

    def stats(self, url: str) -> dict[str, int]:
        hook = self._dests.get(url)
        if hook is None:
            return {"delivered": 0, "dropped": 0, "failed_attempts": 0, "queued": 0}
        return hook.stats()

    def submit(self, url: str, payload: dict[str, Any]) -> None:
        """Queue one notification; O(1), never awaits, never raises. Call on the loop's
        thread (the alert evaluator runs there). Before ``start`` it waits in the queue."""
        try:
            hook = self._dests.get(url)
            if hook is None:
                hook = self._dests[url] = _Hook(url, deque(maxlen=self._queue_max))
            self._enqueue(hook, (uuid.uuid4().hex, payload))
            self._wake(hook)
        except Exception as exc:  # an alert must not fail because of its webhook
            log.warning("webhook: notification not queued (%s)", type(exc).__name__)

    async def _deliver_next(self, hook: _Hook) -> None:
        """POST the oldest notification; it stays queued (and counted) while retried."""
        delivery, payload = hook.queue[0]
        headers = {
            "User-Agent": USER_AGENT,
            "X-Cachier-Delivery": delivery,  # the same on every retry: receivers can de-dupe
        }
        await self._send(hook, 1, lambda: self._post(hook.url, headers, json=payload))
        if hook.queue and hook.queue[0][0] == delivery:  # not pushed out meanwhile
            hook.queue.popleft()
