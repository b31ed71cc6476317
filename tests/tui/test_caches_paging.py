"""The Caches page with thousands of caches (issue 15, item 3): Pilot against a real
backend, the requests it makes read from its own HTTP client."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
from textual.widgets import DataTable, Input, Static

from tests.tui.conftest import running_app, wait_for
from tui.pages.analytics import AnalyticsPage
from tui.pages.caches import MARGIN, CachesPage

COUNT = 2000
NEEDLES = ["needle-a", "needle-b", "needle-c"]


def hint(page: CachesPage) -> str:
    return str(page.query_one("#caches-hint", Static).render())


async def test_thousands_of_caches_scroll_to_the_end_filter_and_open(tmp_path) -> None:
    async with running_app(tmp_path, size=(80, 24)) as (app, pilot):
        control = app.service.control

        def create_all() -> None:  # through the control plane: the API would take minutes
            for i in range(COUNT):
                control.create_cache(f"cache-{i:05d}", "free")
            for name in NEEDLES:
                control.create_cache(name, "free")
            control.create_cache("zz-last", "free")

        await app.service.control_thread.call(create_all)
        total = COUNT + len(NEEDLES) + 1
        asked: list[dict[str, list[str]]] = []

        async def record(request: httpx.Request) -> None:
            if request.url.path == "/api/v1/admin/caches" and request.method == "GET":
                asked.append(parse_qs(urlsplit(str(request.url)).query))

        app.client.http.event_hooks["request"].append(record)
        page = app.screen
        assert isinstance(page, CachesPage)
        table = page.query_one(DataTable)
        await wait_for(pilot, lambda: page.total == total and table.row_count > 0)
        await wait_for(pilot, lambda: table.scrollable_content_region.height > 10)  # laid out
        shown = table.scrollable_content_region.height - table.header_height
        assert 10 < shown < 24
        assert f"1 of {total:,}" in hint(page)

        # Refreshes ask for the rows on screen and a margin, never the whole list.
        asked.clear()
        await wait_for(pilot, lambda: len(asked) >= 3, timeout=30)  # 3 refreshes, loaded VM
        assert all(int(a["limit"][0]) <= shown + 2 * MARGIN for a in asked), asked
        assert table.row_count < 4 * (shown + MARGIN), asked

        # Scrolling down loads the next pages as they come near, and only those.
        for _ in range(6):
            await pilot.press("pagedown")
        await wait_for(pilot, lambda: table.cursor_row > 5 * (shown - 2))
        await wait_for(pilot, lambda: table.row_count > table.cursor_row + MARGIN // 2)
        assert table.row_count < 10 * (shown + MARGIN)
        row = table.cursor_row
        await wait_for(pilot, lambda: f"{row + 1:,} of {total:,}" in hint(page))
        assert table.get_cell_at((row, 0)) == f"cache-{row:05d}"

        # end: the last cache of the whole list, and where it is.
        await pilot.press("end")
        await wait_for(pilot, lambda: table.cursor_row == total - 1, timeout=30)
        assert table.get_cell_at((total - 1, 0)) == "zz-last"
        await wait_for(pilot, lambda: f"{total:,} of {total:,}" in hint(page))
        names = [table.get_cell_at((i, 0)) for i in range(table.row_count)]
        assert names == sorted(names) and len(set(names)) == total  # no gap, no repeat

        # ... and the refreshes there cost the rows on screen again, once the first has
        # asked for the rows between the last big page's end and the screen.
        small = shown + 2 * MARGIN
        await wait_for(
            pilot, lambda: len(asked) > 2 and all(int(a["limit"][0]) <= small for a in asked[-2:])
        )
        asked.clear()
        await wait_for(pilot, lambda: len(asked) >= 3, timeout=30)  # 3 refreshes, loaded VM
        assert all(int(a["limit"][0]) <= small for a in asked), asked

        # A cache created meanwhile shows up in its place once its rows are asked again.
        await app.service.control_thread.call(control.create_cache, "zz-later", "free")
        await wait_for(pilot, lambda: page.total == total + 1)
        await wait_for(pilot, lambda: table.row_count == total + 1)
        assert table.get_cell_at((total, 0)) == "zz-later"

        # / filters (the list's q), across every field the list searches.
        await pilot.press("slash")
        field = page.query_one("#filter", Input)
        assert field.has_focus
        await pilot.press("q", "c")  # letters the app binds go to the field
        assert field.value == "qc" and app.is_running
        await pilot.press("ctrl+u", *"NEEDLE", "enter")
        await wait_for(pilot, lambda: page.total == len(NEEDLES) and table.row_count == 3)
        assert not field.display and table.has_focus
        assert [table.get_cell_at((i, 0)) for i in range(3)] == NEEDLES
        assert "matching “NEEDLE”" in hint(page)
        # the refreshes that follow ask with the filter too (one sent before it may land late)
        await wait_for(pilot, lambda: all(a.get("q") == ["NEEDLE"] for a in asked[-2:]))

        # Enter opens the cache under the cursor.
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, AnalyticsPage))
        assert app.cache_name == "needle-b"

        # Back on the page, an empty filter shows every cache again.
        await pilot.press("1")
        await wait_for(pilot, lambda: isinstance(app.screen, CachesPage))
        await pilot.press("slash", "ctrl+u", "enter")  # ctrl+u: clear the field
        await wait_for(pilot, lambda: page.total == total + 1 and table.row_count > 3)
        assert table.row_count < 4 * (shown + MARGIN)
