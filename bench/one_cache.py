"""A data plane holding one cache and its credential (``BENCHUSER`` / ``secret``), in
process: what the benches that time the hot path without a socket or a loop start from.

``backend`` is imported when called, so a bench that runs itself with another tree on
``PYTHONPATH`` (``latency_cost.py --before``) gets that tree's data plane.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from backend.dataplane import DataPlane
    from backend.topology import Cluster

USERNAME = "BENCHUSER"
PASSWORD = b"secret"
LOGIN = b"set BENCHUSER 0 0 6\r\nsecret\r\n"  # the ASCII set-auth of that credential


def one_cache_dataplane() -> tuple[DataPlane, Cluster]:
    """The data plane and the cluster its one ``1gb`` cache is on; throttles that never
    refuse (a bench logs in as often as it likes)."""
    from backend.control.models import Cache, Credential
    from backend.dataplane import DataPlane
    from backend.throttle import AuthThrottle
    from backend.topology import default_topology

    dataplane = DataPlane(default_topology(), AuthThrottle(limit=10**9, user_limit=10**9))
    cluster = next(iter(dataplane.topology.clusters()))
    cache = Cache("cbench", "bench", "1gb", cluster.region, cluster.name)
    credential = Credential(USERNAME, PASSWORD, cache.id)
    cache.credentials.append(credential)
    dataplane.credentials[credential.username] = credential
    dataplane.caches[cache.id] = cache
    return dataplane, cluster
