"""The control plane: every operation on caches, credentials, apps and dashboards.

One style: each operation is a method of ``ControlPlane``, and each follows the same
three steps — compute (validate, build the rows), commit (one repository transaction with
the change and its log lines), then apply to the control plane's own records and publish
one typed event per fact (``backend.events``). Nothing outside this object changes
because of an operation until it has committed; a failed transaction changes nothing and
publishes nothing.

The control plane persists only through ``ControlRepository`` and never reaches into the
data plane: what it needs to know from it (which proxy serves a cluster now, how many
sessions a credential has) comes through the small ``DataPlaneView`` query protocol, and
everything it tells it travels as events.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from backend.control import apps, audit
from backend.control.alert_rules import NO_ALERTS, AlertSettings
from backend.control.errors import Conflict, Forbidden, Invalid, NotFound
from backend.control.listing import DEFAULT_PAGE, CacheIndex, CachePage
from backend.control.models import CACHE_NAME_PATTERN, PLANS, App, Cache, Credential, timestamp
from backend.control.repository import (
    AlertSettingsRow,
    AppRow,
    AuditRow,
    CacheRow,
    ControlRepository,
    CredentialRow,
    LogRow,
    ReleaseRow,
)
from backend.control.secrets import (
    Secrets,
    new_cache_id,
    new_nonce,
    new_password,
    new_username,
    sso_hash,
)
from backend.events import (
    CLIENT_FLUSH_ORIGIN,
    CacheCreated,
    CacheDeleted,
    CacheFlushed,
    CacheMoved,
    CapabilitiesChanged,
    CredentialAdded,
    CredentialRevoked,
    Event,
    EventBus,
    KeyTrackingRequested,
    LogLineWritten,
    PrimaryPromoted,
    SsoRotated,
)
from backend.topology import Cluster, Proxy, Topology

if TYPE_CHECKING:
    from backend.dataplane import Usage
    from backend.keyactivity import KeyReport

NAME_PATTERN = re.compile(CACHE_NAME_PATTERN)
LOG_SOURCE = "cachier"
MAX_LOG_PAGE = 1000


class DataPlaneView(Protocol):
    """The questions the control plane asks the data plane (never commands)."""

    def choose_proxy(self, cluster_name: str) -> Proxy | None:
        """The proxy that serves the cluster now (a flush is logged with its name)."""
        ...

    def sessions_of(self, username: str) -> int:
        """Live sessions of a credential (a deletion reports how many it closes)."""
        ...

    def usage(self, cache_id: str) -> Usage:
        """Memory, items, connections and hits of a cache now."""
        ...

    def key_report(self, cache_id: str) -> KeyReport | None:
        """The cache's sampled hot keys and prefixes, while they are tracked."""
        ...

    def command_counts(self, cache_id: str) -> dict[str, tuple[int, int]]:
        """Hits and misses per command (get, delete, incr, decr, cas, touch)."""
        ...


