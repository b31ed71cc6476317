"""Placeholder until the analytics page lands (being written now)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer, Header, Static

from tui.pages.base import Page


class AnalyticsPage(Page):
    needs_cache = True

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("analytics")
        yield Footer()

    async def load(self) -> None:
        return None
