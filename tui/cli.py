"""``cachier-tui``: the dashboard, on an in-process backend, a remote one, or one cache."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from backend.cli import ConfigError, build_parser, config_from_args
from backend.config import ADMIN_TOKEN_ENV
from backend.topology import TopologyError


def build_tui_parser() -> argparse.ArgumentParser:
    parser = build_parser()
    parser.prog = "cachier-tui"
    parser.description = (
        "The cachier dashboard. With no URL it runs the backend in this process; "
        "--api attaches to a running backend; a dashboard URL shows that one cache."
    )
    parser.add_argument("dashboard_url", nargs="?", help="a cache's …/dashboard/<secret> URL")
    parser.add_argument("--api", help="attach to the backend at this URL (operator view)")
    parser.add_argument(
        "--api-ca",
        type=Path,
        default=None,
        metavar="FILE",
        help="for an https:// backend: trust only this CA certificate (PEM), e.g. a private "
        "CA or the backend's --tls-self-signed tls-cert.pem (default: the system's trust)",
    )
    parser.add_argument(
        "--refresh",
        type=float,
        default=1.0,
        help="seconds between refreshes (default: 1; r cycles it)",
    )
    return parser


# Optional imports our libraries attempt and guard with "except ImportError", for parts
# the dashboard never uses: httpcore's trio support (about 100 ms of start-up whenever trio
# is installed; the dashboard runs on asyncio) and httpx's command-line client (click and
# pygments, about 50 ms).
UNUSED_OPTIONAL_MODULES = ("trio", "httpx._main")


def _skip_unused_optional_imports() -> None:
    for name in UNUSED_OPTIONAL_MODULES:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    args = build_tui_parser().parse_args(argv)
    _skip_unused_optional_imports()
    from tui.app import CachierApp, Remote, Settings
    from tui.urls import api_of, sso_of

    settings = Settings(refresh_s=args.refresh)
    service = remote = None
    if args.api_ca is not None:
        if not (args.api or args.dashboard_url):
            print(
                "cachier-tui: error: --api-ca goes with --api or a dashboard URL", file=sys.stderr
            )
            return 2
        if not args.api_ca.is_file():
            print(f"cachier-tui: error: --api-ca {args.api_ca}: no such file", file=sys.stderr)
            return 2
    if args.dashboard_url:
        if "/dashboard/" not in args.dashboard_url:
            print(
                "cachier-tui: error: a dashboard URL looks like http://host:port/dashboard/<secret>",
                file=sys.stderr,
            )
            return 2
        settings.operator, settings.sso = False, sso_of(args.dashboard_url)
        remote = Remote(api_of(args.dashboard_url), cafile=args.api_ca)
    elif args.api:
        args.admin_token = args.admin_token or os.environ.get(ADMIN_TOKEN_ENV, "")
        if not args.admin_token:
            print(
                "cachier-tui: error: --api needs --admin-token (or CACHIER_ADMIN_TOKEN)",
                file=sys.stderr,
            )
            return 2
        remote = Remote(args.api, args.admin_token, args.api_ca)
    else:
        from backend.service import Service

        try:
            service = Service(config_from_args(args))
        except (ConfigError, TopologyError) as error:
            print(f"cachier-tui: error: {error}", file=sys.stderr)
            return 2
    app = CachierApp(settings, service=service, remote=remote)
    app.run()
    if app.failure is not None:  # after the terminal is restored: a line the user keeps
        print(f"cachier-tui: error: {app.failure}", file=sys.stderr)
        return 1
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(main())
