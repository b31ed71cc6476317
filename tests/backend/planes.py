"""A data plane with caches and their engines, as ``CacheCreated`` leaves it, without the
control plane: what the analytics and metrics tests sample."""

from __future__ import annotations

from backend.control.models import Cache
from backend.dataplane import DataPlane
from backend.throttle import AuthThrottle
from backend.topology import default_topology


def dataplane(caches: int, plan: str = "100mb") -> DataPlane:
    """``caches`` caches ``c0``, ``c1``... (named ``n0``...) on the local clusters in turn;
    each engine made before its record, as the data plane does."""
    plane = DataPlane(default_topology(), AuthThrottle())
    clusters = [c.name for c in plane.topology.clusters()]
    for i in range(caches):
        cache = Cache(f"c{i}", f"n{i}", plan, "local", clusters[i % 2])
        plane.engine_for(cache)
        plane.caches[cache.id] = cache
    return plane
