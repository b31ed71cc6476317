"""The in-process backend's log as the dashboard shows it: no request lines, no secrets,
warnings a person sees as a notice rather than only in the log dialog, and long lines
wrapped at the dialog's width instead of cropped."""

from __future__ import annotations

import logging

from textual.widgets import RichLog

from tests.tui.conftest import admin, running_app, wait_for
from tests.tui.screen import screen_lines
from tui.screenshots import PAGES, frozen_app, show

LONG = (
    "2026-11-18 08:06:00,123 backend.control.drains log drain "
    "https://logs.example.com:8443 (d.0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0): batch dropped "
    "after 6 attempts; its lines are counted in cachier_log_drain_dropped_total"
)


async def test_backend_log_holds_no_request_lines_and_no_dashboard_secret(tmp_path) -> None:
    async with running_app(tmp_path) as (app, pilot):
        async with admin(app) as client:
            body = {"name": "logged", "plan": "100mb"}
            cache = (await client.post("/api/v1/admin/caches", json=body)).json()
        secret = cache["dashboard_url"].rsplit("/dashboard/", 1)[1]
        app.open_cache(secret, "logged")  # the dashboard polls the secret URL from now on
        await wait_for(pilot, lambda: app.current_mode == "analytics")
        fetched_before = app.client is not None and len(app.settings.backend_log)
        await pilot.pause(1.0)  # about five refreshes of the cache's pages
        # A library that logs a URL on its own gets it redacted, like any other line.
        logging.getLogger("uvicorn.error").info("peer asked for %s", cache["dashboard_url"])
        await pilot.pause(0.1)
        lines = list(app.settings.backend_log)
    assert fetched_before is not False
    assert any("peer asked for" in line and "/dashboard/<secret>" in line for line in lines)
    assert [line for line in lines if secret in line] == []
    assert [line for line in lines if "HTTP Request" in line] == []
    for credential in cache["credentials"]:
        assert [line for line in lines if credential["password"] in line] == []


async def test_a_backend_warning_is_a_notice_on_screen_once(tmp_path) -> None:
    async with running_app(tmp_path) as (app, pilot):
        message = "demo traffic for 'shop' (ASCII) cannot run: the pymemcache package is missing"
        demo_log = logging.getLogger("backend.demo")
        demo_log.warning(message)
        demo_log.warning(message)  # the same failure again: no second notice
        demo_log.info("demo client 'shop' (ASCII) working again")  # info: the log only

        def notices() -> list[str]:
            return [n.message for n in app._notifications]

        await wait_for(pilot, lambda: message in notices())
        await pilot.pause(0.2)
        assert notices().count(message) == 1
        assert not any("working again" in n for n in notices())
        assert any(message in line for line in app.settings.backend_log)


async def test_long_backend_log_lines_wrap_whole_at_80_columns() -> None:
    app = frozen_app()
    app.settings.backend_log.extend([LONG, "short line"])
    async with app.run_test(size=(80, 24)) as pilot:
        await show(pilot, "logs", PAGES["logs"]())
        await pilot.press("b")
        await pilot.pause()
        await pilot.pause()
        log = app.screen.query_one(RichLog)
        width = log.scrollable_content_region.width
        assert all(strip.cell_length <= width for strip in log.lines)
        inside = [line.split("█")[1] if line.count("█") >= 2 else "" for line in screen_lines(app)]
        shown = "".join("".join(inside).split())
        assert "".join(LONG.split()) in shown
