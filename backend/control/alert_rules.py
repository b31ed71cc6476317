"""A cache's alert settings: the thresholds its owner set and where firing alerts are POSTed.

The control plane stores them (``alert_settings`` table: the thresholds as JSON, the webhook
URL encrypted like a log drain's, since it can carry tokens); ``backend.alerts`` evaluates
them. A threshold left as None is off. The hysteresis numbers are per cache, in samples of
the analytics interval, like the status monitor's ``Sensitivity``: a condition must hold for
``fire_after`` samples in a row to fire and be clear for ``resolve_after`` in a row to
resolve, so one noisy sample never flips an alert.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Final, Literal, get_args

from backend.control.errors import Invalid

AlertKind = Literal["hit_rate", "memory", "evictions", "connections", "refused"]
ALERT_KINDS: Final[tuple[AlertKind, ...]] = get_args(AlertKind)

# Bounds, shared with the API schema so the OpenAPI document states them.
MAX_WINDOW_MIN: Final = 60.0
MIN_WINDOW_MIN: Final = 0.01  # 0.6 s: tests run with a short --sample-interval
MAX_SAMPLES: Final = 3600
MAX_RATE: Final = 1e9


@dataclass(frozen=True)
class AlertSettings:
    """Thresholds (None: off) and the optional webhook. Percentages are 0-100."""

    hit_rate_below: float | None = None  # % of gets that hit, over ``hit_rate_window_min``
    hit_rate_window_min: float = 5.0
    memory_above: float | None = None  # % of the plan's memory limit
    evictions_above: float | None = None  # per second
    connections_above: int | None = None  # open connections
    refused_above: float | None = None  # commands refused for a capability, per minute
    fire_after: int = 3
    resolve_after: int = 5
    webhook_url: str | None = None  # a secret: never logged, stored encrypted

    def threshold(self, kind: AlertKind) -> float | None:
        return {
            "hit_rate": self.hit_rate_below,
            "memory": self.memory_above,
            "evictions": self.evictions_above,
            "connections": self.connections_above,
            "refused": self.refused_above,
        }[kind]

    def enabled(self) -> list[AlertKind]:
        return [kind for kind in ALERT_KINDS if self.threshold(kind) is not None]

    def check(self) -> None:
        """Invalid with a readable reason when a value is out of range (the API's schema
        says the same; this guards every other caller)."""

        def number(name: str, value: float | None, low: float, high: float) -> None:
            if value is not None and not (math.isfinite(value) and low <= value <= high):
                raise Invalid(f"{name} must be between {low:g} and {high:g}")

        number("hit_rate_below", self.hit_rate_below, 0, 100)
        number("hit_rate_window_min", self.hit_rate_window_min, MIN_WINDOW_MIN, MAX_WINDOW_MIN)
        number("memory_above", self.memory_above, 0, 100)
        number("evictions_above", self.evictions_above, 0, MAX_RATE)
        number("connections_above", self.connections_above, 0, MAX_RATE)
        number("refused_above", self.refused_above, 0, MAX_RATE)
        number("fire_after", self.fire_after, 1, MAX_SAMPLES)
        number("resolve_after", self.resolve_after, 1, MAX_SAMPLES)

    def rules_json(self) -> str:
        """Everything but the webhook, as stored in the clear."""
        rules = asdict(self)
        del rules["webhook_url"]
        return json.dumps(rules, sort_keys=True)

    @classmethod
    def from_stored(cls, rules: str, webhook_url: str | None) -> AlertSettings:
        """Read back; keys a later version may add are ignored, missing ones default."""
        known = {f.name for f in fields(cls)} - {"webhook_url"}
        values = {k: v for k, v in json.loads(rules).items() if k in known}
        return replace(cls(**values), webhook_url=webhook_url)

    def describe(self) -> str:
        """For the app log and the audit trail: the thresholds, and the webhook's host only."""
        parts = []
        if self.hit_rate_below is not None:
            parts.append(
                f"hit rate < {self.hit_rate_below:g}% over {self.hit_rate_window_min:g} min"
            )
        if self.memory_above is not None:
            parts.append(f"memory > {self.memory_above:g}% of the plan")
        if self.evictions_above is not None:
            parts.append(f"evictions > {self.evictions_above:g}/s")
        if self.connections_above is not None:
            parts.append(f"connections > {self.connections_above:g}")
        if self.refused_above is not None:
            parts.append(f"refused commands > {self.refused_above:g}/min")
        text = ", ".join(parts) or "no thresholds"
        return f"{text}; fire after {self.fire_after}, resolve after {self.resolve_after} samples"


NO_ALERTS: Final = AlertSettings()
