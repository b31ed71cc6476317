"""Write an SVG of every page to ``screenshots/``: ``python -m tui.screenshots``.

The pages are fed the same messages their fetch workers post, with fixed sample data and
no clock, so the pictures change only when the views change.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from pathlib import Path

from textual.message import Message

from tui import sample_data as data
from tui.app import CachierApp, Settings
from tui.messages import (
    AnalyticsFetched,
    CachesFetched,
    CredentialsFetched,
    LogsFetched,
    StatusFetched,
)

PAGES: dict[str, Callable[[], Message]] = {
    "caches": lambda: CachesFetched(data.cache_page(), data.status()),
    "analytics": lambda: AnalyticsFetched(data.cache_info(), data.stats()),
    "credentials": lambda: CredentialsFetched(
        data.cache_info(), data.credentials(), data.app_out()
    ),
    "status": lambda: StatusFetched(data.status()),
    "logs": lambda: LogsFetched(data.logs(), replace=True),
}
SIZES = {"80x24": (80, 24), "120x36": (120, 36)}


def frozen_app() -> CachierApp:
    """The app without a backend: pages show injected data only."""
    app = CachierApp(Settings(refresh_s=1.0, sso=data.SSO, live=False, clock=lambda: data.T0))
    app.cache_name = "shop"
    return app


async def show(pilot, mode: str, message: Message) -> None:
    await pilot.app.switch_mode(mode)
    await pilot.pause()
    pilot.app.screen.post_message(message)
    await pilot.pause()
    await pilot.pause()


async def capture(target: Path) -> list[Path]:
    written = []
    for size_name, size in SIZES.items():
        for page, message in PAGES.items():
            app = frozen_app()
            async with app.run_test(size=size) as pilot:
                await show(pilot, page, message())
                path = target / f"{page}-{size_name}.svg"
                path.write_text(app.export_screenshot(title=f"cachier-tui · {page}"))
                written.append(path)
    app = frozen_app()
    async with app.run_test(size=SIZES["80x24"]) as pilot:  # a credential still in use
        await show(pilot, "credentials", PAGES["credentials"]())
        await pilot.press("down", "down", "d", "y")
        await pilot.pause()
        path = target / "credentials-delete-in-use-80x24.svg"
        path.write_text(app.export_screenshot(title="cachier-tui · credentials"))
        written.append(path)
    app = frozen_app()
    async with app.run_test(size=SIZES["80x24"]) as pilot:
        await show(pilot, "status", PAGES["status"]())
        await pilot.press("question_mark")
        await pilot.pause()
        path = target / "help-80x24.svg"
        path.write_text(app.export_screenshot(title="cachier-tui · help"))
        written.append(path)
    app = frozen_app()
    async with app.run_test(size=SIZES["80x24"]) as pilot:
        await show_alerts(pilot)
        path = target / "alerts-80x24.svg"
        path.write_text(app.export_screenshot(title="cachier-tui · alerts"))
        written.append(path)
    for name, opened in (("keys", show_keys), ("audit", show_audit)):
        app = frozen_app()
        async with app.run_test(size=SIZES["80x24"]) as pilot:
            await opened(pilot)
            path = target / f"{name}-80x24.svg"
            path.write_text(app.export_screenshot(title=f"cachier-tui · {name}"))
            written.append(path)
    return written


async def show_keys(pilot) -> None:
    """Analytics with the Keys view open over it (``k``)."""
    from tui.pages.keys import KeysScreen

    await show(pilot, "analytics", PAGES["analytics"]())
    await pilot.app.push_screen(KeysScreen(None, data.SSO, "shop", data.keys_out()))
    await pilot.pause()
    await pilot.pause()


async def show_audit(pilot) -> None:
    """Logs with the cache's audit trail open over it (``a``)."""
    from tui.pages.audit import AuditScreen

    await show(pilot, "logs", PAGES["logs"]())
    await pilot.app.push_screen(AuditScreen(None, data.SSO, "shop", data.audit_out()))
    await pilot.pause()
    await pilot.pause()


async def show_alerts(pilot) -> None:
    """Analytics with the Alerts view open over it (``a``), one alert firing."""
    from tui.pages.alerts import AlertsScreen

    await show(pilot, "analytics", PAGES["analytics"]())
    pilot.app.show_alerts(1)
    await pilot.app.push_screen(AlertsScreen(None, data.SSO, "shop", data.alerts_out()))
    await pilot.pause()
    await pilot.pause()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("screenshots"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in asyncio.run(capture(args.out)):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
