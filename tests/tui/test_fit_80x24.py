"""What a look at every page in tmux at 80×24 found cut off or awkward, kept fixed: the
Credentials table had one column too many for 80 cells (a horizontal scrollbar under the
rows, the last column's edge hidden), and help named the filter key ``slash``."""

from __future__ import annotations

from textual.widgets import DataTable

from tests.tui.screen import screen_lines
from tui import sample_data as data
from tui.messages import CachesFetched, CredentialsFetched
from tui.pages.help import HelpScreen, key_name
from tui.screenshots import frozen_app, show


def test_keys_are_named_as_typed() -> None:
    assert [key_name(k) for k in ("slash", "question_mark", "enter", "ctrl+r", "pageup")] == [
        "/",
        "?",
        "enter",
        "ctrl+r",
        "pageup",
    ]


async def test_the_credentials_table_fits_80_columns_with_many_rows() -> None:
    """Twenty credentials: more rows than fit, so the vertical scrollbar takes its cells;
    the widest "Last used" still shows whole and no horizontal scrollbar appears."""
    credentials = [
        c.model_copy(update={"username": f"U{i:09d}"})
        for i in range(20)
        for c in data.credentials()[:1]
    ]
    widest = data.credentials()[0]
    activity = widest.activity.model_copy(update={"connections": 12, "peers": ["10.0.0.1"] * 12})
    last = activity.last_auth
    assert last is not None
    activity.last_auth = last.model_copy(update={"at": data.T0 - 59 * 60})
    credentials[0] = credentials[0].model_copy(update={"activity": activity})
    app = frozen_app()
    async with app.run_test(size=(80, 24)) as pilot:
        message = CredentialsFetched(data.cache_info(), credentials, data.app_out())
        await show(pilot, "credentials", message)
        table = app.screen.query_one(DataTable)
        await pilot.pause()
        assert table.show_vertical_scrollbar
        assert not table.show_horizontal_scrollbar
        assert any(line.rstrip().endswith("59 min ago · 12 conns") for line in screen_lines(app))


async def test_help_names_the_filter_key_as_typed() -> None:
    app = frozen_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await show(pilot, "caches", CachesFetched(data.cache_page(), data.status()))
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = "\n".join(screen_lines(app))
        assert "slash" not in text
        assert any("/" in line and "Filter" in line for line in screen_lines(app))
