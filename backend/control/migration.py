"""Moving a cache to another cluster of its region ("move cache").

The target is the least loaded cluster (see ``ControlPlane.cluster_load``), never the
current one and never a red one. The old cluster's copy is flushed (origin
``admin operation``) and dropped; live sessions are closed, so clients reconnect through
the unchanged region endpoint and land on the new cluster, empty.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from backend.control.errors import Conflict, Forbidden
from backend.control.models import Cache

if TYPE_CHECKING:
    from backend.control.caches import ControlPlane


def refusal(control: ControlPlane, cache: Cache) -> str | None:
    """Why this cache cannot move now, or None if it can."""
    if not cache.paid:
        return "moving a cache is available on paid plans only; this cache is on the free plan"
    if not _candidates(control, cache):
        return f"region {cache.region} has no other cluster that is not red"
    return None


def _candidates(control: ControlPlane, cache: Cache) -> list:
    region = control.topology.region(cache.region)
    clusters = region.clusters if region is not None else []
    return [c for c in clusters if c.name != cache.cluster and not control.cluster_is_red(c.name)]


def migrate(control: ControlPlane, cache: Cache) -> str:
    """Move the cache; returns the new cluster's name."""
    reason = refusal(control, cache)
    if reason is not None:
        raise (Forbidden if not cache.paid else Conflict)(reason)
    target = control.least_loaded(_candidates(control, cache), ignore=cache)
    old_cluster = cache.cluster
    dataplane = control.dataplane
    proxy = dataplane.choose_proxy(old_cluster)
    with control.transaction():
        control.db.set_cache_cluster(cache.id, target.name)
        control.log(
            cache.id, f"Cache {cache.name} moving from cluster {old_cluster} to {target.name}"
        )
        control.log_flush(cache.id, proxy.hostname, "admin operation")
    dataplane.engine_for(cache).flush()
    dataplane.stores[old_cluster].drop(cache.id)
    cache.cluster = target.name
    for credential in cache.credentials:
        dataplane.disconnect(credential.username)
    return target.name
