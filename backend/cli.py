"""``cachier-backend``: flags -> Config -> Service, until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from backend import __version__, gcpolicy, logs
from backend.config import (
    ADMIN_TOKEN_ENV,
    DEMO_RESOLVED_WINDOW,
    AddressError,
    ClusterSelectionError,
    Config,
    default_data_dir,
    select_clusters,
)
from backend.control.database import DatabaseUrlError
from backend.topology import TopologyError, demo_topology, load_topology

if TYPE_CHECKING:  # the service pulls in FastAPI and uvicorn: only when it runs
    from backend.service import Listening


class ConfigError(ValueError):
    """Flags that cannot work together."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage dump
        self.exit(2, f"cachier-backend: error: {message} (see --help)\n")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is outside 0-65535")
    return port


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _on_off(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"{text!r}: give on or off")
    return value == "on"


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="cachier-backend", description="Run the cachier memcache service.")
    p.add_argument("--version", action="version", version=f"cachier-backend {__version__}")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"database and key file (default: {default_data_dir()})",
    )
    p.add_argument(
        "--database",
        default="",
        metavar="URL",
        help="control plane database: sqlite:///path or postgresql://user@host/dbname "
        "(default: cachier.sqlite3 in the data directory, which keeps the key file either way)",
    )
    p.add_argument(
        "--clusters",
        default=None,
        metavar="A,B",
        help="run the proxies and stores of these clusters only (comma-separated; default: "
        "all); region endpoints and the API serve every cluster, relaying a connection to "
        "the process that runs its cache's cluster. Several processes on one PostgreSQL "
        "--database each claim their own",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument(
        "--advertise-host",
        default="",
        metavar="HOST",
        help="host name or address clients are told to connect to (servers, tls_servers, "
        "MEMCACHIER_SERVERS); default: --host, or this machine's name when --host is "
        "0.0.0.0 or ::",
    )
    p.add_argument(
        "--advertise-endpoint-port",
        type=_port,
        default=None,
        metavar="PORT",
        help="memcache port clients are told for region 0 (region i: +i), e.g. a load "
        "balancer's in front of several processes; default: the endpoint's own port",
    )
    p.add_argument("--api-port", type=_port, default=8080, help="HTTP API port (default: 8080)")
    p.add_argument(
        "--public-url",
        default="",
        metavar="URL",
        help="the API's base URL as clients reach it, e.g. behind a reverse proxy "
        "(dashboard URLs, the status feed); default: http://ADVERTISE-HOST:API-PORT "
        "(https:// with --api-tls)",
    )
    p.add_argument(
        "--endpoint-port",
        type=_port,
        default=11211,
        help="memcache endpoint port of region 0; region i uses +i (default: 11211)",
    )
    p.add_argument(
        "--admin-token",
        default="",
        help=f"token for the admin API (default: ${ADMIN_TOKEN_ENV}, else generated)",
    )
    p.add_argument(
        "--topology", type=Path, default=None, help="TOML file of regions/clusters/proxies"
    )
    p.add_argument(
        "--auth-timeout",
        type=_seconds,
        default=5.0,
        help="seconds a connection may take to authenticate (default: 5)",
    )
    p.add_argument(
        "--auth-failures-per-address",
        type=_count,
        default=10,
        help="failed logins per source address in a minute before it is refused (default: 10)",
    )
    p.add_argument(
        "--auth-failures-per-user",
        type=_count,
        default=30,
        help="failed logins per username in a minute before it is refused (default: 30); an "
        "address that has logged in with that username is never refused",
    )
    p.add_argument(
        "--lenient-keys",
        action="store_true",
        help="accept control characters in ASCII keys as memcached does "
        "(memcaslap's keys carry a binary prefix); default: refuse them",
    )
    p.add_argument(
        "--max-body-bytes",
        type=_count,
        default=64 * 1024,
        help="largest HTTP request body the API accepts (default: 65536)",
    )
    p.add_argument(
        "--allow-internal-drains",
        action="store_true",
        help="let log drains and alert webhooks reach loopback and private addresses "
        "(default: public addresses only; link-local such as 169.254.169.254 is always refused)",
    )
    p.add_argument(
        "--sample-interval",
        type=_seconds,
        default=1.0,
        help="seconds between analytics samples of every cache (default: 1)",
    )
    p.add_argument(
        "--probe-interval",
        type=_seconds,
        default=1.0,
        help="seconds between status probes of every proxy (default: 1)",
    )
    p.add_argument(
        "--metrics-per-cache",
        type=_on_off,
        default=True,
        metavar="on|off",
        help="per-cache series in /metrics (default: on); off leaves the per-cluster "
        "series and totals, for deployments with very many caches",
    )
    p.add_argument(
        "--resolved-window",
        type=_seconds,
        default=None,
        help="seconds a cluster shows 'recently resolved' after trouble "
        "(default: 3600; 30 with --demo)",
    )
    p.add_argument(
        "--demo",
        action="store_true",
        help="demo topology and caches, real traffic and a scripted incident timeline "
        "(in a fresh temporary data directory unless --data-dir is given)",
    )
    p.add_argument(
        "--demo-rate",
        type=_seconds,
        default=60.0,
        help="demo traffic in memcache operations per second (default: 60)",
    )
    p.add_argument(
        "--tls-port",
        type=_port,
        default=None,
        help="also serve each region endpoint with TLS on this port + i",
    )
    p.add_argument("--tls-cert", type=Path, default=None, help="PEM certificate (chain) for TLS")
    p.add_argument("--tls-key", type=Path, default=None, help="PEM private key for TLS")
    p.add_argument(
        "--tls-self-signed",
        action="store_true",
        help="make (or reuse) a self-signed certificate in the data directory",
    )
    p.add_argument(
        "--api-tls",
        action="store_true",
        help="serve the HTTP API over TLS (HTTPS only) with --tls-cert/--tls-key or "
        "--tls-self-signed; dashboard and feed URLs then start with https://",
    )
    p.add_argument(
        "--api-insecure-ok",
        action="store_true",
        help="no warning for a plain-HTTP API on a non-loopback address (behind a "
        "TLS-terminating reverse proxy)",
    )
    return p


def config_from_args(args: argparse.Namespace) -> Config:
    try:
        config = _config(args)
    except (AddressError, DatabaseUrlError, ClusterSelectionError) as exc:
        raise ConfigError(str(exc)) from None
    return config


def _config(args: argparse.Namespace) -> Config:
    config = Config(
        host=args.host,
        advertise_host=args.advertise_host,
        advertise_endpoint_port=args.advertise_endpoint_port,
        public_url=args.public_url,
        api_port=args.api_port,
        endpoint_port=args.endpoint_port,
        admin_token=args.admin_token,
        auth_timeout=args.auth_timeout,
        auth_failure_limit=args.auth_failures_per_address,
        auth_user_failure_limit=args.auth_failures_per_user,
        lenient_keys=args.lenient_keys,
        allow_internal_drains=args.allow_internal_drains,
        max_body_bytes=args.max_body_bytes,
        sample_interval=args.sample_interval,
        probe_interval=args.probe_interval,
        resolved_window=args.resolved_window or 3600.0,
        metrics_per_cache=args.metrics_per_cache,
        tls_port=args.tls_port,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_self_signed=args.tls_self_signed,
        api_tls=args.api_tls,
        api_insecure_ok=args.api_insecure_ok,
        database=args.database,
    )
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together")
    if args.tls_self_signed and args.tls_cert is not None:
        raise ConfigError("choose --tls-self-signed or --tls-cert/--tls-key, not both")
    has_certificate = args.tls_self_signed or args.tls_cert is not None
    if has_certificate and args.tls_port is None and not args.api_tls:
        raise ConfigError("a TLS certificate needs --tls-port or --api-tls to use it")
    if args.tls_port is not None and not has_certificate:
        raise ConfigError("--tls-port needs --tls-cert and --tls-key, or --tls-self-signed")
    if args.api_tls and not has_certificate:
        raise ConfigError("--api-tls needs --tls-cert and --tls-key, or --tls-self-signed")
    if args.api_tls and config.public_url.startswith("http://"):
        raise ConfigError("--api-tls serves HTTPS only: --public-url must start with https://")
    if args.data_dir is not None:
        config.data_dir = args.data_dir
    if args.topology is not None:
        config.topology = load_topology(args.topology)
    if args.demo:
        config.demo, config.demo_rate = True, args.demo_rate
        if args.topology is None:
            config.topology = demo_topology()
        if args.data_dir is None:
            config.data_dir = Path(tempfile.mkdtemp(prefix="cachier-demo-"))
            config.temporary_data_dir = True
        if args.resolved_window is None:
            config.resolved_window = DEMO_RESOLVED_WINDOW
    if args.clusters is not None:  # checked against the topology chosen above
        config.clusters = select_clusters(config.topology, args.clusters)
    return config


def describe(config: Config, listening: Listening, warnings: list[str]) -> str:
    # The API and endpoint lines are what clients are told (--public-url, --advertise-host);
    # where that differs from where the service listens, one more line says so.
    api = listening.public_api_url or listening.api_url
    lines = [
        f"cachier-backend {__version__}",
        f"  data dir   {config.data_dir}",
        f"  API        {api}   (OpenAPI: {api}/docs)",
    ]
    if listening.api_certificate is not None:  # what `cachier-tui --api-ca` may trust
        lines.append(f"  API TLS    certificate {listening.api_certificate} (HTTPS only)")
    if config.database:
        lines.insert(2, f"  database   {config.database_url.describe(config.data_dir)}")
    if config.clusters is not None:
        lines.append(f"  clusters   {', '.join(sorted(config.clusters))} (run here)")
    endpoints = listening.advertised_endpoints or listening.endpoints
    for region, address in endpoints.items():
        lines.append(f"  endpoint   {address}   region {region}")
    tls_endpoints = listening.advertised_tls_endpoints or listening.tls_endpoints
    for region, address in tls_endpoints.items():
        lines.append(f"  endpoint   {address}   region {region} (TLS)")
    if endpoints != listening.endpoints or api != listening.api_url:
        lines.append(
            f"  listening  on {config.host or '*'}; this machine reaches the API at "
            f"{listening.api_url}"
        )
    for hostname, address in listening.proxies.items():
        lines.append(f"  proxy      {address}   {hostname}")
    if config.admin_token_generated:
        lines.append(
            f"  admin token (generated for this run; set {ADMIN_TOKEN_ENV} to fix it): "
            f"{config.admin_token}"
        )
    lines += [f"  warning: {w}" for w in warnings]
    return "\n".join(lines)


async def serve(config: Config) -> None:
    from backend.service import Service

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # before start: healthz may answer at once
        loop.add_signal_handler(sig, stop.set)
    service = Service(config)
    listening = await service.start()
    print(describe(config, listening, service.warnings), flush=True)
    sweeping = asyncio.create_task(_tune_gc().run())
    try:
        await stop.wait()
    finally:
        sweeping.cancel()
        await service.stop()
    print("cachier-backend stopped", flush=True)


def _tune_gc() -> gcpolicy.Collector:
    """Keep every cyclic collection short: each is a pause of both loops (issue 15).

    Start-up objects are frozen and young collections are small; on uvloop, every full
    collection also freezes its survivors, so none walks the caches and items held
    (``backend.gcpolicy``); the caller runs the returned collector's sweeps on its loop.
    Not on asyncio's own loop: its socket transports hold themselves in a cycle (a bound
    method), so each connection frozen while open would leak when closed.
    """
    on_uvloop = type(asyncio.get_running_loop()).__module__.startswith("uvloop")
    return gcpolicy.install(freeze=on_uvloop)


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def main(argv: list[str] | None = None) -> int:
    from backend.service import ServiceError

    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
        logs.log_to_stderr()
        _install_uvloop()
        asyncio.run(serve(config))
    except (ConfigError, ServiceError, TopologyError) as exc:
        print(f"cachier-backend: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
