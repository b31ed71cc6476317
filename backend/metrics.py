"""Prometheus metrics, read from live state at scrape time (nothing on the hot path).

A scrape runs on the control thread (``backend.loops``): it reads the data plane without
changing it (``DataPlane.caches_now``, ``peek_engine``; counters are plain ints).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from backend.dataplane import DataPlane
    from backend.monitor import Monitor

CACHE_COUNTERS = {
    "cmd_get": "get commands (keys requested)",
    "cmd_set": "storage commands",
    "cmd_delete": "delete commands",
    "cmd_flush": "flushes",
    "cmd_touch": "touch commands",
    "get_hits": "gets that found the key",
    "get_misses": "gets that missed",
    "evictions": "items evicted for memory",
    "bytes_read": "bytes received",
    "bytes_written": "bytes sent",
    "total_connections": "connections ever opened",
}
STATES = ("up", "slow", "down")
LIGHTS = ("green", "blue", "yellow", "red")


class ServiceCollector(Collector):
    def __init__(self, dataplane: DataPlane, monitor: Monitor) -> None:
        self.dataplane = dataplane
        self.monitor = monitor

    def collect(self) -> Iterator[Metric]:
        yield from self._caches()
        yield from self._auth()
        yield from self._status()

    def _caches(self) -> Iterator[Metric]:
        dataplane = self.dataplane
        counters = {
            name: CounterMetricFamily(f"cachier_cache_{name}", help_, labels=["cache"])
            for name, help_ in CACHE_COUNTERS.items()
        }
        gauges = {
            "items": GaugeMetricFamily("cachier_cache_items", "items stored", labels=["cache"]),
            "bytes": GaugeMetricFamily(
                "cachier_cache_bytes", "memory used by items", labels=["cache"]
            ),
            "limit": GaugeMetricFamily(
                "cachier_cache_limit_bytes", "the plan's memory limit", labels=["cache"]
            ),
            "connections": GaugeMetricFamily(
                "cachier_cache_connections", "open connections", labels=["cache"]
            ),
        }
        for cache in dataplane.caches_now():  # a copy: the serving loop changes the dict
            engine = dataplane.peek_engine(cache)
            if engine is None:  # a move in flight, or not heard of yet: next scrape
                continue
            stats = engine.stats
            usage = engine.usage()
            for name, family in counters.items():
                family.add_metric([cache.name], getattr(stats, name))
            gauges["items"].add_metric([cache.name], usage.items)
            gauges["bytes"].add_metric([cache.name], usage.bytes)
            gauges["limit"].add_metric([cache.name], usage.limit)
            gauges["connections"].add_metric([cache.name], stats.curr_connections)
        yield from counters.values()
        yield from gauges.values()

    def _auth(self) -> Iterator[Metric]:
        throttle = self.dataplane.throttle
        failures = CounterMetricFamily("cachier_auth_failures", "failed memcache logins")
        failures.add_metric([], throttle.total_failures)
        refused = CounterMetricFamily(
            "cachier_auth_throttled",
            "logins refused unchecked by brute-force protection, by the limit that refused them",
            labels=["scope"],
        )
        refused.add_metric(["address"], throttle.refused_by_address)
        refused.add_metric(["username"], throttle.refused_by_username)
        trusted = CounterMetricFamily(
            "cachier_auth_trusted_logins",
            "logins let through a full limit because their address "
            "had logged in with that username",
        )
        trusted.add_metric([], throttle.trusted_logins)
        yield failures
        yield refused
        yield trusted

    def _status(self) -> Iterator[Metric]:
        monitor = self.monitor
        latency = GaugeMetricFamily(
            "cachier_proxy_probe_latency_seconds",
            "latest probe round trip",
            labels=["proxy", "cluster"],
        )
        state = GaugeMetricFamily(
            "cachier_proxy_state",
            "1 for the proxy's current state",
            labels=["proxy", "cluster", "state"],
        )
        light = GaugeMetricFamily(
            "cachier_cluster_light",
            "1 for the cluster's current light",
            labels=["cluster", "light"],
        )
        for health in monitor.health.values():
            labels = [health.proxy.hostname, health.proxy.cluster.name]
            if health.latency_ms is not None:
                latency.add_metric(labels, health.latency_ms / 1000)
            for name in STATES:
                state.add_metric([*labels, name], 1.0 if health.state == name else 0.0)
        for name, status in monitor.clusters.items():
            for colour in LIGHTS:
                light.add_metric([name, colour], 1.0 if status.light == colour else 0.0)
        yield latency
        yield state
        yield light


def exposition(dataplane: DataPlane, monitor: Monitor) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(dataplane, monitor))
    return generate_latest(registry)
