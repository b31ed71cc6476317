"""Under NO_COLOR (Textual greys every colour) the graphs' lines and legends still stand
out from their background: at least 3:1, read back from the rendered screen."""

from __future__ import annotations

import pytest
from textual.color import Color

from tests.tui.svg import contrast, text_fills
from tui.screenshots import PAGES, frozen_app, show

BRAILLE = range(0x2801, 0x2900)  # a plot's dots (U+2800 is a blank cell)


@pytest.mark.parametrize("no_color", [True, False], ids=["NO_COLOR", "colour"])
async def test_every_graph_line_has_3_to_1_contrast(monkeypatch, no_color: bool) -> None:
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")  # read by App.__init__, as in a terminal
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
    app = frozen_app()
    assert app.no_color is no_color
    async with app.run_test(size=(80, 24)) as pilot:
        await show(pilot, "analytics", PAGES["analytics"]())
        svg = app.export_screenshot()
        grounds = {}
        for ground in ("surface", "panel"):
            colour = Color.parse(app.theme_variables[ground])
            grounds[ground] = (colour.monochrome if no_color else colour).hex.lower()
    runs = text_fills(svg)
    legends = {
        runs[i + 1][0].split()[0]: fill
        for i, (run, fill) in enumerate(runs[:-1])
        if run.strip() == "━"
    }
    assert {"gets", "sets"} <= set(legends), legends
    for label, fill in legends.items():
        assert contrast(fill, grounds["panel"]) >= 3.0, (label, fill, grounds)
    lines = {
        fill for run, fill in runs if run.strip() and all(ord(c) in BRAILLE for c in run.strip())
    }
    assert legends["sets"] in lines and legends["gets"] in lines
    for fill in lines:
        assert contrast(fill, grounds["surface"]) >= 3.0, (fill, grounds)
