"""SVG snapshots of every page, fed the same messages the fetch workers post.

No backend, no timers, no clock: the app is built without a client, so pages only show
what is injected. Regenerate with ``pytest tests/tui/test_snapshots.py --snapshot-update``
in a commit of its own, after looking at the SVGs.
"""

from __future__ import annotations

import pytest

from tests.tui import data
from tui.app import CachierApp, Settings
from tui.messages import (
    AnalyticsFetched,
    CachesFetched,
    CredentialsFetched,
    LogsFetched,
    StatusFetched,
)

SIZES = {"80x24": (80, 24), "120x36": (120, 36)}


def frozen_app() -> CachierApp:
    return CachierApp(Settings(refresh_s=1.0, sso=data.SSO, live=False))


def page_with(mode: str, message_factory):
    async def run_before(pilot) -> None:
        app = pilot.app
        app.cache_name = "shop"
        await app.switch_mode(mode)
        await pilot.pause()
        app.screen.post_message(message_factory())
        await pilot.pause()
        await pilot.pause()

    return run_before


PAGES = {
    "caches": lambda: CachesFetched(data.caches(), data.status()),
    "status": lambda: StatusFetched(data.status()),
    "analytics": lambda: AnalyticsFetched(data.cache_info(), data.stats()),
    "credentials": lambda: CredentialsFetched(
        data.cache_info(), data.credentials(), data.app_out()
    ),  # fmt: skip
    "logs": lambda: LogsFetched(data.logs(), replace=True),
}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("page", PAGES)
def test_page_snapshot(snap_compare, page: str, size: str) -> None:
    assert snap_compare(frozen_app(), terminal_size=SIZES[size],
                        run_before=page_with(page, PAGES[page]))  # fmt: skip


def test_free_plan_analytics_snapshot(snap_compare) -> None:
    factory = lambda: AnalyticsFetched(data.cache_info(plan="free"), data.stats())  # noqa: E731
    assert snap_compare(frozen_app(), terminal_size=(80, 24),
                        run_before=page_with("analytics", factory))  # fmt: skip


def test_help_snapshot(snap_compare) -> None:
    before = page_with("status", PAGES["status"])
    assert snap_compare(frozen_app(), terminal_size=(80, 24), run_before=before,
                        press=["question_mark"])  # fmt: skip
