"""The footer keeps its keys while what it shows is unchanged, follows a change, and fits
80 columns on every page."""

from __future__ import annotations

import pytest
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

from tests.tui.screen import screen_lines
from tui import sample_data as data
from tui.messages import AnalyticsFetched
from tui.screenshots import PAGES, frozen_app, show


def keys(app) -> dict[str, FooterKey]:
    return {key.key: key for key in app.screen.query(FooterKey)}


def dimmed(key: FooterKey) -> bool:
    return key.has_class("-disabled")


async def test_footer_rebuilds_only_when_what_it_shows_changes() -> None:
    app = frozen_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await show(pilot, "analytics", AnalyticsFetched(data.cache_info(), data.stats()))
        before = keys(app)
        assert "f" in before and "m" in before and not dimmed(before["m"])

        app.screen.refresh_bindings()  # nothing shown changes: the same key widgets stay
        app.screen.post_message(AnalyticsFetched(data.cache_info(), data.stats()))
        await pilot.pause()
        await pilot.pause()
        assert all(keys(app)[k] is widget for k, widget in before.items())

        free = data.cache_info(plan="free")  # a free cache cannot move: "m" is dimmed
        app.screen.post_message(AnalyticsFetched(free, data.stats()))
        await pilot.pause()
        await pilot.pause()
        after = keys(app)
        assert dimmed(after["m"]) and not dimmed(after["f"])
        assert after["m"] is not before["m"]


@pytest.mark.parametrize("operator", [True, False], ids=["operator", "owner"])
@pytest.mark.parametrize("page", list(PAGES))
async def test_every_footer_key_fits_80_columns(page: str, operator: bool) -> None:
    """Each key the footer shows is drawn whole, left of the palette key, on every page;
    the ones it leaves out are in help."""
    app = frozen_app()
    app.settings.operator = operator
    async with app.run_test(size=(80, 24)) as pilot:
        await show(pilot, page, PAGES[page]())
        footer = app.screen.query_one(Footer)
        palette = footer.query_one(".-command-palette", FooterKey)
        shown = [key for key in footer.query(FooterKey) if key is not palette]
        assert shown
        last_line = screen_lines(app)[-1]
        for key in shown:
            assert key.region.right <= palette.region.x, (key.key, key.region, palette.region)
            assert key.region.width == key.get_content_width(key.size, key.size)
            assert f"{key.key_display} {key.description}".strip() in last_line
        assert last_line.rstrip().endswith("^p palette")
        assert "q Quit" in last_line and "? Help" in last_line

        bindings = [*app.screen.BINDINGS, *app.BINDINGS]
        await pilot.press("question_mark")
        await pilot.pause()
        listed = [str(cell) for cell in app.screen._table().columns[1]._cells]  # what help shows
        for binding in bindings:
            assert (binding.tooltip or binding.description) in listed, binding
