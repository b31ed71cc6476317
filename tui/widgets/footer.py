"""The key footer every page shows."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer


class SteadyFooter(Footer):
    """Textual's footer rebuilds all its keys whenever the bindings *may* have changed: on
    every focus move, screen change and ``refresh_bindings``, and once more at start-up
    (it first composes empty). This one composes its keys at once and rebuilds them only
    when what it shows changed: each key, its description, whether it is enabled. A
    rebuild restyles every key; at start-up it cost the dashboard's first frame ~60 ms."""

    def __init__(self) -> None:
        # Compact (no padding around each key): with the page keys as one "12345 pages"
        # item, every page's keys fit 80 columns next to the palette key.
        super().__init__(compact=True)
        self.set_reactive(Footer._bindings_ready, True)
        self._shown: tuple[object, ...] | None = None

    def _showing(self) -> tuple[object, ...]:
        return tuple(
            (key, active.binding.description, active.enabled, active.tooltip)
            for key, active in self.screen.active_bindings.items()
            if active.binding.show or key == self.app.COMMAND_PALETTE_BINDING
        )

    def compose(self) -> ComposeResult:
        self._shown = self._showing()
        yield from super().compose()

    def bindings_changed(self, screen: Screen) -> None:
        if self.is_attached and screen is self.screen and self._showing() == self._shown:
            return
        super().bindings_changed(screen)
