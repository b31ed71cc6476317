"""The footer keeps its keys while what it shows is unchanged, and follows a change."""

from __future__ import annotations

from textual.widgets._footer import FooterKey

from tui import sample_data as data
from tui.messages import AnalyticsFetched
from tui.screenshots import frozen_app, show


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
