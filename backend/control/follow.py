"""Following changes another process made: re-read the rows, publish what differs.

With several processes on one PostgreSQL database (issue 14), a change committed by
another process reaches this one as a notification naming the caches it touched
(``backend.control.notify``). ``Follower`` re-reads those caches' rows and brings the
control plane's records to them, publishing on the local bus one event per difference —
the same events a local change publishes — so the data plane closes a revoked
credential's sessions, refuses a write after a capability went off, or drops a moved
cache's copy exactly as it does for a change made here.

Re-reading, rather than applying what a message says, makes following idempotent and
order-proof (two notifications about one cache converge on the database's state) and
keeps secrets out of messages: a new credential's password comes from its encrypted row,
with the key every process sharing the database must share (README).

``resync`` is the same for every cache at once: after a lost connection to the
database, anything may have changed meanwhile. Runs on the control thread, like every
control-plane operation.
"""

from __future__ import annotations

import json
from collections import defaultdict

from backend.control.models import App, Cache
from backend.control.plane import ControlPlane, added_event, cache_record, created_event
from backend.control.repository import AppRow, CacheRow, CredentialRow
from backend.events import (
    CacheDeleted,
    CacheFlushed,
    CacheMoved,
    CapabilitiesChanged,
    CredentialRevoked,
    PrimaryPromoted,
    SsoRotated,
)


class Follower:
    def __init__(self, control: ControlPlane) -> None:
        self.control = control
        # The last encrypted drain URL seen per cache: a re-read decrypts only a new one.
        self._drain_tokens: dict[str, bytes | None] = {}

    # -- what a notification asks ---------------------------------------------------------
    def reconcile(self, cache_id: str, moved_by: str = "") -> None:
        """Bring one cache's records to its rows (``moved_by``: the proxy that flushed the
        old copy, when the notification was a move)."""
        repository = self.control.repository
        row = repository.cache(cache_id)
        credentials = repository.credentials_of(cache_id) if row is not None else []
        app = repository.app(cache_id) if row is not None else None
        self._reconcile(cache_id, row, credentials, app, moved_by)

    def flush(self, cache_id: str, origin: str, proxy: str) -> None:
        """A flush done by another process's API or client: the owner's items go."""
        cache = self.control.caches.get(cache_id)
        if cache is not None:
            self.control.bus.publish(CacheFlushed(cache_id, cache.cluster, origin, proxy))

    def resync(self) -> None:
        """Every cache, after a (re)connection. Three reads, not one per cache; a change
        committed between them is notified after them (LISTEN came first) and re-read."""
        repository = self.control.repository
        rows = {row.id: row for row in repository.caches()}
        credentials: defaultdict[str, list[CredentialRow]] = defaultdict(list)
        for credential in repository.credentials():
            credentials[credential.cache_id].append(credential)
        apps = {app.cache_id: app for app in repository.apps()}
        gone = [cache_id for cache_id in self.control.caches if cache_id not in rows]
        for cache_id in [*rows, *gone]:
            self._reconcile(
                cache_id, rows.get(cache_id), credentials.get(cache_id, []), apps.get(cache_id)
            )

    # -- the differences ------------------------------------------------------------------
    def _reconcile(
        self,
        cache_id: str,
        row: CacheRow | None,
        credential_rows: list[CredentialRow],
        app_row: AppRow | None,
        moved_by: str = "",
    ) -> None:
        control, publish = self.control, self.control.bus.publish
        cache = control.caches.get(cache_id)
        if row is None:
            if cache is not None:
                del control.caches[cache_id]
                control.unindex_sso(cache)
                for credential in cache.credentials:
                    control.credentials.pop(credential.username, None)
                self._drain_tokens.pop(cache_id, None)
                usernames = tuple(c.username for c in cache.credentials)
                publish(CacheDeleted(cache_id, cache.cluster, usernames))
            return
        if cache is None:
            self._add_cache(row, credential_rows, app_row)
            return
        if row.cluster != cache.cluster:
            old, cache.cluster = cache.cluster, row.cluster
            publish(CacheMoved(cache_id, old, row.cluster, moved_by))
        if (row.sso_nonce, row.sso_hash) != (cache.sso_nonce, cache.sso_hash):
            previous, cache.sso_nonce, cache.sso_hash = cache.sso_hash, row.sso_nonce, row.sso_hash
            control.index_sso(cache, previous)
            publish(SsoRotated(cache_id))
        self._reconcile_credentials(cache, credential_rows)
        self._reconcile_app(cache, app_row)

    def _add_cache(
        self, row: CacheRow, credential_rows: list[CredentialRow], app_row: AppRow | None
    ) -> None:
        control = self.control
        cache = cache_record(row)
        for credential_row in credential_rows:
            credential = control.credential_record(credential_row)
            cache.credentials.append(credential)
            control.credentials[credential.username] = credential
        self._reconcile_app(cache, app_row)
        control.caches[cache.id] = cache
        control.index_sso(cache)
        control.bus.publish(created_event(cache))
        for credential in cache.credentials:
            control.bus.publish(added_event(credential))

    def _reconcile_credentials(self, cache: Cache, rows: list[CredentialRow]) -> None:
        control, publish = self.control, self.control.bus.publish
        wanted = {row.username: row for row in rows}
        for credential in list(cache.credentials):
            if credential.username not in wanted:
                cache.credentials.remove(credential)
                control.credentials.pop(credential.username, None)
                publish(CredentialRevoked(cache.id, credential.username))
        previous = next((c.username for c in cache.credentials if c.primary), None)
        for row in rows:
            known = cache.credential(row.username)
            if known is None:
                credential = control.credential_record(row)
                cache.credentials.append(credential)
                control.credentials[credential.username] = credential
                publish(added_event(credential))
                continue
            credential = known
            was = (credential.write, credential.flush, credential.api)
            if was != (row.can_write, row.can_flush, row.can_api):
                credential.write, credential.flush = row.can_write, row.can_flush
                credential.api = row.can_api
                publish(
                    CapabilitiesChanged(
                        cache.id, row.username, row.can_write, row.can_flush, row.can_api
                    )
                )
        primary = next((row.username for row in rows if row.is_primary), None)
        if primary is not None and previous is not None and primary != previous:
            for credential in cache.credentials:
                credential.primary = credential.username == primary
            publish(PrimaryPromoted(cache.id, primary, previous))

    def _reconcile_app(self, cache: Cache, row: AppRow | None) -> None:
        if row is None:
            cache.app = None
            return
        secrets = self.control.secrets
        app = cache.app
        if app is None or app.release != row.release or app.name != row.name:
            config = json.loads(secrets.decrypt(row.config_enc))
            drain = app.log_drain if app is not None else None
            app = cache.app = App(row.name, row.release, config, drain)
            self._drain_tokens.pop(cache.id, None)  # read the drain below
        token = row.log_drain_enc
        if cache.id not in self._drain_tokens or self._drain_tokens[cache.id] != token:
            app.log_drain = None if token is None else secrets.decrypt(token).decode()
            self._drain_tokens[cache.id] = token
