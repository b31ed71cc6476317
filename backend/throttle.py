"""Brute-force protection for memcache authentication.

Failures are counted per source address in a sliding window; once an address reaches the
limit, its further attempts are refused without checking the password until its oldest
failure leaves the window. A legitimate client behind the same address is refused too for
that while — the price of not letting a guesser keep trying.
"""

from __future__ import annotations

import time
from collections import deque


class AuthThrottle:
    def __init__(self, limit: int = 10, window_s: float = 60.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}
        self.total_failures = 0
        self.total_refused = 0

    def _recent(self, host: str, now: float) -> deque[float] | None:
        failures = self._failures.get(host)
        if failures is None:
            return None
        horizon = now - self.window_s
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            del self._failures[host]
            return None
        return failures

    def blocked(self, host: str) -> bool:
        failures = self._recent(host, time.monotonic())
        if failures is not None and len(failures) >= self.limit:
            self.total_refused += 1
            return True
        return False

    def record_failure(self, host: str) -> None:
        now = time.monotonic()
        failures = self._recent(host, now)
        if failures is None:
            failures = self._failures[host] = deque()
        failures.append(now)
        self.total_failures += 1
