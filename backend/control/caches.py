"""Caches: creation and placement, lookup, the registry the data plane reads, flush records."""

from __future__ import annotations

import hmac
import re
from datetime import UTC, datetime

from backend.control.db import CacheRow, CredentialRow, Database
from backend.control.errors import Conflict, Invalid, NotFound
from backend.control.models import PLANS, Cache, Credential
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


def timestamp() -> str:
    """RFC 3339 in UTC with milliseconds, as log lines carry it."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
        dataplane.record_flush = lambda cache_id, proxy: self.record_flush(
            cache_id, proxy, "memcache client"
        )

    # -- loading ------------------------------------------------------------------------
    def load(self) -> list[str]:
        """Read caches and credentials into memory; returns warnings about the topology."""
        warnings = []
        for row in self.db.caches():
            cache = Cache(row.id, row.name, row.plan, row.region, row.cluster, row.sso_nonce,
                          row.sso_hash, row.created_at)  # fmt: skip
            region = self.topology.region(cache.region)
            if region is None:
                warnings.append(f"cache {cache.name}: region {cache.region} is not in the topology")
            elif self.topology.cluster(cache.cluster) not in region.clusters:
                cluster = self._least_loaded(region.clusters)
                warnings.append(
                    f"cache {cache.name}: cluster {cache.cluster} is gone, now on {cluster.name}"
                )
                with self.db.transaction():
                    self.db.set_cache_cluster(cache.id, cluster.name)
                    self._log(
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

    def cluster_load(self, cluster: Cluster) -> int:
        """Load for placement = memory promised to the caches on it (sum of plan limits)."""
        return sum(c.limit_bytes for c in self.caches.values() if c.cluster == cluster.name)

    def _least_loaded(self, clusters: list[Cluster]) -> Cluster:
        return min(clusters, key=lambda c: (self.cluster_load(c), c.name))

    # -- changes ------------------------------------------------------------------------
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
        cluster = self._least_loaded(region.clusters)
        now = timestamp()
        nonce = new_nonce()
        cache = Cache(new_cache_id(), name, plan, region.name, cluster.name, nonce, "", now)
        cache.sso_hash = sso_hash(self.secrets.sso_secret(cache.id, nonce))
        credential = self._new_credential(cache, primary=True, now=now)
        with self.db.transaction():
            self.db.insert_cache(CacheRow(cache.id, name, plan, region.name, cluster.name,
                                          nonce, cache.sso_hash, now))  # fmt: skip
            self._insert_credential(credential)
            self._log(cache.id, f"Cache {name} created on plan {plan} in cluster {cluster.name}")
        cache.credentials.append(credential)
        self.caches[cache.id] = cache
        self.credentials[credential.username] = credential
        return cache

    def _new_credential(self, cache: Cache, primary: bool, now: str) -> Credential:
        username = new_username()
        while username in self.credentials or self.db.username_taken(username):
            username = new_username()
        return Credential(username, new_password().encode(), cache.id, primary, True, True, now)

    def _insert_credential(self, credential: Credential) -> None:
        self.db.insert_credential(
            CredentialRow(credential.username, credential.cache_id,
                          self.secrets.encrypt(credential.password), credential.primary,
                          credential.write, credential.flush, credential.created_at)
        )  # fmt: skip

    def add_credential(self, cache: Cache) -> Credential:
        credential = self._new_credential(cache, primary=False, now=timestamp())
        with self.db.transaction():
            self._insert_credential(credential)
            self._log(cache.id, f"Credential {credential.username} added")
        cache.credentials.append(credential)
        self.credentials[credential.username] = credential
        return credential

    def set_capabilities(self, cache: Cache, username: str, write: bool | None,
                         flush: bool | None) -> Credential:  # fmt: skip
        """Change a credential's capabilities; live sessions see it on their next command."""
        credential = self._credential_of(cache, username)
        new_write = credential.write if write is None else write
        new_flush = credential.flush if flush is None else flush
        with self.db.transaction():
            self.db.set_capabilities(username, new_write, new_flush)
            self._log(
                cache.id,
                f"Credential {username} capabilities: write={'on' if new_write else 'off'}, "
                f"flush={'on' if new_flush else 'off'}",
            )
        credential.write, credential.flush = new_write, new_flush
        return credential

    def _credential_of(self, cache: Cache, username: str) -> Credential:
        credential = cache.credential(username)
        if credential is None:
            raise NotFound(f"cache {cache.name} has no credential {username!r}")
        return credential

    def flush(self, cache: Cache, origin: str) -> str:
        """Flush a cache's items on its cluster; returns the hostname of the proxy that ran it."""
        proxy = self.dataplane.choose_proxy(cache.cluster)
        assert proxy is not None
        self.dataplane.space_for(cache).flush()
        self.record_flush(cache.id, proxy.hostname, origin)
        return proxy.hostname

    def record_flush(self, cache_id: str, proxy: str, origin: str) -> None:
        with self.db.transaction():
            self._log(cache_id, f"Cache flushed on proxy {proxy} (origin: {origin})",
                      origin=origin, proxy=proxy)  # fmt: skip

    def _log(self, cache_id: str, message: str, origin: str | None = None,
             proxy: str | None = None) -> None:  # fmt: skip
        self.db.insert_log(cache_id, timestamp(), LOG_SOURCE, message, origin, proxy)
