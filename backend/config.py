"""Service configuration: flags, environment and defaults in one typed object."""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs

from backend.control.database import DatabaseUrl, parse_database_url
from backend.topology import Topology, default_topology

ADMIN_TOKEN_ENV = "CACHIER_ADMIN_TOKEN"
# The demo's "recently resolved" window: short, so green returns within its timeline.
DEMO_RESOLVED_WINDOW = 30.0
# Bind hosts meaning "every interface": listening there is fine, telling a client to
# connect there is not (0.0.0.0 is no address of this machine seen from elsewhere).
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})


class AddressError(ValueError):
    """An advertised host or public URL that clients could not use; one readable line."""


class ClusterSelectionError(ValueError):
    """--clusters names a cluster the topology does not have; one readable line."""


def select_clusters(topology: Topology, names: str) -> frozenset[str]:
    """The clusters of ``--clusters a,b`` (comma-separated, blanks ignored), checked
    against the topology: an unknown name is refused with the list of valid ones."""
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    known = [c.name for c in topology.clusters()]
    unknown = [n for n in chosen if n not in known]
    if unknown or not chosen:
        what = f"unknown cluster {', '.join(map(repr, unknown))}" if unknown else "no cluster"
        raise ClusterSelectionError(
            f"--clusters: {what}; the topology's clusters are {', '.join(known)}"
        )
    return frozenset(chosen)


def format_address(host: str, port: int) -> str:
    """``host:port`` as clients write it: an IPv6 literal goes in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_advertise_host(host: str) -> str:
    """The host clients are told to connect to, checked: a name or an address, no port."""
    bare = host.strip()
    if bare.startswith("[") and bare.endswith("]"):
        bare = bare[1:-1]
    if bare in WILDCARD_HOSTS:
        raise AddressError(
            f"--advertise-host {host!r}: clients cannot connect to a wildcard "
            "address; give this machine's name or address"
        )
    if ":" in bare:
        try:
            ipaddress.IPv6Address(bare)
        except ValueError:
            raise AddressError(
                f"--advertise-host {host!r}: give a host name or address without a port "
                "(ports come from the port flags)"
            ) from None
    elif not bare or any(c.isspace() or c in "/@?#" for c in bare):
        raise AddressError(f"--advertise-host {host!r} is not a host name or address")
    return bare


def check_public_url(url: str) -> str:
    """The API's public base URL, checked: http(s), a usable host, no query or fragment.

    A path is kept (a reverse proxy may serve the API under one); the trailing slash goes,
    so ``url + "/dashboard/..."`` has exactly one.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AddressError(f"--public-url {url!r}: give an http:// or https:// URL with a host")
    if parts.query or parts.fragment:
        raise AddressError(f"--public-url {url!r}: a base URL has no query or fragment")
    if parts.hostname in WILDCARD_HOSTS:
        raise AddressError(f"--public-url {url!r}: clients cannot connect to a wildcard address")
    return url.strip().rstrip("/")


def _is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name, or a wildcard: reachable from elsewhere
        return False


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("cachier", appauthor=False))


