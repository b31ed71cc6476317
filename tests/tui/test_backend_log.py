"""The backend log dialog wraps long lines at its width instead of cropping them."""

from __future__ import annotations

from textual.widgets import RichLog

from tests.tui.screen import screen_lines
from tui.screenshots import PAGES, frozen_app, show

LONG = (
    "2026-11-18 08:06:00,123 httpx HTTP Request: GET "
    "http://127.0.0.1:8080/dashboard/Zm9yLXNuYXBzaG90cy1vbmx5LW5vdC1hLXJlYWwtc2VjcmV0/api/logs"
    '?limit=200&after=12345 "HTTP/1.1 200 OK"'
)


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
