"""The four lights are the four colours the product promises, in every theme the app offers:
UP green, SLOW yellow, DOWN red, RESOLVED blue (read back from the rendered screen)."""

from __future__ import annotations

from tests.tui.svg import contrast, hue_name, text_fills
from tui.screenshots import PAGES, frozen_app, show

EXPECTED = {"● UP": "green", "▲ SLOW": "yellow", "✖ DOWN": "red", "◆ RESOLVED": "blue"}


async def test_the_four_lights_are_green_yellow_red_blue_in_every_theme() -> None:
    app = frozen_app()
    wrong: dict[str, dict[str, str]] = {}
    async with app.run_test(size=(120, 36)) as pilot:
        await show(pilot, "status", PAGES["status"]())
        themes = list(app.available_themes)
        assert len(themes) > 10  # Textual's built-in themes, all offered by ctrl+p
        for theme in themes:
            app.theme = theme
            app.screen.post_message(PAGES["status"]())
            await pilot.pause()
            await pilot.pause()
            svg = app.export_screenshot()
            runs = text_fills(svg)
            legend = {}
            for word, hue in EXPECTED.items():
                fills = [fill for run, fill in runs if run.strip() == word]
                legend[word] = fills[0]  # the legend's; a table's cursor row has its own
                assert fills.count(fills[0]) >= 2, (theme, word, fills)  # the tables' too
                if hue_name(fills[0]) != hue:
                    wrong.setdefault(theme, {})[word] = f"{fills[0]} is {hue_name(fills[0])}"
            assert len(set(legend.values())) == 4, (theme, legend)
    assert not wrong, wrong


async def test_each_light_reads_on_every_theme_background() -> None:
    """At least 3:1 against the page's background in every theme (WCAG's floor for bold)."""
    app = frozen_app()
    poor = []
    async with app.run_test(size=(80, 24)) as pilot:
        await show(pilot, "status", PAGES["status"]())
        for theme in app.available_themes:
            app.theme = theme
            await pilot.pause()
            variables = app.theme_variables
            if variables["background"].startswith("ansi_"):
                continue  # the terminal's own palette
            for variable in ("status-up", "status-slow", "status-down", "status-resolved"):
                for ground in ("background", "surface"):
                    ratio = contrast(variables[variable].lower(), _hex(variables[ground]))
                    if ratio < 3.0:
                        poor.append((theme, variable, ground, round(ratio, 1)))
    assert not poor, poor


def _hex(value: str) -> str:
    from textual.color import Color

    return Color.parse(value).hex.lower()