@dataclass
class Config:
    data_dir: Path = field(default_factory=default_data_dir)
    host: str = "127.0.0.1"
    api_port: int = 8080
    endpoint_port: int = 11211  # region i listens on endpoint_port + i (0: ephemeral ports)
    admin_token: str = ""
    topology: Topology = field(default_factory=default_topology)
    auth_timeout: float = 5.0
    auth_failure_limit: int = 10  # failed authentications per source address ...
    auth_failure_window: float = 60.0  # ... within this many seconds before refusing it
    # Failed authentications per username (from any address) within the same window.
    auth_user_failure_limit: int = 30
    # Accept control characters in ASCII keys, as memcached does (memcaslap needs it).
    lenient_keys: bool = False
    # Log drains may be on loopback or private addresses (a receiver on the operator's
    # network, tests); link-local and other non-unicast addresses are refused regardless.
    allow_internal_drains: bool = False
    max_body_bytes: int = 64 * 1024  # the largest HTTP request body the API reads
    sample_interval: float = 1.0  # seconds between analytics samples of every cache
    probe_interval: float = 1.0  # seconds between status probes of every proxy
    resolved_window: float = 3600.0  # seconds a cluster stays blue after trouble
    # /metrics has per-cache series (--metrics-per-cache on); off: per-cluster ones only,
    # for deployments whose caches are too many to graph one by one.
    metrics_per_cache: bool = True
    demo: bool = False  # seeded caches, real traffic and a scripted incident timeline
    demo_rate: float = 60.0  # demo traffic, memcache operations per second in all
    temporary_data_dir: bool = False  # made for this run (demo): removed when it stops
    # TLS on every region endpoint at tls_port + i (None: no TLS listeners; 0: ephemeral).
    tls_port: int | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_self_signed: bool = False
    # The HTTP API over TLS too (--api-tls), with the certificate above: every URL handed
    # out is then https://. Without it, an API reachable from other machines is warned
    # about at start-up unless --api-insecure-ok says a TLS-terminating proxy is in front.
    api_tls: bool = False
    api_insecure_ok: bool = False
    # What clients are told (servers, config vars, dashboard URLs): the host of every
    # memcache address, and the API's base URL. Empty: derived from `host` (see below).
    advertise_host: str = ""
    # The memcache port clients are told for region 0 (region i: + i), when it is not the
    # endpoint's own: a load balancer in front of several processes' endpoints, so every
    # process hands out the same ``servers`` (issue 14). None: the bound port.
    advertise_endpoint_port: int | None = None
    public_url: str = ""
    # True when the admin token was generated here and must be shown to the operator.
    admin_token_generated: bool = False
    # The control plane's database (--database): empty is SQLite in the data dir, as it
    # always was; ``postgresql://…`` is shared by several processes. The key file that
    # encrypts its secrets stays in the data dir either way.
    database: str = ""
    # The clusters whose proxies and stores this process runs (--clusters); None: all.
    # Region endpoints and the API serve the whole service either way. With PostgreSQL,
    # each is claimed in the database: two processes never serve one.
    clusters: frozenset[str] | None = None

    def __post_init__(self) -> None:
        self.database = self.database.strip()
        parse_database_url(self.database)  # a bad URL fails here, before anything starts
        if self.advertise_host:
            self.advertise_host = check_advertise_host(self.advertise_host)
        if self.public_url:
            self.public_url = check_public_url(self.public_url)
        if not self.admin_token:
            self.admin_token = os.environ.get(ADMIN_TOKEN_ENV, "")
        if not self.admin_token:
            self.admin_token = secrets.token_urlsafe(24)
            self.admin_token_generated = True

    @property
    def api_scheme(self) -> str:
        return "https" if self.api_tls else "http"

    def plain_api_warning(self) -> str | None:
        """The start-up warning for an API in clear text reachable from other machines.

        The admin token and every dashboard URL (its secret) cross the network with each
        request; loopback never leaves the machine, so it is not warned about. A host name
        other than ``localhost`` counts as reachable: resolving it here would be guessing.
        """
        if self.api_tls or self.api_insecure_ok or _is_loopback(self.host):
            return None
        return (
            f"the HTTP API listens on {self.host or 'every interface'} without TLS: admin "
            "tokens and dashboard secrets cross the network in clear text; serve it with "
            "--api-tls, or pass --api-insecure-ok behind a TLS-terminating proxy"
        )

    def advertised_host(self) -> tuple[str, str | None]:
        """The host handed to clients, and a warning when it had to be guessed.

        Without --advertise-host it is the bind host, except for a wildcard bind host,
        which no client can connect to: then this machine's fully qualified name, which
        is right on most servers, and the operator is told how to change it.
        """
        if self.advertise_host:
            return self.advertise_host, None
        if self.host not in WILDCARD_HOSTS:
            return self.host, None
        name = socket.getfqdn()
        return name, (
            f"listening on {self.host or 'every interface'}: clients are told to "
            f"connect to {name}; set --advertise-host to choose the name"
        )

    def owned_clusters(self) -> list[str]:
        """The clusters this process serves, in topology order."""
        names = [cluster.name for cluster in self.topology.clusters()]
        return [n for n in names if self.clusters is None or n in self.clusters]

    @property
    def database_url(self) -> DatabaseUrl:
        return parse_database_url(self.database)

    def serves(self, cluster: str) -> bool:
        """Whether this process runs ``cluster``'s proxies and store."""
        return self.clusters is None or cluster in self.clusters

    def advertised_endpoint_port(self, region_index: int, bound_port: int) -> int:
        """The port clients are told for region ``region_index``'s endpoint."""
        if self.advertise_endpoint_port:
            return self.advertise_endpoint_port + region_index
        return bound_port

    def endpoint_port_for(self, region_index: int) -> int:
        return self.endpoint_port + region_index if self.endpoint_port else 0

    def tls_port_for(self, region_index: int) -> int:
        assert self.tls_port is not None
        return self.tls_port + region_index if self.tls_port else 0
