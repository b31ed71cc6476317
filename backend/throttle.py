"""Brute-force protection for memcache authentication.

Failed logins are counted in a sliding window twice: per source address and per username
(the username as sent, known or not, so a refusal reveals nothing about which exist).
Either count at its limit refuses further attempts without checking the password, until
the oldest failure leaves the window. Per address stops one guesser; per username stops
a guesser spread over many addresses (NIST SP 800-63B limits failed attempts per account).

Locking a shared address or a username out would lock its legitimate user out too: on a
PaaS many apps leave through one NAT address. So an address that logged in with a
username and has not failed with it since is *trusted* for that username: it passes both
limits. A guesser can only earn that trust by knowing the password; one failure from a
trusted pair ends its trust.

Everything here is bounded: each table holds at most ``max_entries`` keys, oldest first out.

One throttle counts both doors a password opens: memcache authentication (on the serving
loop) and HTTP Basic on /api/v2 (on the control thread), so a guesser gets no second
allowance by switching protocol. A lock makes each call atomic across the two threads; it
is held for a few dictionary operations only, never across I/O.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque

TRUST_S = 24 * 3600.0  # how long a successful login keeps its address trusted
MAX_ENTRIES = 65_536  # per table: an attacker rotating addresses or usernames cannot grow it


class _Window:
    """Failure times per key in a sliding window, in a bounded table."""

    def __init__(self, limit: int, window_s: float, max_entries: int) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_entries = max_entries
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str, now: float) -> deque[float] | None:
        failures = self._failures.get(key)
        if failures is None:
            return None
        horizon = now - self.window_s
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return None
        return failures

    def full(self, key: str, now: float) -> bool:
        failures = self._recent(key, now)
        return failures is not None and len(failures) >= self.limit

    def add(self, key: str, now: float) -> None:
        failures = self._recent(key, now)
        if failures is None:
            failures = self._failures[key] = deque(maxlen=max(self.limit, 1))
            if len(self._failures) > self.max_entries:
                self._failures.popitem(last=False)
        else:
            self._failures.move_to_end(key)
        failures.append(now)

    def wait(self, key: str, now: float) -> float:
        """Seconds until this key is under its limit again (0 when it is)."""
        failures = self._recent(key, now)
        if failures is None or len(failures) < self.limit:
            return 0.0
        return failures[-self.limit] + self.window_s - now

    def __len__(self) -> int:
        return len(self._failures)


class AuthThrottle:
    """``allowed`` before checking a password, then ``record_failure`` or
    ``record_success``; counters for /metrics by scope."""

    def __init__(
        self,
        limit: int = 10,
        window_s: float = 60.0,
        user_limit: int = 30,
        trust_s: float = TRUST_S,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self.by_address = _Window(limit, window_s, max_entries)
        self.by_username = _Window(user_limit, window_s, max_entries)
        self.trust_s = trust_s
        self.max_entries = max_entries
        self._trusted: OrderedDict[tuple[str, str], float] = OrderedDict()
        self.total_failures = 0
        self.refused_by_address = 0
        self.refused_by_username = 0
        self.trusted_logins = 0  # logins let through a limit by an earned trust
        self._lock = threading.Lock()

    @property
    def total_refused(self) -> int:
        return self.refused_by_address + self.refused_by_username

    def _is_trusted(self, host: str, username: str, now: float) -> bool:
        since = self._trusted.get((host, username))
        if since is None:
            return False
        if now - since > self.trust_s:
            del self._trusted[(host, username)]
            return False
        return True

    def allowed(self, host: str, username: str) -> bool:
        """False when this attempt is refused unchecked (and counted as refused)."""
        with self._lock:
            return self._allowed(host, username, time.monotonic())

    def retry_after(self, host: str, username: str) -> float:
        """Seconds until an attempt refused now would be checked again."""
        with self._lock:
            now = time.monotonic()
            return max(self.by_address.wait(host, now), self.by_username.wait(username, now))

    def _allowed(self, host: str, username: str, now: float) -> bool:
        address_full = self.by_address.full(host, now)
        username_full = self.by_username.full(username, now)
        if not (address_full or username_full):
            return True
        if self._is_trusted(host, username, now):
            self.trusted_logins += 1
            return True
        if address_full:
            self.refused_by_address += 1
        else:
            self.refused_by_username += 1
        return False

    def record_failure(self, host: str, username: str) -> None:
        with self._lock:
            now = time.monotonic()
            self.by_address.add(host, now)
            self.by_username.add(username, now)
            self._trusted.pop((host, username), None)
            self.total_failures += 1

    def record_success(self, host: str, username: str) -> None:
        with self._lock:
            self._trusted[(host, username)] = time.monotonic()
            self._trusted.move_to_end((host, username))
            if len(self._trusted) > self.max_entries:
                self._trusted.popitem(last=False)
