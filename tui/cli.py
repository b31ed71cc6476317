"""``cachier-tui``: the dashboard, on an in-process backend, a remote one, or one cache."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import TYPE_CHECKING

from backend.cli import ConfigError, build_parser, config_from_args
from backend.config import ADMIN_TOKEN_ENV
from backend.topology import TopologyError

if TYPE_CHECKING:  # imported in main(), after the flags are known to be usable
    from textual.message import Message

    from tui.app import Settings
    from tui.client import CachierClient


def build_tui_parser() -> argparse.ArgumentParser:
    parser = build_parser()
    parser.prog = "cachier-tui"
    parser.description = (
        "The cachier dashboard. With no URL it runs the backend in this process; "
        "--api attaches to a running backend; a dashboard URL shows that one cache."
    )
    parser.add_argument("dashboard_url", nargs="?", help="a cache's …/dashboard/<secret> URL")
    parser.add_argument("--api", help="attach to the backend at this URL (operator view)")
    parser.add_argument("--refresh", type=float, default=1.0,
                        help="seconds between refreshes (default: 1; r cycles it)")  # fmt: skip
    return parser


# Optional imports our libraries attempt and guard with "except ImportError", for parts
# the dashboard never uses: httpcore's trio support (about 100 ms of start-up whenever trio
# is installed; the dashboard runs on asyncio) and httpx's command-line client (click and
# pygments, about 50 ms).
UNUSED_OPTIONAL_MODULES = ("trio", "httpx._main")


def _skip_unused_optional_imports() -> None:
    for name in UNUSED_OPTIONAL_MODULES:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


async def _first_page(client: CachierClient, settings: Settings) -> Message | str:
    """The first page's data, which proves the backend usable, or a readable reason it is
    not. The app shows this answer at once instead of asking again."""
    from tui.client import ApiError

    try:
        if settings.sso is not None:
            from tui.pages.analytics import fetch_analytics

            return await fetch_analytics(client, settings.sso)
        from tui.pages.caches import fetch_caches

        return await fetch_caches(client)
    except ApiError as error:
        if settings.sso is not None and error.status == 404:
            return "this dashboard URL is not valid (any more): ask for the current one"
        return str(error)
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> int:
    args = build_tui_parser().parse_args(argv)
    _skip_unused_optional_imports()
    from tui.app import CachierApp, Settings
    from tui.client import CachierClient, api_of, sso_of

    settings = Settings(refresh_s=args.refresh)
    service = None
    client_args: tuple[str, str | None] | None = None
    if args.dashboard_url:
        if "/dashboard/" not in args.dashboard_url:
            print("cachier-tui: error: a dashboard URL looks like http://host:port/dashboard/<secret>",
                  file=sys.stderr)  # fmt: skip
            return 2
        settings.operator, settings.sso = False, sso_of(args.dashboard_url)
        client_args = (api_of(args.dashboard_url), None)
    elif args.api:
        args.admin_token = args.admin_token or os.environ.get(ADMIN_TOKEN_ENV, "")
        if not args.admin_token:
            print("cachier-tui: error: --api needs --admin-token (or CACHIER_ADMIN_TOKEN)",
                  file=sys.stderr)  # fmt: skip
            return 2
        client_args = (args.api, args.admin_token)
    else:
        from backend.service import Service

        try:
            service = Service(config_from_args(args))
        except (ConfigError, TopologyError) as error:
            print(f"cachier-tui: error: {error}", file=sys.stderr)
            return 2
    client = first = None
    if client_args is not None:
        first = asyncio.run(_first_page(CachierClient(*client_args, timeout=5), settings))
        if isinstance(first, str):
            print(f"cachier-tui: error: {first}", file=sys.stderr)
            return 1
        client = CachierClient(*client_args)
    app = CachierApp(settings, client, service, prefetched=first)
    app.run()
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(main())
