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
    # What clients are told (servers, config vars, dashboard URLs): the host of every
    # memcache address, and the API's base URL. Empty: derived from `host` (see below).
    advertise_host: str = ""
    public_url: str = ""
    # True when the admin token was generated here and must be shown to the operator.
    admin_token_generated: bool = False
    # The control plane's database (--database): empty is SQLite in the data dir, as it
    # always was; ``postgresql://…`` is shared by several processes. The key file that
    # encrypts its secrets stays in the data dir either way.
    database: str = ""

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

    @property
    def database_url(self) -> DatabaseUrl:
        return parse_database_url(self.database)

    def endpoint_port_for(self, region_index: int) -> int:
        return self.endpoint_port + region_index if self.endpoint_port else 0

    def tls_port_for(self, region_index: int) -> int:
        assert self.tls_port is not None
        return self.tls_port + region_index if self.tls_port else 0
