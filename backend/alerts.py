"""Per-cache alerts: the owner's thresholds evaluated against the analytics samples.

Runs on the control thread (``backend.loops``), half an interval after each analytics tick,
and reads only what analytics publishes (``Analytics.series`` over the last few intervals:
the newest samples) plus one counter analytics does not sample, the refusals
(``CacheStats.cmd_refused``, a plain int read without changing anything, as metrics reads
the data plane). It keeps per watched cache a few numbers and a thinned ring of
(t, hits, misses) to compute the hit rate over the owner's window: at most
``RING_POINTS`` entries, whatever the window, so the window's start is known to within
1/``RING_POINTS`` of it.

Conditions, evaluated once per new sample (percentages 0-100):

============  ================================================  =====================
alert         value                                             breach
============  ================================================  =====================
hit_rate      hits / gets over the last ``hit_rate_window_min``  below the threshold
memory        memory used / the plan's limit                    above
evictions     evictions per second since the previous sample    above
connections   open connections                                  above
refused       capability refusals per minute since the last     above
============  ================================================  =====================

A value that cannot be computed (no gets in the window, the first sample) is no breach.

Hysteresis, like the status lights (``monitor.Sensitivity``): an alert fires after its
condition held for ``fire_after`` samples in a row and resolves after it was clear for
``resolve_after`` samples in a row; a sample that agrees with the current state resets the
count, so a condition that flaps never changes the alert. A change (firing or resolved)
writes an app-log line (``ControlPlane.log``, in a transaction: it reaches the log drains)
and is POSTed to the cache's webhook, if any (``backend.webhooks``: queued, never awaited).
A threshold removed while its alert fires resolves it at once (logged and POSTed).

State is in memory: after a restart, alerts start resolved and fire again within
``fire_after`` samples if their condition still holds.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from backend.control.alert_rules import ALERT_KINDS, AlertKind, AlertSettings

if TYPE_CHECKING:
    from backend.analytics import Analytics
    from backend.control.plane import ControlPlane
    from backend.dataplane import DataPlane
    from backend.webhooks import Webhooks

log = logging.getLogger(__name__)

RING_POINTS = 60
FIRING = "firing"
RESOLVED = "resolved"
LABELS: dict[AlertKind, str] = {
    "hit_rate": "hit rate",
    "memory": "memory",
    "evictions": "evictions",
    "connections": "connections",
    "refused": "refused commands",
}
UNITS: dict[AlertKind, str] = {
    "hit_rate": "%",
    "memory": "% of the plan",
    "evictions": "/s",
    "connections": "",
    "refused": "/min",
}


@dataclass
class AlertState:
    """One alert of one cache: whether it fires, and the evidence."""

    kind: AlertKind
    threshold: float
    firing: bool = False
    streak: int = 0  # samples in a row that disagree with ``firing``
    since: float | None = None  # unix time of the last change
    value: float | None = None  # the latest value evaluated

    def breach(self, value: float | None) -> bool:
        if value is None:
            return False
        if self.kind == "hit_rate":
            return value < self.threshold
        return value > self.threshold


@dataclass
class Change:
    """An alert that fired or resolved: what the log line and the webhook say."""

    cache_id: str
    cache_name: str
    kind: AlertKind
    status: str  # FIRING or RESOLVED
    value: float | None
    threshold: float
    t: float
    note: str = ""

    def message(self) -> str:
        label, unit = LABELS[self.kind], UNITS[self.kind]
        side = "below" if self.kind == "hit_rate" else "above"
        shown = "—" if self.value is None else f"{self.value:.4g}{unit}"
        limit = f"{self.threshold:g}{unit}"
        if self.status == FIRING:
            text = f"Alert {self.kind} firing: {label} {shown} is {side} {limit}"
        else:
            text = f"Alert {self.kind} resolved: {label} {shown} (threshold {side} {limit})"
        return f"{text}{self.note}"

    def payload(self) -> dict[str, Any]:
        return {
            "cache": self.cache_name,
            "cache_id": self.cache_id,
            "alert": self.kind,
            "status": self.status,
            "value": self.value,
            "threshold": self.threshold,
            "t": _rfc3339(self.t),
            "message": self.message(),
        }


def _rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Watch:
    """What is kept for one cache with thresholds."""

    settings: AlertSettings
    states: dict[AlertKind, AlertState] = field(default_factory=dict)
    last_t: float = -math.inf
    prev: dict[str, Any] | None = None  # the previous sample evaluated
    ring: deque[tuple[float, int, int]] = field(default_factory=deque)
    refused: tuple[float, int] | None = None  # (when, count) of the last refusal reading


class Alerts:
    """Evaluates every cache's thresholds at each analytics sample; holds the alert states."""

    def __init__(
        self,
        control: ControlPlane,
        analytics: Analytics,
        dataplane: DataPlane,
        webhooks: Webhooks | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.control = control
        self.analytics = analytics
        self.dataplane = dataplane
        self.webhooks = webhooks
        self.clock = clock
        self.interval_s = analytics.interval_s
        self._watches: dict[str, _Watch] = {}
        control.alerts_firing = self.firing_count
        control.alerts_firing_total = self.firing_total

    # -- reading ------------------------------------------------------------------------
    def states(self, cache_id: str) -> list[AlertState]:
        """The cache's alerts (one per threshold set), in ``ALERT_KINDS`` order; asked
        before the first evaluation (just after start-up), they are listed, resolved."""
        watch = self._watches.get(cache_id)
        if watch is None and cache_id in self.control.alert_settings:
            self.settings_changed(cache_id)
            watch = self._watches.get(cache_id)
        if watch is None:
            return []
        return [watch.states[k] for k in ALERT_KINDS if k in watch.states]

    def firing_count(self, cache_id: str) -> int:
        watch = self._watches.get(cache_id)
        return 0 if watch is None else sum(s.firing for s in watch.states.values())

    def firing_total(self) -> int:
        """Every cache's firing alerts (the operator's badge): one pass over the watched
        caches, as each evaluation round makes every second anyway."""
        return sum(s.firing for w in self._watches.values() for s in w.states.values())

    # -- the loop -----------------------------------------------------------------------
    async def run(self) -> None:
        """Evaluate half an interval after each analytics tick (``Analytics.run`` samples
        on multiples of the interval), until cancelled."""
        interval = self.interval_s
        tick = math.floor(self.clock() / interval) + 1
        while True:
            delay = (tick + 0.5) * interval - self.clock()
            if delay > 2 * interval:  # the wall clock stepped back
                tick = math.floor(self.clock() / interval) + 1
                delay = (tick + 0.5) * interval - self.clock()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                self.evaluate()
            except Exception:  # a bug must not silently end alerting for the process
                log.exception("alert evaluation failed")
            tick = max(tick + 1, math.floor(self.clock() / interval) + 1)

    def settings_changed(self, cache_id: str) -> list[Change]:
        """Take a cache's new settings now (the API calls it after a PUT), so its answer
        lists the alerts at once; removed thresholds that fired resolve (and are reported)."""
        settings = self.control.alert_settings.get(cache_id)
        cache = self.control.caches.get(cache_id)
        if settings is None or cache is None:
            return []
        changes: list[Change] = []
        watch = self._watches.get(cache_id)
        if watch is None:
            watch = self._watches[cache_id] = _Watch(settings)
        self._apply(watch, settings, cache_id, cache.name, changes)
        for change in changes:
            self._report(change)
        return changes

    def evaluate(self) -> list[Change]:
        """One round over every cache with thresholds; returns (and reports) the changes."""
        changes: list[Change] = []
        settings_by_cache = self.control.alert_settings
        for cache_id in [c for c in self._watches if c not in settings_by_cache]:
            del self._watches[cache_id]  # cache deleted: its log and webhook go with it
        for cache_id, settings in list(settings_by_cache.items()):
            cache = self.control.caches.get(cache_id)
            if cache is None:
                continue
            watch = self._watches.get(cache_id)
            if watch is None:
                watch = self._watches[cache_id] = _Watch(settings)
                self._apply(watch, settings, cache_id, cache.name, changes)
            elif watch.settings is not settings:
                self._apply(watch, settings, cache_id, cache.name, changes)
            if watch.states:
                self._evaluate_cache(watch, cache_id, cache.name, changes)
        for change in changes:
            self._report(change)
        return changes

    def _apply(
        self,
        watch: _Watch,
        settings: AlertSettings,
        cache_id: str,
        name: str,
        changes: list[Change],
    ) -> None:
        """New settings: new alerts start resolved, kept ones take the new threshold,
        removed ones resolve (if firing)."""
        enabled = settings.enabled()
        for kind in [k for k in watch.states if k not in enabled]:
            removed = watch.states.pop(kind)
            if removed.firing:
                changes.append(
                    Change(
                        cache_id,
                        name,
                        kind,
                        RESOLVED,
                        removed.value,
                        removed.threshold,
                        self.clock(),
                        " (threshold removed)",
                    )
                )
        for kind in enabled:
            threshold = settings.threshold(kind)
            assert threshold is not None
            state = watch.states.get(kind)
            if state is None:
                watch.states[kind] = AlertState(kind, float(threshold))
            elif state.threshold != threshold:
                state.threshold, state.streak = float(threshold), 0
        if settings.hit_rate_window_min != watch.settings.hit_rate_window_min:
            watch.ring.clear()
        watch.settings = settings

    def _evaluate_cache(
        self, watch: _Watch, cache_id: str, name: str, changes: list[Change]
    ) -> None:
        span = 3 * self.interval_s  # a tick or two late still sees every sample
        samples = self.analytics.series(cache_id, span)["samples"]
        fresh = [s for s in samples if s["t"] > watch.last_t]
        if not fresh:
            return
        refused_rate = self._refused_rate(watch, cache_id)
        settings = watch.settings
        for sample in fresh:
            values = self._values(watch, sample, refused_rate)
            for kind, state in watch.states.items():
                value = values[kind]
                state.value = value
                if state.breach(value) == state.firing:
                    state.streak = 0
                    continue
                state.streak += 1
                needed = settings.resolve_after if state.firing else settings.fire_after
                if state.streak >= needed:
                    state.firing, state.streak, state.since = not state.firing, 0, sample["t"]
                    status = FIRING if state.firing else RESOLVED
                    changes.append(
                        Change(cache_id, name, kind, status, value, state.threshold, sample["t"])
                    )
            watch.prev = sample
            watch.last_t = sample["t"]

    def _values(
        self, watch: _Watch, sample: dict[str, Any], refused_rate: float | None
    ) -> dict[AlertKind, float | None]:
        t = sample["t"]
        prev = watch.prev
        limit = sample["memory_limit"]
        evictions = None
        if prev is not None and t > prev["t"]:
            evictions = max(0, sample["evictions"] - prev["evictions"]) / (t - prev["t"])
        return {
            "hit_rate": self._hit_rate(watch, t, sample["get_hits"], sample["get_misses"]),
            "memory": 100 * sample["memory_used"] / limit if limit else None,
            "evictions": evictions,
            "connections": float(sample["curr_connections"]),
            "refused": refused_rate,
        }

    def _hit_rate(self, watch: _Watch, t: float, hits: int, misses: int) -> float | None:
        """Hits over gets since the window's start (the newest ring entry at or before it);
        None while no get happened in the window."""
        window = watch.settings.hit_rate_window_min * 60
        ring = watch.ring
        if not ring or t - ring[-1][0] >= window / RING_POINTS:
            ring.append((t, hits, misses))
        while len(ring) > 2 and ring[1][0] <= t - window:
            ring.popleft()
        _, base_hits, base_misses = ring[0]
        got = hits - base_hits
        gets = got + misses - base_misses
        return 100 * got / gets if gets > 0 else None

    def _refused_rate(self, watch: _Watch, cache_id: str) -> float | None:
        """Capability refusals per minute since the previous reading (one per round)."""
        cache = self.dataplane.caches.get(cache_id)
        engine = self.dataplane.peek_engine(cache) if cache is not None else None
        if engine is None:
            return None
        now, count = self.clock(), engine.stats.cmd_refused
        last, watch.refused = watch.refused, (now, count)
        if last is None or now <= last[0]:
            return None
        return 60 * max(0, count - last[1]) / (now - last[0])  # a reset counts as none

    def _report(self, change: Change) -> None:
        """The app-log line (committed, so it reaches the drains) and the webhook."""
        try:
            with self.control.transaction():
                self.control.log(change.cache_id, change.message())
        except Exception:  # a database hiccup must not stop the evaluation of others
            log.exception("alert of cache %s not logged", change.cache_id)
        url = self.control.alert_settings.get(change.cache_id)
        if url is not None and url.webhook_url and self.webhooks is not None:
            self.webhooks.submit(url.webhook_url, change.payload())

    # -- Prometheus ---------------------------------------------------------------------
    def exposition(self) -> bytes:
        """``cachier_alert_firing{cache,alert}``: 1 while firing, 0 while resolved, for every
        threshold set; appended to ``/metrics`` after the service's own series."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_AlertCollector(self))
        return generate_latest(registry)


class _AlertCollector(Collector):
    def __init__(self, alerts: Alerts) -> None:
        self.alerts = alerts

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "cachier_alert_firing",
            "1 while the cache's alert fires (its owner's threshold is breached)",
            labels=["cache", "alert"],
        )
        caches = self.alerts.control.caches
        for cache_id, watch in list(self.alerts._watches.items()):
            cache = caches.get(cache_id)
            if cache is None:
                continue
            for kind, state in watch.states.items():
                family.add_metric([cache.name, kind], 1.0 if state.firing else 0.0)
        yield family
