"""The control plane's core: the registries the data plane reads, caches, placement, logs.

Operations on parts of a cache live in their own modules (credentials, apps, sso,
migration) as functions of a ``ControlPlane``; this class owns the state they share.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from backend.control import apps
from backend.control.db import AppRow, CacheRow, CredentialRow, Database, LogRow
from backend.control.errors import Conflict, Invalid, NotFound
from backend.control.models import PLANS, App, Cache, Credential, timestamp
from backend.control.secrets import (
    Secrets,
    new_cache_id,
    new_nonce,
    new_password,
    new_username,
    sso_hash,
)
from backend.dataplane import DataPlane
from backend.topology import Cluster, Topology

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
LOG_SOURCE = "cachier"
MAX_LOG_PAGE = 1000

# Called with (cache, log line) after each committed log line: the log drains listen here.
LogListener = Callable[[Cache, LogRow], None]


class ControlPlane:
    def __init__(self, db: Database, secrets: Secrets, dataplane: DataPlane) -> None:
        self.db = db
        self.secrets = secrets
        self.dataplane = dataplane
        self.topology: Topology = dataplane.topology
        self.caches = dataplane.caches  # shared registries: the data plane reads them live
        self.credentials = dataplane.credentials
        # Filled in by the service once listeners are bound.
        self.api_base_url = ""
        self.endpoints: dict[str, str] = {}
        self.tls_endpoints: dict[str, str] = {}
        self.log_listeners: list[LogListener] = []
        # The status monitor answers whether a cluster is red; until it runs, none is.
        self.cluster_is_red: Callable[[str], bool] = lambda cluster: False
        self._committed_lines: list[tuple[str, LogRow]] = []
        dataplane.record_flush = lambda cache_id, proxy: self.record_flush(
            cache_id, proxy, "memcache client"
        )

    # -- loading ------------------------------------------------------------------------
    def load(self) -> list[str]:
        """Read caches, credentials and apps into memory; returns warnings about topology."""
        warnings = []
        for row in self.db.caches():
            cache = Cache(row.id, row.name, row.plan, row.region, row.cluster, row.sso_nonce,
                          row.sso_hash, row.created_at)  # fmt: skip
            region = self.topology.region(cache.region)
            if region is None:
                warnings.append(f"cache {cache.name}: region {cache.region} is not in the topology")
            elif self.topology.cluster(cache.cluster) not in region.clusters:
                cluster = self.least_loaded(region.clusters)
                warnings.append(
                    f"cache {cache.name}: cluster {cache.cluster} is gone, now on {cluster.name}"
                )
                with self.transaction():
                    self.db.set_cache_cluster(cache.id, cluster.name)
                    self.log(
                        cache.id,
                        f"Cache placed on cluster {cluster.name}: "
                        f"its cluster {cache.cluster} left the topology",
                    )
                cache.cluster = cluster.name
            self.caches[cache.id] = cache
        for row in self.db.credentials():
            credential = Credential(
                row.username, self.secrets.decrypt(row.password_enc), row.cache_id,
                row.is_primary, row.can_write, row.can_flush, row.created_at,
            )  # fmt: skip
            self.credentials[credential.username] = credential
            self.caches[row.cache_id].credentials.append(credential)
        legacy = False
        for app_row in self.db.apps():
            config = json.loads(self.secrets.decrypt(app_row.config_enc))
            log_drain = self.decrypt_optional(app_row.log_drain_enc)
            if app_row.legacy_log_drain is not None:  # stored in plaintext by an older version
                log_drain, legacy = app_row.legacy_log_drain, True
                with self.db.transaction():
                    self.db.set_log_drain(app_row.cache_id, self.encrypt_optional(log_drain))
            self.caches[app_row.cache_id].app = App(app_row.name, app_row.release, config,
                                                    log_drain)  # fmt: skip
        if legacy:
            self.db.forget_overwritten()
        return warnings

    # -- queries ------------------------------------------------------------------------
    def list_caches(self) -> list[Cache]:
        return list(self.caches.values())

    def get_cache(self, cache_id: str) -> Cache:
        cache = self.caches.get(cache_id)
        if cache is None:
            raise NotFound(f"no cache with id {cache_id!r}")
        return cache

    def cache_by_sso(self, secret: str) -> Cache:
        """The cache whose dashboard secret this is; its hash is what the database keeps."""
        wanted = sso_hash(secret)
        for cache in self.caches.values():
            if hmac.compare_digest(cache.sso_hash, wanted):
                return cache
        raise NotFound("unknown or expired dashboard URL")

    def servers(self, cache: Cache) -> str:
        return self.endpoints.get(cache.region, "")

    def tls_servers(self, cache: Cache) -> str | None:
        return self.tls_endpoints.get(cache.region)

    def dashboard_url(self, cache: Cache) -> str:
        return f"{self.api_base_url}/dashboard/{self.secrets.sso_secret(cache.id, cache.sso_nonce)}"

    def cluster_load(self, cluster: Cluster, ignore: Cache | None = None) -> int:
        """A cluster's load = the memory promised to the caches on it (sum of plan limits).

        Promised rather than used memory, so a placement stays right when a cache fills up
        later; ``ignore`` leaves out the cache being placed.
        """
        return sum(
            c.limit_bytes
            for c in self.caches.values()
            if c.cluster == cluster.name and c is not ignore
        )

    def least_loaded(self, clusters: list[Cluster], ignore: Cache | None = None) -> Cluster:
        return min(clusters, key=lambda c: (self.cluster_load(c, ignore), c.name))

    def logs(self, cache: Cache, after_id: int | None = None, limit: int = 100) -> list[LogRow]:
        if not 1 <= limit <= MAX_LOG_PAGE:
            raise Invalid(f"limit must be between 1 and {MAX_LOG_PAGE}")
        return self.db.logs(cache.id, after_id, limit)

    # -- caches -------------------------------------------------------------------------
    def create_cache(self, name: str, plan: str, region_name: str | None = None) -> Cache:
        if not NAME_PATTERN.match(name):
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
        if self.db.cache_name_taken(name):
            raise Conflict(f"a cache named {name!r} already exists")
        cluster = self.least_loaded(region.clusters)
        now = timestamp()
        nonce = new_nonce()
        cache = Cache(new_cache_id(), name, plan, region.name, cluster.name, nonce, "", now)
        cache.sso_hash = sso_hash(self.secrets.sso_secret(cache.id, nonce))
        credential = self.new_credential(cache, primary=True, now=now)
        cache.credentials.append(credential)
        with self.transaction():
            self.db.insert_cache(CacheRow(cache.id, name, plan, region.name, cluster.name,
                                          nonce, cache.sso_hash, now))  # fmt: skip
            self.insert_credential(credential)
            self.log(cache.id, f"Cache {name} created on plan {plan} in cluster {cluster.name}")
            cache.app = apps.create(self, cache)
        self.caches[cache.id] = cache
        self.credentials[credential.username] = credential
        return cache

    def flush(self, cache: Cache, origin: str) -> str:
        """Flush a cache's items on its cluster; returns the hostname of the proxy that ran it."""
        proxy = self.dataplane.choose_proxy(cache.cluster)
        assert proxy is not None
        self.dataplane.engine_for(cache).flush()
        self.record_flush(cache.id, proxy.hostname, origin)
        return proxy.hostname

    def record_flush(self, cache_id: str, proxy: str, origin: str) -> None:
        with self.transaction():
            self.log_flush(cache_id, proxy, origin)

    def log_flush(self, cache_id: str, proxy: str, origin: str) -> None:
        """The flush line of the app log: names the proxy and the origin (PRODUCT §1.5)."""
        self.log(cache_id, f"Cache flushed on proxy {proxy} (origin: {origin})",
                 origin=origin, proxy=proxy)  # fmt: skip

    # -- credentials (shared by creation and the credentials module) ---------------------
    def new_credential(self, cache: Cache, primary: bool, now: str) -> Credential:
        username = new_username()
        while username in self.credentials or self.db.username_taken(username):
            username = new_username()
        return Credential(username, new_password().encode(), cache.id, primary, True, True, now)

    def insert_credential(self, credential: Credential) -> None:
        self.db.insert_credential(
            CredentialRow(credential.username, credential.cache_id,
                          self.secrets.encrypt(credential.password), credential.primary,
                          credential.write, credential.flush, credential.created_at)
        )  # fmt: skip

    def insert_app(self, cache: Cache, app: App) -> None:
        config = self.secrets.encrypt(json.dumps(app.config_vars).encode())
        drain = self.encrypt_optional(app.log_drain)
        self.db.insert_app(AppRow(cache.id, app.name, app.release, config, drain))

    def encrypt_optional(self, text: str | None) -> bytes | None:
        return None if text is None else self.secrets.encrypt(text.encode())

    def decrypt_optional(self, token: bytes | None) -> str | None:
        return None if token is None else self.secrets.decrypt(token).decode()

    # -- transactions and logs ----------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A database transaction; its log lines reach the listeners once it commits."""
        self._committed_lines.clear()
        with self.db.transaction():
            yield
        lines, self._committed_lines = self._committed_lines, []
        for cache_id, line in lines:
            cache = self.caches.get(cache_id)
            if cache is not None:
                for listener in self.log_listeners:
                    listener(cache, line)

    def log(self, cache_id: str, message: str, origin: str | None = None,
            proxy: str | None = None) -> None:  # fmt: skip
        """Append an app log line; call inside ``transaction()``."""
        t = timestamp()
        line_id = self.db.insert_log(cache_id, t, LOG_SOURCE, message, origin, proxy)
        self._committed_lines.append(
            (cache_id, LogRow(line_id, cache_id, t, LOG_SOURCE, message, origin, proxy))
        )
