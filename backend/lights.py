"""The words of the status monitor, as types: a proxy's state, a cluster's light, a fault.

A module of its own (no imports) so the API schemas, the monitor and the dashboard's
client share one definition without the client loading the monitor.
"""

from __future__ import annotations

from typing import Final, Literal, cast, get_args

ProxyState = Literal["up", "slow", "down"]
Light = Literal["green", "yellow", "red", "blue"]
FaultMode = Literal["slow", "down", "none"]

UP: Final[ProxyState] = "up"
SLOW: Final[ProxyState] = "slow"
DOWN: Final[ProxyState] = "down"
GREEN: Final[Light] = "green"
BLUE: Final[Light] = "blue"
YELLOW: Final[Light] = "yellow"
RED: Final[Light] = "red"


def as_light(word: str) -> Light:
    """A light read back from the incident history (stored as text)."""
    if word not in get_args(Light):
        raise ValueError(f"unknown light {word!r}")
    return cast(Light, word)


def as_state(word: str) -> ProxyState:
    """A proxy state read back from the leading monitor's results (stored as text)."""
    if word not in get_args(ProxyState):
        raise ValueError(f"unknown proxy state {word!r}")
    return cast(ProxyState, word)


def as_fault(word: str) -> FaultMode:
    if word not in get_args(FaultMode):
        raise ValueError(f"unknown fault mode {word!r}")
    return cast(FaultMode, word)