class ControlPlane:
    def __init__(
        self,
        repository: ControlRepository,
        secrets: Secrets,
        topology: Topology,
        bus: EventBus,
        dataplane: DataPlaneView,
    ) -> None:
        self.repository = repository
        self.secrets = secrets
        self.topology = topology
        self.bus = bus
        self.dataplane = dataplane
        # The control plane's own records; the data plane keeps its own view, fed by events.
        self.caches: dict[str, Cache] = {}
        self.index = CacheIndex()  # the caches in list order (``page_caches``)
        self.credentials: dict[str, Credential] = {}
        # SHA-256 of a cache's dashboard secret -> the cache: a dashboard request (the gate
        # and the route each ask) finds its cache in one lookup, not a scan of every cache.
        # Kept with ``caches`` on commit: a rotated or deleted secret leaves it at once.
        self._by_sso: dict[str, Cache] = {}
        # Filled in by the service once listeners are bound.
        self.api_base_url = ""
        self.endpoints: dict[str, str] = {}
        self.tls_endpoints: dict[str, str] = {}
        # The status monitor answers whether a cluster is red; until it runs, none is.
        self.cluster_is_red: Callable[[str], bool] = lambda cluster: False
        # Alert thresholds by cache id (a cache without an entry has none); the evaluator
        # (``backend.alerts``) reads them and answers how many of a cache's alerts fire.
        self.alert_settings: dict[str, AlertSettings] = {}
        self.alerts_firing: Callable[[str], int] = lambda cache_id: 0
        self.alerts_firing_total: Callable[[], int] = lambda: 0  # over every cache
        # Of the open transaction: record changes and events, applied in order on commit.
        self._on_commit: list[Callable[[], None]] = []
        self._events: list[Event] = []
        self._touched: list[str] = []  # caches whose log had a line written
        # Several processes (PostgreSQL): told each transaction's events and touched
        # caches *inside* it, so the other processes hear of it on commit only
        # (``backend.control.notify.Forwarder``). None in the embedded mode.
        self.forward: Callable[[list[Event], list[str]], None] | None = None

    # -- transactions, events and logs --------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A repository transaction; once it commits, the record changes registered with
        ``on_commit`` are applied and then the events are published, both in order. On a
        rollback both are discarded."""
        self._on_commit, self._events, self._touched = [], [], []
        try:
            with self.repository.transaction():
                yield
                if self.forward is not None:
                    self.forward(self._events, self._touched)
        except BaseException:
            self._on_commit, self._events, self._touched = [], [], []
            raise
        changes, self._on_commit = self._on_commit, []
        events, self._events = self._events, []
        for change in changes:
            change()
        for event in events:
            self.bus.publish(event)

    def on_commit(self, change: Callable[[], None]) -> None:
        self._on_commit.append(change)

    def publish(self, event: Event) -> None:
        """Publish ``event`` when the open transaction commits; an auditable one is
        recorded in the audit trail in that same transaction."""
        self._events.append(event)
        described = audit.describe(event)
        if described is not None:
            cache_id, action, detail = described
            self.record_audit(cache_id, action, detail, audit.actor_of(event))

    def _cache_name(self, cache_id: str) -> str | None:
        """A cache's name, also while the transaction creating it is still open."""
        cache = self.caches.get(cache_id)
        if cache is not None:
            return cache.name
        created = (e for e in self._events if isinstance(e, CacheCreated))
        return next((e.name for e in created if e.cache_id == cache_id), None)

    def record_audit(
        self, cache_id: str | None, action: str, detail: str, actor: str | None = None
    ) -> None:
        """Append to the audit trail; inside a transaction it commits with the change.
        ``actor`` defaults to whoever the current request runs as (``audit``)."""
        self.repository.insert_audit(
            AuditRow(
                None,
                timestamp(),
                cache_id,
                self._cache_name(cache_id) if cache_id is not None else None,
                actor or audit.current_actor(),
                action,
                detail,
            )
        )

    def audit_trail(
        self, cache: Cache | None, before_id: int | None = None, limit: int = 100
    ) -> list[AuditRow]:
        """Newest first; one cache's (its owner's view) or every change (the operator's)."""
        return self.repository.audit(cache.id if cache else None, before_id, limit)

    def log(
        self, cache_id: str, message: str, origin: str | None = None, proxy: str | None = None
    ) -> None:
        """Append an app log line; call inside ``transaction()``. The line reaches the log
        drains (``LogLineWritten``) once committed."""
        t = timestamp()
        line_id = self.repository.insert_log(cache_id, t, LOG_SOURCE, message, origin, proxy)
        self._touched.append(cache_id)
        cache = self.caches.get(cache_id)
        app = cache.app if cache is not None else None
        if app is not None:
            self.publish(
                LogLineWritten(cache_id, line_id, t, LOG_SOURCE, message, app.name, app.log_drain)
            )

    # -- loading ------------------------------------------------------------------------
    def load(self) -> list[str]:
        """Read caches, credentials and apps; returns warnings about the topology.

        Every stored cache and credential is then announced (``CacheCreated``,
        ``CredentialAdded``): subscribers that start empty learn the state as they learn
        changes.
        """
        warnings = []
        repository = self.repository
        for row in repository.caches():
            cache = cache_record(row)
            region = self.topology.region(cache.region)
            if region is None:
                warnings.append(f"cache {cache.name}: region {cache.region} is not in the topology")
            elif self.topology.cluster(cache.cluster) not in region.clusters:
                cluster = self.least_loaded(region.clusters)
                warnings.append(
                    f"cache {cache.name}: cluster {cache.cluster} is gone, now on {cluster.name}"
                )
                with self.transaction():
                    repository.set_cache_cluster(cache.id, cluster.name)
                    self.log(
                        cache.id,
                        f"Cache placed on cluster {cluster.name}: "
                        f"its cluster {cache.cluster} left the topology",
                    )
                cache.cluster = cluster.name
            self.caches[cache.id] = cache
            self._by_sso[cache.sso_hash] = cache
            self.index.add(cache)
        for credential_row in repository.credentials():
            credential = self.credential_record(credential_row)
            self.credentials[credential.username] = credential
            self.caches[credential.cache_id].credentials.append(credential)
        legacy = False
        for app_row in repository.apps():
            config = json.loads(self.secrets.decrypt(app_row.config_enc))
            log_drain = self.decrypt_optional(app_row.log_drain_enc)
            if app_row.legacy_log_drain is not None:  # stored in plaintext by an older version
                log_drain, legacy = app_row.legacy_log_drain, True
                with repository.transaction():
                    repository.set_log_drain(app_row.cache_id, self.encrypt_optional(log_drain))
            self.caches[app_row.cache_id].app = App(
                app_row.name, app_row.release, config, log_drain
            )
        if legacy:
            repository.forget_overwritten()
        for alert_row in repository.alert_settings():
            if alert_row.cache_id in self.caches:
                self.alert_settings[alert_row.cache_id] = AlertSettings.from_stored(
                    alert_row.rules, self.decrypt_optional(alert_row.webhook_enc)
                )
        for cache in self.caches.values():
            self.bus.publish(created_event(cache))
            for credential in cache.credentials:
                self.bus.publish(added_event(credential))
        return warnings

    # -- queries ------------------------------------------------------------------------
    def list_caches(self) -> list[Cache]:
        return list(self.caches.values())

    def page_caches(
        self, q: str | None = None, cursor: str | None = None, limit: int = DEFAULT_PAGE
    ) -> CachePage:
        """One page of the caches by name, filtered by ``q`` (``backend.control.listing``)."""
        clusters = [cluster.name for cluster in self.topology.clusters()]
        return self.index.page(self.caches, q, cursor, limit, clusters)

    def get_cache(self, cache_id: str) -> Cache:
        cache = self.caches.get(cache_id)
        if cache is None:
            raise NotFound(f"no cache with id {cache_id!r}")
        return cache

    def index_sso(self, cache: Cache, previous_hash: str | None = None) -> None:
        """Find ``cache`` by its current dashboard hash (and no longer by
        ``previous_hash``): for ``Follower``, which adds caches and rotations another
        process made."""
        if previous_hash is not None:
            self._by_sso.pop(previous_hash, None)
        self._by_sso[cache.sso_hash] = cache

    def unindex_sso(self, cache: Cache) -> None:
        self._by_sso.pop(cache.sso_hash, None)

    def cache_by_sso(self, secret: str) -> Cache:
        """The cache whose dashboard secret this is; its hash is what the database keeps.

        Found by the hash (a dict lookup reveals nothing of a secret whose SHA-256 it
        hashes), then confirmed by a constant-time compare with the cache's current hash
        and that the cache is still one of ours."""
        wanted = sso_hash(secret)
        cache = self._by_sso.get(wanted)
        if (
            cache is None
            or not hmac.compare_digest(cache.sso_hash, wanted)
            or self.caches.get(cache.id) is not cache
        ):
            raise NotFound("unknown or expired dashboard URL")
        return cache

    def servers(self, cache: Cache) -> str:
        """What clients of the cache are told: what its app was told (the service's value,
        the same from every process), or, before it has an app, this process's endpoint."""
        app = cache.app
        told = app.config_vars.get(apps.SERVERS_VAR) if app is not None else None
        return told or self.advertised_servers(cache)

    def advertised_servers(self, cache: Cache) -> str:
        """The region endpoint this process advertises (--advertise-host and -port)."""
        return self.endpoints.get(cache.region, "")

    def tls_servers(self, cache: Cache) -> str | None:
        return self.tls_endpoints.get(cache.region)

    def dashboard_url(self, cache: Cache) -> str:
        return f"{self.api_base_url}/dashboard/{self.secrets.sso_secret(cache.id, cache.sso_nonce)}"

    def least_loaded(self, clusters: list[Cluster], ignore: Cache | None = None) -> Cluster:
        """The cluster with the least load (then by name). A cluster's load is the memory
        promised to the caches on it (the sum of plan limits) rather than used, so a
        placement stays right when a cache fills up later; ``ignore`` leaves out the cache
        being placed. Every cluster's load comes from one pass over the caches."""
        loads = dict.fromkeys((c.name for c in clusters), 0)
        for cache in self.caches.values():
            if cache.cluster in loads and cache is not ignore:
                loads[cache.cluster] += cache.limit_bytes
        return min(clusters, key=lambda c: (loads[c.name], c.name))

    def logs(self, cache: Cache, after_id: int | None = None, limit: int = 100) -> list[LogRow]:
        if not 1 <= limit <= MAX_LOG_PAGE:
            raise Invalid(f"limit must be between 1 and {MAX_LOG_PAGE}")
        return self.repository.logs(cache.id, after_id, limit)

    def usage(self, cache: Cache) -> Usage:
        """Asked of the data plane, which holds the items."""
        return self.dataplane.usage(cache.id)

    def key_activity(
        self, cache: Cache, separator: bytes = b":"
    ) -> tuple[KeyReport | None, dict[str, tuple[int, int]]]:
        """The owner's Keys view: asking (re)starts sampling on the data plane, which
        answers from the next commands on; hits and misses per command are always kept."""
        self.bus.publish(KeyTrackingRequested(cache.id, separator))
        return self.dataplane.key_report(cache.id), self.dataplane.command_counts(cache.id)

    def releases(self, cache: Cache) -> list[ReleaseRow]:
        """The app's releases, newest first."""
        return self.repository.releases(cache.id)

    # -- caches -------------------------------------------------------------------------
    def create_cache(self, name: str, plan: str, region_name: str | None = None) -> Cache:
        if not NAME_PATTERN.fullmatch(name):
            raise Invalid(
                "name must be 1-63 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        if plan not in PLANS:
            raise Invalid(f"unknown plan {plan!r}; plans are {', '.join(PLANS)}")
        region = (
            self.topology.regions[0] if region_name is None else self.topology.region(region_name)
        )
        if region is None:
            known = ", ".join(r.name for r in self.topology.regions)
            raise Invalid(f"unknown region {region_name!r}; regions are {known}")
        if self.repository.cache_name_taken(name):
            raise Conflict(f"a cache named {name!r} already exists")
        cluster = self.least_loaded(region.clusters)
        now = timestamp()
        nonce = new_nonce()
        cache = Cache(new_cache_id(), name, plan, region.name, cluster.name, nonce, "", now)
        cache.sso_hash = sso_hash(self.secrets.sso_secret(cache.id, nonce))
        credential = self._new_credential(cache, primary=True, now=now)
        cache.credentials.append(credential)
        with self.transaction():
            row = CacheRow(
                cache.id, name, plan, region.name, cluster.name, nonce, cache.sso_hash, now
            )
            self.repository.insert_cache(row)
            self._insert_credential(credential)
            self.publish(created_event(cache))
            self.publish(added_event(credential))
            self.log(cache.id, f"Cache {name} created on plan {plan} in cluster {cluster.name}")
            app = self._create_app(cache)

            def register() -> None:
                cache.app = app
                self.caches[cache.id] = cache
                self._by_sso[cache.sso_hash] = cache
                self.index.add(cache)
                self.credentials[credential.username] = credential

            self.on_commit(register)
        return cache

    def delete_cache(self, cache: Cache) -> None:
        """Delete a cache with its credentials, app and logs; its items and live sessions go.

        Nothing is logged to the cache's own log: it is deleted with it.
        """
        with self.transaction():
            self.repository.delete_cache(cache.id)
            self.publish(
                CacheDeleted(cache.id, cache.cluster, tuple(c.username for c in cache.credentials))
            )

            def forget() -> None:
                del self.caches[cache.id]
                self._by_sso.pop(cache.sso_hash, None)
                self.alert_settings.pop(cache.id, None)
                self.index.remove(cache)
                for credential in cache.credentials:
                    self.credentials.pop(credential.username, None)

            self.on_commit(forget)

    def flush(self, cache: Cache, origin: str) -> str:
        """Flush a cache's items on its cluster; returns the hostname of the proxy that ran it."""
        hostname = self._flushing_proxy(cache.cluster)
        self.record_flush(cache.id, hostname, origin)
        return hostname

    def _flushing_proxy(self, cluster_name: str) -> str:
        """The proxy named in a flush's log line: the one the data plane would choose, or,
        for a cluster another process runs (``--clusters``) or whose proxies are all down,
        the cluster's first proxy, as which proxy of it runs the flush is not known here."""
        proxy = self.dataplane.choose_proxy(cluster_name)
        if proxy is not None:
            return proxy.hostname
        cluster = self.topology.cluster(cluster_name)
        return cluster.proxies[0].hostname if cluster is not None else cluster_name

    def record_flush(self, cache_id: str, proxy: str, origin: str) -> None:
        """Log a flush and publish it; with ``CLIENT_FLUSH_ORIGIN`` the data plane reports
        one it has already run."""
        with self.transaction():
            self._log_flush(cache_id, proxy, origin)

    def _log_flush(self, cache_id: str, proxy: str, origin: str) -> None:
        """The flush line of the app log: names the proxy and the origin (PRODUCT §1.5)."""
        self.log(
            cache_id,
            f"Cache flushed on proxy {proxy} (origin: {origin})",
            origin=origin,
            proxy=proxy,
        )
        cache = self.caches.get(cache_id)
        if cache is not None:
            self.publish(CacheFlushed(cache_id, cache.cluster, origin, proxy))

    # -- moving a cache to another cluster of its region --------------------------------
    # The target is the least loaded cluster (see ``least_loaded``), never the current one
    # and never a red one. The old cluster's copy is flushed (origin ``admin operation``)
    # and dropped; live sessions are closed, so clients reconnect through the unchanged
    # region endpoint and land on the new cluster, empty.
    def move_refusal(self, cache: Cache) -> str | None:
        """Why this cache cannot move now, or None if it can."""
        if not cache.paid:
            return "moving a cache is available on paid plans only; this cache is on the free plan"
        if not self._move_candidates(cache):
            return f"region {cache.region} has no other cluster that is not red"
        return None

    def _move_candidates(self, cache: Cache) -> list[Cluster]:
        region = self.topology.region(cache.region)
        clusters = region.clusters if region is not None else []
        return [c for c in clusters if c.name != cache.cluster and not self.cluster_is_red(c.name)]

    def migrate(self, cache: Cache) -> str:
        """Move the cache; returns the new cluster's name."""
        reason = self.move_refusal(cache)
        if reason is not None:
            raise (Forbidden if not cache.paid else Conflict)(reason)
        target = self.least_loaded(self._move_candidates(cache), ignore=cache)
        old_cluster = cache.cluster
        proxy = self._flushing_proxy(old_cluster)
        with self.transaction():
            self.repository.set_cache_cluster(cache.id, target.name)
            self.log(
                cache.id, f"Cache {cache.name} moving from cluster {old_cluster} to {target.name}"
            )
            self._log_flush(cache.id, proxy, "admin operation")
            self.publish(CacheMoved(cache.id, old_cluster, target.name, proxy))
            self.on_commit(lambda: setattr(cache, "cluster", target.name))
        return target.name

    # -- credentials --------------------------------------------------------------------
    def _find_credential(self, cache: Cache, username: str) -> Credential:
        credential = cache.credential(username)
        if credential is None:
            raise NotFound(f"cache {cache.name} has no credential {username!r}")
        return credential

    def add_credential(self, cache: Cache) -> Credential:
        credential = self._new_credential(cache, primary=False, now=timestamp())
        with self.transaction():
            self._insert_credential(credential)
            self.log(cache.id, f"Credential {credential.username} added")
            self.publish(added_event(credential))

            def register() -> None:
                cache.credentials.append(credential)
                self.credentials[credential.username] = credential

            self.on_commit(register)
        return credential

    def set_capabilities(
        self,
        cache: Cache,
        username: str,
        write: bool | None,
        flush: bool | None,
        api: bool | None = None,
    ) -> Credential:
        """Fields left as None keep their value. The primary always has ``api``: it is the
        owner's own credential (the one in the app's config vars), and a cache whose every
        credential lost it could be managed only through the dashboard URL."""
        credential = self._find_credential(cache, username)
        new_write = credential.write if write is None else write
        new_flush = credential.flush if flush is None else flush
        new_api = credential.api if api is None else api
        if credential.primary and not new_api:
            raise Conflict(
                "the primary credential always has the api capability: promote another "
                "credential first"
            )
        with self.transaction():
            self.repository.set_capabilities(username, new_write, new_flush, new_api)
            self.log(
                cache.id,
                f"Credential {username} capabilities: write={_on_off(new_write)}, "
                f"flush={_on_off(new_flush)}, api={_on_off(new_api)}",
            )
            self.publish(CapabilitiesChanged(cache.id, username, new_write, new_flush, new_api))

            def apply() -> None:
                credential.write, credential.flush = new_write, new_flush
                credential.api = new_api

            self.on_commit(apply)
        return credential

    def delete_credential(self, cache: Cache, username: str) -> int:
        """Delete a secondary credential; its live connections are closed (returns how many:
        the data plane closes them when it hears ``CredentialRevoked``)."""
        credential = self._find_credential(cache, username)
        if credential.primary:
            raise Conflict(
                "the primary credential cannot be deleted: promote another credential first"
            )
        live = self.dataplane.sessions_of(username)
        with self.transaction():
            self.repository.delete_credential(username)
            self.log(cache.id, f"Credential {username} deleted")
            self.publish(CredentialRevoked(cache.id, username))

            def forget() -> None:
                cache.credentials.remove(credential)
                del self.credentials[username]

            self.on_commit(forget)
        return live

    def promote(self, cache: Cache, username: str) -> Credential:
        """Make a secondary the primary and push it to the app (the old primary keeps
        working). Computed on the new primary, committed, then applied: the records change
        only once the database has."""
        credential = self._find_credential(cache, username)
        if credential.primary:
            raise Conflict(f"credential {username} is already the primary")
        old = cache.primary()
        with self.transaction():
            self.repository.set_primary(cache.id, username)
            self.log(
                cache.id,
                f"Credential {username} promoted to primary ({old.username} is now a secondary)",
            )
            self.publish(PrimaryPromoted(cache.id, username, old.username))
            if not credential.api:  # a primary always has it (``PrimaryPromoted`` says so);
                # the old primary keeps its own
                write, flush = credential.write, credential.flush
                self.repository.set_capabilities(username, write, flush, True)

            def apply() -> None:
                old.primary, credential.primary = False, True
                credential.api = True

            self.on_commit(apply)
            self._push_config(cache, f"credential {username} promoted", primary=credential)
        return credential

    def _new_credential(self, cache: Cache, primary: bool, now: str) -> Credential:
        username = new_username()
        while username in self.credentials or self.repository.username_taken(username):
            username = new_username()
        return Credential(
            username, new_password().encode(), cache.id, primary, True, True, now, api=primary
        )

    def _insert_credential(self, credential: Credential) -> None:
        self.repository.insert_credential(
            CredentialRow(
                credential.username,
                credential.cache_id,
                self.secrets.encrypt(credential.password),
                credential.primary,
                credential.write,
                credential.flush,
                credential.created_at,
                credential.api,
            )
        )

    # -- dashboard SSO ------------------------------------------------------------------
    def rotate_sso(self, cache: Cache) -> str:
        """A new secret (the old URL stops working at once); returns the new dashboard URL.
        The secret itself is never logged."""
        nonce = new_nonce()
        digest = sso_hash(self.secrets.sso_secret(cache.id, nonce))
        with self.transaction():
            self.repository.set_sso(cache.id, nonce, digest)
            self.log(cache.id, "Dashboard SSO secret rotated; the previous dashboard URL is void")
            self.publish(SsoRotated(cache.id))

            def apply() -> None:
                self._by_sso.pop(cache.sso_hash, None)
                cache.sso_nonce, cache.sso_hash = nonce, digest
                self._by_sso[digest] = cache

            self.on_commit(apply)
        return self.dashboard_url(cache)

    # -- provider apps (see ``apps``) ---------------------------------------------------
    def _create_app(self, cache: Cache) -> App:
        """The app of a new cache, at release 1; call inside a transaction."""
        wanted = apps.desired_config(
            self.advertised_servers(cache), self.tls_servers(cache), cache.primary()
        )
        app = App(f"app-{cache.name}", 1, wanted)
        config = self.secrets.encrypt(json.dumps(app.config_vars).encode())
        self.repository.insert_app(AppRow(cache.id, app.name, app.release, config, None))
        self.repository.insert_release(cache.id, 1, "Add cachier add-on", timestamp())
        self.log(cache.id, f"Config vars {', '.join(app.config_vars)} set on app {app.name}")
        return app

    def _push_config(
        self,
        cache: Cache,
        reason: str,
        primary: Credential | None = None,
        servers: str | None = None,
    ) -> list[str]:
        """Push changed config vars: a new release and a restart. Returns the names changed.

        Call inside a transaction, after the change that caused it; ``primary`` is the
        primary the change is making (the records still hold the old one until commit).
        """
        app = cache.app
        assert app is not None
        wanted = apps.desired_config(
            servers or self.servers(cache), self.tls_servers(cache), primary or cache.primary()
        )  # the servers the app has, unless the change is to them
        changed = apps.changed_names(app.config_vars, wanted)
        if not changed:
            return []
        release = app.release + 1
        config = self.secrets.encrypt(json.dumps(wanted).encode())
        self.repository.update_app_config(cache.id, release, config)
        description = f"Set {', '.join(changed)} config vars ({reason})"
        self.repository.insert_release(cache.id, release, description, timestamp())
        self.log(cache.id, f"Config vars {', '.join(changed)} pushed to app {app.name} ({reason})")
        self.log(cache.id, f"Release v{release} created: {description}")
        self.log(cache.id, f"App {app.name} restarted to pick up release v{release}")

        def apply() -> None:
            app.config_vars, app.release = wanted, release

        self.on_commit(apply)
        return changed

    def servers_differ(self) -> tuple[str, str] | None:
        """(what an app's config says, what this process advertises) for the first cache
        whose MEMCACHIER_SERVERS is not what this process would hand out; None if none."""
        for cache in self.list_caches():
            app = cache.app
            told = app.config_vars.get(apps.SERVERS_VAR) if app is not None else None
            mine = self.advertised_servers(cache)
            if told and mine and told != mine:
                return told, mine
        return None

    def refresh_servers(self) -> None:
        """After start-up: endpoints may listen elsewhere, be advertised under another name,
        or gain or lose TLS since last time; tell the apps (existing ones included)."""
        for cache in self.list_caches():
            if cache.app is not None and self.advertised_servers(cache):
                with self.transaction():
                    servers = self.advertised_servers(cache)
                    self._push_config(cache, "endpoint address changed", servers=servers)

    def set_log_drain(self, cache: Cache, url: str | None) -> App:
        app = cache.app
        assert app is not None
        if url is not None:
            apps.check_drain_url(url)
        with self.transaction():
            self.repository.set_log_drain(cache.id, self.encrypt_optional(url))
            where = f"to {urlsplit(url).hostname}" if url else "removed"
            self.log(cache.id, f"Log drain of app {app.name} {where}")  # never the URL's secrets
            self.record_audit(cache.id, "log drain changed", f"{app.name}: {where}")
            self.on_commit(lambda: setattr(app, "log_drain", url))
        return app

    # -- alerts (evaluated by ``backend.alerts``) ---------------------------------------
    def alerts_of(self, cache: Cache) -> AlertSettings:
        return self.alert_settings.get(cache.id, NO_ALERTS)

    def set_alerts(self, cache: Cache, settings: AlertSettings) -> AlertSettings:
        """Replace the cache's thresholds and webhook. The webhook URL is checked like a log
        drain's (``apps.check_drain_url``; the API also vets where it resolves), stored
        encrypted and never written to a log: the log line names its host only."""
        settings.check()
        if settings.webhook_url is not None:
            check_webhook_url(settings.webhook_url)
        row = AlertSettingsRow(
            cache.id, settings.rules_json(), self.encrypt_optional(settings.webhook_url)
        )
        with self.transaction():
            self.repository.set_alert_settings(row)
            hook = settings.webhook_url
            where = f"webhook to {urlsplit(hook).hostname}" if hook else "no webhook"
            detail = f"{settings.describe()}; {where}"
            self.log(cache.id, f"Alert thresholds set: {detail}")
            self.record_audit(cache.id, "alerts changed", detail)
            self.on_commit(lambda: self.alert_settings.__setitem__(cache.id, settings))
        return settings

    # -- secrets ------------------------------------------------------------------------
    def credential_record(self, row: CredentialRow) -> Credential:
        """A stored credential as a record, its password decrypted (loading, following)."""
        return Credential(
            row.username,
            self.secrets.decrypt(row.password_enc),
            row.cache_id,
            row.is_primary,
            row.can_write,
            row.can_flush,
            row.created_at,
            api=row.can_api,
        )

    def encrypt_optional(self, text: str | None) -> bytes | None:
        return None if text is None else self.secrets.encrypt(text.encode())

    def decrypt_optional(self, token: bytes | None) -> str | None:
        return None if token is None else self.secrets.decrypt(token).decode()


def check_webhook_url(url: str) -> None:
    """The same rule as a log drain's URL (Invalid, in words, before anything resolves it)."""
    try:
        apps.check_drain_url(url)
    except Invalid as exc:
        raise Invalid(str(exc).replace("a log drain URL", "a webhook URL")) from None


def cache_record(row: CacheRow) -> Cache:
    """A stored cache as a record, without its credentials and app (loading, following)."""
    return Cache(
        row.id,
        row.name,
        row.plan,
        row.region,
        row.cluster,
        row.sso_nonce,
        row.sso_hash,
        row.created_at,
    )


def created_event(cache: Cache) -> CacheCreated:
    return CacheCreated(cache.id, cache.name, cache.plan, cache.region, cache.cluster)


def added_event(credential: Credential) -> CredentialAdded:
    return CredentialAdded(
        credential.cache_id,
        credential.username,
        credential.password,
        credential.primary,
        credential.write,
        credential.flush,
        credential.api,
    )


def _on_off(value: bool) -> str:
    return "on" if value else "off"


__all__ = [
    "CLIENT_FLUSH_ORIGIN",
    "ControlPlane",
    "DataPlaneView",
    "LOG_SOURCE",
    "NAME_PATTERN",
    "added_event",
    "cache_record",
    "created_event",
]
