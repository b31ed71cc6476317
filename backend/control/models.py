"""Records of caches, credentials and apps, as plain dataclasses.

The control plane keeps one set (loaded from its repository); the data plane keeps its own
instances, built and changed from the control plane's events (``backend.events``). A
session holds the data plane's ``Credential``, which an event changes in place, so a
capability switched off or a credential deleted is seen from the session's next command.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, cast, get_args

MIB = 1024 * 1024

# Plan name -> memory limit in bytes. "free" is MemCachier's 25 MB development plan.
PLANS: dict[str, int] = {
    "free": 25 * MIB,
    "100mb": 100 * MIB,
    "250mb": 250 * MIB,
    "500mb": 500 * MIB,
    "1gb": 1024 * MIB,
    "2.5gb": 2560 * MIB,
    "5gb": 5120 * MIB,
}
# The same names as a type, so the API documents (and validates) plan as an enum.
PlanName = Literal["free", "100mb", "250mb", "500mb", "1gb", "2.5gb", "5gb"]
assert list(get_args(PlanName)) == list(PLANS), "PlanName and PLANS must list the same plans"


def as_plan(name: str) -> PlanName:
    """``name`` typed as a plan: records carry plain strings, answers promise the enum."""
    if name not in PLANS:
        raise ValueError(f"unknown plan {name!r}")
    return cast(PlanName, name)


# Rules the control plane applies and the API documents as JSON Schema patterns; matched
# whole (``fullmatch``: ``$`` alone would let a trailing newline through). ASCII classes
# only, so ECMA 262 (the document's dialect) and Python's ``re`` agree on every string.
CACHE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
_PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
# An http(s) URL with a host and, if any, a port 1-65535: what a log drain can be.
DRAIN_URL_PATTERN = (
    r"^https?://([A-Za-z0-9._~%!$&'()*+,;=:-]+@)?([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])"
    rf"(:{_PORT})?([/?#][!-~]*)?$"
)


def timestamp() -> str:
    """RFC 3339 in UTC with milliseconds, as log lines carry it."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(eq=False)
class Credential:
    username: str
    password: bytes
    cache_id: str
    primary: bool = False
    write: bool = True
    flush: bool = True
    created_at: str = ""
    # HTTP Basic access to /api/v2 (issue 16); only the control plane's records use it.
    api: bool = False
    # Set when the credential is deleted; sessions holding it stop at their next command.
    revoked: bool = False


@dataclass(eq=False)
class App:
    """The provider app a cache is attached to (Heroku-like): config vars and releases."""

    name: str
    release: int
    config_vars: dict[str, str]
    log_drain: str | None = None


@dataclass(eq=False)
class Cache:
    id: str
    name: str
    plan: str
    region: str
    cluster: str
    sso_nonce: str = ""
    sso_hash: str = ""
    created_at: str = ""
    credentials: list[Credential] = field(default_factory=list)
    app: App | None = None

    @property
    def limit_bytes(self) -> int:
        return PLANS[self.plan]

    @property
    def paid(self) -> bool:
        return self.plan != "free"

    def primary(self) -> Credential:
        return next(c for c in self.credentials if c.primary)

    def credential(self, username: str) -> Credential | None:
        return next((c for c in self.credentials if c.username == username), None)
