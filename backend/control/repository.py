"""The control repository: the domain operations the control plane persists through.

``ControlPlane`` is typed against this ``Protocol`` only, so a second implementation
(PostgreSQL, for several backend processes) drops in beside ``db.Database`` (SQLite). An
implementation is the only place that writes SQL. The rows are plain values: secrets
arrive already encrypted (``*_enc``), so no implementation ever sees a plaintext password.

Writes happen inside ``transaction()``; a change and its log line share one transaction.
``start_incident`` is the exception: it is the monitor's own atomic write.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol


@dataclass
class CacheRow:
    id: str
    name: str
    plan: str
    region: str
    cluster: str
    sso_nonce: str
    sso_hash: str
    created_at: str


@dataclass
class CredentialRow:
    username: str
    cache_id: str
    password_enc: bytes
    is_primary: bool
    can_write: bool
    can_flush: bool
    created_at: str
    can_api: bool = False


@dataclass
class CredentialUseRow:
    """A credential's last successful authentication, as last saved (``backend.activity``)."""

    username: str
    at: float
    protocol: str
    proxy: str
    peer: str


@dataclass
class AppRow:
    cache_id: str
    name: str
    release: int
    config_enc: bytes
    log_drain_enc: bytes | None
    legacy_log_drain: str | None = None  # plaintext, from before migration 4


@dataclass
class ReleaseRow:
    number: int
    description: str
    t: str


@dataclass
class IncidentRow:
    """One period of a cluster's light, from the change that started it to the next one."""

    id: int
    cluster: str
    light: str
    previous: str
    started_at: float
    ended_at: float | None
    cause: str
    proxies: str  # space-separated hostnames


@dataclass
class AuditRow:
    """One control-plane change: when, by whom, what (never a secret)."""

    id: int | None  # assigned by the database
    t: str
    cache_id: str | None  # None: a change of the whole service (a fault injected)
    cache_name: str | None  # kept: the trail outlives a deleted cache
    actor: str
    action: str
    detail: str


@dataclass
class AlertSettingsRow:
    cache_id: str
    rules: str  # JSON of the thresholds (``alert_rules.AlertSettings.rules_json``)
    webhook_enc: bytes | None


@dataclass
class LogRow:
    id: int
    cache_id: str
    t: str
    source: str
    message: str
    origin: str | None
    proxy: str | None


@dataclass
class OwnerRow:
    """Which process serves a cluster, where, and how old its last heartbeat is."""

    cluster: str
    process_id: str
    api_url: str
    proxies: dict[str, str]  # proxy hostname -> advertised "host:port"
    heartbeat_at: float  # the database's clock; 0 when released
    age_s: float  # seconds since heartbeat_at, by the database's clock


@dataclass
class ProbeRow:
    """The leading monitor's latest probe of one proxy, as the other processes show it."""

    hostname: str
    address: str  # where it was probed
    state: str  # "up", "slow" or "down"
    latency_ms: float | None  # None: the last probe failed
    baseline_ms: float | None
    at: float  # when, by the database's clock (set by the database when written)


