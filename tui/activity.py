"""A credential's activity in words: "3 s ago · 4 conns", "unused for 2 h", "never used".

What an owner reads to know a rotation is finished: the old credential's age grows and
its connections drop to 0. Pure functions of the API's ``CredentialActivityOut`` and the
time now, so the page, the confirmation and the tests say it the same way.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from backend.api.schemas import CredentialActivityOut


def age(seconds: float) -> str:
    """A short age: ``3 s``, ``12 min``, ``2 h``, ``5 d`` (whole units, rounded down)."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h"
    return f"{s // 86400} d"


def connections(count: int) -> str:
    return f"{count} conn{'' if count == 1 else 's'}"


def used(activity: CredentialActivityOut | None, now: float) -> str:
    """The table's "Last used" cell."""
    if activity is None:
        return ""
    last = activity.last_auth
    if last is None:
        return connections(activity.connections) if activity.connections else "never used"
    ago = age(now - last.at)
    if activity.connections:
        return f"{ago} ago · {connections(activity.connections)}"
    return f"unused for {ago}"


def peers(addresses: list[str]) -> str:
    """``10.0.4.17 ×3, 10.0.4.18``: each client address once, with its count."""
    counted = Counter(addresses)
    return ", ".join(f"{a} ×{n}" if n > 1 else a for a, n in sorted(counted.items()))


def details(username: str, activity: CredentialActivityOut | None) -> str:
    """Two lines under the table for the selected credential (its row is highlighted):
    its last authentication, then its connections, commands and refusals."""
    if activity is None:
        return ""
    last = activity.last_auth
    if last is None:
        first = f"{username} never authenticated"
    else:
        when = datetime.fromtimestamp(last.at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        first = f"last auth {when} · {last.protocol} · {last.proxy} · from {last.peer}"
    second = [
        f"{connections(activity.connections)}"
        + (f": {peers(activity.peers)}" if activity.connections else ""),
        f"{activity.commands_last_minute} cmds/min, {activity.commands_last_hour}/h",
    ]
    if activity.refused_write or activity.refused_flush:
        second.append(f"refused {activity.refused_write} write, {activity.refused_flush} flush")
    return first + "\n" + " · ".join(second)
