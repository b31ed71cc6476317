"""SVG snapshots of every page, fed the same messages the fetch workers post.

No backend, no timers, no clock: the app is built without a client, so pages only show
what is injected. Regenerate with ``pytest tests/tui/test_snapshots.py --snapshot-update``
in a commit of its own, after looking at the SVGs.
"""

from __future__ import annotations

import pytest

from tui import sample_data as data
from tui.messages import AnalyticsFetched
from tui.screenshots import PAGES, SIZES, frozen_app, show, show_alerts, show_audit, show_keys


def page_with(mode: str, message_factory):
    async def run_before(pilot) -> None:
        await show(pilot, mode, message_factory())

    return run_before


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("page", PAGES)
def test_page_snapshot(snap_compare, page: str, size: str) -> None:
    assert snap_compare(
        frozen_app(), terminal_size=SIZES[size], run_before=page_with(page, PAGES[page])
    )


def test_free_plan_analytics_snapshot(snap_compare) -> None:
    factory = lambda: AnalyticsFetched(data.cache_info(plan="free"), data.stats())  # noqa: E731
    assert snap_compare(
        frozen_app(), terminal_size=(80, 24), run_before=page_with("analytics", factory)
    )


def test_help_snapshot(snap_compare) -> None:
    before = page_with("status", PAGES["status"])
    assert snap_compare(
        frozen_app(), terminal_size=(80, 24), run_before=before, press=["question_mark"]
    )


@pytest.mark.parametrize("page", PAGES)
def test_page_snapshot_no_color(snap_compare, monkeypatch, page: str) -> None:
    """80×24 as a NO_COLOR terminal shows it (Textual reads the variable at start-up)."""
    monkeypatch.setenv("NO_COLOR", "1")
    assert snap_compare(
        frozen_app(), terminal_size=(80, 24), run_before=page_with(page, PAGES[page])
    )


def test_backend_log_snapshot_no_color(snap_compare, monkeypatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = frozen_app()
    app.settings.backend_log.extend(
        [
            "2026-11-18 08:06:00,123 backend.monitor use1-c: DOWN (1 of 3 proxies unreachable: "
            "proxy-1.use1-c.us-east-1.cachier.internal)",
            f"2026-11-18 08:06:01,004 httpx HTTP Request: GET {data.API}/dashboard/{data.SSO}"
            '/api/logs?limit=200 "HTTP/1.1 200 OK"',
        ]
    )
    assert snap_compare(
        app, terminal_size=(80, 24), press=["b"], run_before=page_with("logs", PAGES["logs"])
    )


def test_alerts_view_snapshot(snap_compare) -> None:
    """``a`` on Analytics at 80×24: every alert's state and every threshold's field, and
    the title bar's badge."""
    assert snap_compare(frozen_app(), terminal_size=(80, 24), run_before=show_alerts)


def test_keys_view_snapshot(snap_compare) -> None:
    """``k`` on Analytics at 80×24: per-command bars and the hot keys, long keys cut."""
    assert snap_compare(frozen_app(), terminal_size=(80, 24), run_before=show_keys)


def test_audit_trail_snapshot(snap_compare) -> None:
    """``a`` on Logs at 80×24: the newest changes at the top, long details wrapped whole."""
    assert snap_compare(frozen_app(), terminal_size=(80, 24), run_before=show_audit)
