"""The screen as a person reads it: one string per terminal line."""

from __future__ import annotations

from textual.app import App


def screen_lines(app: App) -> list[str]:
    """What the terminal shows now (the top screen and what shows through it)."""
    return [strip.text for strip in app.screen._compositor.render_strips()]