class ControlRepository(Protocol):
    # -- lifecycle ----------------------------------------------------------------------
    def transaction(self) -> AbstractContextManager[None]:
        """Commit on normal exit, roll back (and re-raise) on an exception."""
        ...

    def close(self) -> None:
        """Idempotent."""
        ...

    def forget_overwritten(self) -> None:
        """Make sure overwritten content (a secret now encrypted) is gone from storage."""
        ...

    # -- caches -------------------------------------------------------------------------
    def caches(self) -> list[CacheRow]: ...
    def insert_cache(self, row: CacheRow) -> None: ...
    def cache_name_taken(self, name: str) -> bool: ...
    def set_cache_cluster(self, cache_id: str, cluster: str) -> None: ...
    def set_sso(self, cache_id: str, nonce: str, sso_hash: str) -> None: ...
    def cache(self, cache_id: str) -> CacheRow | None: ...

    def delete_cache(self, cache_id: str) -> None:
        """With its credentials, app, releases and log lines."""
        ...

    # -- credentials --------------------------------------------------------------------
    def credentials(self) -> list[CredentialRow]: ...
    def credentials_of(self, cache_id: str) -> list[CredentialRow]: ...
    def insert_credential(self, row: CredentialRow) -> None: ...
    def username_taken(self, username: str) -> bool: ...
    def set_capabilities(self, username: str, write: bool, flush: bool, api: bool) -> None: ...
    def delete_credential(self, username: str) -> None: ...

    def credential_uses(self) -> list[CredentialUseRow]:
        """Every credential's last authentication saved so far."""
        ...

    def save_credential_uses(self, rows: Sequence[CredentialUseRow]) -> None:
        """Insert or replace; a row whose credential is gone meanwhile is skipped (and a
        deleted credential's row goes with it: ``ON DELETE CASCADE``)."""
        ...

    def set_primary(self, cache_id: str, username: str) -> None:
        """``username`` becomes the cache's only primary."""
        ...

    # -- apps ---------------------------------------------------------------------------
    def apps(self) -> list[AppRow]: ...
    def app(self, cache_id: str) -> AppRow | None: ...
    def insert_app(self, row: AppRow) -> None: ...
    def update_app_config(self, cache_id: str, release: int, config_enc: bytes) -> None: ...
    def set_log_drain(self, cache_id: str, url_enc: bytes | None) -> None: ...
    def insert_release(self, cache_id: str, number: int, description: str, t: str) -> None: ...
    def releases(self, cache_id: str, limit: int = 20) -> list[ReleaseRow]: ...

    # -- app logs -----------------------------------------------------------------------
    def insert_log(
        self,
        cache_id: str,
        t: str,
        source: str,
        message: str,
        origin: str | None = None,
        proxy: str | None = None,
    ) -> int:
        """Returns the line's id (increasing)."""
        ...

    def logs(self, cache_id: str, after_id: int | None, limit: int) -> list[LogRow]:
        """Lines after ``after_id`` (oldest first), or the newest ``limit`` lines if None."""
        ...

    # -- alert settings -----------------------------------------------------------------
    def alert_settings(self) -> list[AlertSettingsRow]: ...
    def set_alert_settings(self, row: AlertSettingsRow) -> None: ...

    # -- status history -----------------------------------------------------------------
    def start_incident(
        self, cluster: str, light: str, previous: str, at: float, cause: str, proxies: str
    ) -> int:
        """Close the cluster's open period and open the next one, atomically."""
        ...

    def insert_audit(self, row: AuditRow) -> int:
        """Call inside the transaction of the change it records."""
        ...

    def audit(self, cache_id: str | None, before_id: int | None, limit: int) -> list[AuditRow]: ...

    def incidents(
        self, limit: int = 50, clusters: Sequence[str] | None = None
    ) -> list[IncidentRow]: ...
    def last_incidents(self) -> dict[str, IncidentRow]: ...
    def last_trouble_ended(self, cluster: str) -> float | None: ...

    # -- cluster ownership (several processes; ``backend.control.ownership``) -------------
    def lock_owners(self) -> None:
        """Serialize cluster claims until the open transaction ends."""
        ...

    def owners(self) -> list[OwnerRow]: ...
    def set_owner(self, cluster: str, process_id: str, api_url: str, proxies: str) -> None: ...
    def beat(self, process_id: str) -> int: ...
    def release_owner(self, process_id: str) -> None: ...

    # -- the leading monitor's probe results (several processes; ``backend.monitor``) -----
    def save_probe_results(self, rows: Sequence[ProbeRow]) -> None: ...
    def mark_leader(self, process_id: str) -> None: ...
    def probe_results(self) -> list[ProbeRow]: ...

    def notify(self, channel: str, payload: str) -> None:
        """Deliver ``payload`` to the other processes' listeners when the open transaction
        commits (PostgreSQL NOTIFY); nothing in the embedded SQLite mode."""
        ...
