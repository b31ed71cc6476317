"""Regions contain clusters, clusters contain proxies.

The topology is static configuration (default, demo, or a TOML file); which cluster each
cache lives on is control-plane state kept in the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


class TopologyError(ValueError):
    """The topology file is unreadable or describes an impossible layout."""


@dataclass(eq=False)
class Proxy:
    hostname: str
    cluster: Cluster
    port: int = 0  # 0: an ephemeral port chosen when the listener binds
    address: str = ""  # "host:port", known once the listener is bound

    def __repr__(self) -> str:
        return f"Proxy({self.hostname})"


@dataclass(eq=False)
class Cluster:
    name: str
    region: Region
    proxies: list[Proxy] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"Cluster({self.name})"


@dataclass(eq=False)
class Region:
    name: str
    clusters: list[Cluster] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"Region({self.name})"


@dataclass
class Topology:
    regions: list[Region]

    def region(self, name: str) -> Region | None:
        return next((r for r in self.regions if r.name == name), None)

    def cluster(self, name: str) -> Cluster | None:
        return next((c for r in self.regions for c in r.clusters if c.name == name), None)

    def proxy(self, hostname: str) -> Proxy | None:
        return next((p for p in self.proxies() if p.hostname == hostname), None)

    def clusters(self) -> list[Cluster]:
        return [c for r in self.regions for c in r.clusters]

    def proxies(self) -> list[Proxy]:
        return [p for c in self.clusters() for p in c.proxies]


def proxy_hostname(index: int, cluster: str, region: str) -> str:
    return f"proxy-{index}.{cluster}.{region}.cachier.internal"


def build(spec: dict[str, dict[str, int | list[dict]]]) -> Topology:
    """Build a topology from {region: {cluster: proxy count | [proxy specs]}}."""
    regions = []
    for region_name, clusters in spec.items():
        region = Region(region_name)
        for cluster_name, proxies in clusters.items():
            cluster = Cluster(cluster_name, region)
            if isinstance(proxies, int):
                proxies = [{} for _ in range(proxies)]
            for i, p in enumerate(proxies, start=1):
                hostname = p.get("hostname") or proxy_hostname(i, cluster_name, region_name)
                cluster.proxies.append(Proxy(hostname, cluster, int(p.get("port", 0))))
            region.clusters.append(cluster)
        regions.append(region)
    topology = Topology(regions)
    _validate(topology)
    return topology


def default_topology() -> Topology:
    return build({"local": {"local-a": 2, "local-b": 2}})


def demo_topology() -> Topology:
    return build(
        {
            "us-east-1": {"use1-a": 3, "use1-b": 3, "use1-c": 3},
            "eu-west-1": {"euw1-a": 3, "euw1-b": 3},
        }
    )


def load_topology(path: Path) -> Topology:
    """Read a TOML topology.

    Format::

        [[regions]]
        name = "us-east-1"
        [[regions.clusters]]
        name = "use1-a"
        proxies = 3                 # or a list of {hostname = "...", port = 0}
    """
    import tomllib  # here: the dashboard builds this parser on every start, rarely with a file

    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise TopologyError(f"cannot read topology file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise TopologyError(f"topology file {path} is not valid TOML: {exc}") from None
    spec: dict[str, dict] = {}
    try:
        for region in data["regions"]:
            clusters = spec.setdefault(str(region["name"]), {})
            for cluster in region["clusters"]:
                proxies = cluster.get("proxies", 1)
                if not isinstance(proxies, int | list):
                    raise TopologyError(
                        f"cluster {cluster['name']}: proxies must be a count or a list"
                    )
                clusters[str(cluster["name"])] = proxies
    except (KeyError, TypeError) as exc:
        raise TopologyError(f"topology file {path} lacks a required field: {exc}") from None
    return build(spec)


def _validate(topology: Topology) -> None:
    if not topology.regions:
        raise TopologyError("the topology needs at least one region")
    seen_clusters: set[str] = set()
    seen_hosts: set[str] = set()
    for region in topology.regions:
        if not region.clusters:
            raise TopologyError(f"region {region.name} has no clusters")
        for cluster in region.clusters:
            if cluster.name in seen_clusters:
                raise TopologyError(f"cluster name {cluster.name} is used twice")
            seen_clusters.add(cluster.name)
            if not cluster.proxies:
                raise TopologyError(f"cluster {cluster.name} has no proxies")
            for proxy in cluster.proxies:
                if proxy.hostname in seen_hosts:
                    raise TopologyError(f"proxy hostname {proxy.hostname} is used twice")
                seen_hosts.add(proxy.hostname)
    if len({r.name for r in topology.regions}) != len(topology.regions):
        raise TopologyError("region names must be unique")
