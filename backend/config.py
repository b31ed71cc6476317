"""Service configuration: flags, environment and defaults in one typed object."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from backend.topology import Topology, default_topology

ADMIN_TOKEN_ENV = "CACHIER_ADMIN_TOKEN"
# The demo's "recently resolved" window: short, so green returns within its timeline.
DEMO_RESOLVED_WINDOW = 30.0


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
    demo: bool = False  # seeded caches, real traffic and a scripted incident timeline
    demo_rate: float = 60.0  # demo traffic, memcache operations per second in all
    temporary_data_dir: bool = False  # made for this run (demo): removed when it stops
    # TLS on every region endpoint at tls_port + i (None: no TLS listeners; 0: ephemeral).
    tls_port: int | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_self_signed: bool = False
    # True when the admin token was generated here and must be shown to the operator.
    admin_token_generated: bool = False

    def __post_init__(self) -> None:
        if not self.admin_token:
            self.admin_token = os.environ.get(ADMIN_TOKEN_ENV, "")
        if not self.admin_token:
            self.admin_token = secrets.token_urlsafe(24)
            self.admin_token_generated = True

    def endpoint_port_for(self, region_index: int) -> int:
        return self.endpoint_port + region_index if self.endpoint_port else 0

    def tls_port_for(self, region_index: int) -> int:
        assert self.tls_port is not None
        return self.tls_port + region_index if self.tls_port else 0
