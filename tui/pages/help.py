"""Help: every binding of the app and of the page underneath, read from the bindings."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.keys import format_key
from textual.screen import ModalScreen
from textual.widgets import Static

GENERAL = [
    ("arrows / h j k l", "move in tables and lists"),
    ("tab / shift+tab", "move between widgets"),
    ("ctrl+p", "command palette: every page and action by name"),
]


def key_name(key: str) -> str:
    """``/`` and ``?`` as typed, not Textual's names (``slash``); named keys stay words
    (``enter``, ``escape``, ``ctrl+r``)."""
    shown = format_key(key)
    return shown if len(shown) == 1 and shown.isascii() and shown.isprintable() else key


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,f1,q", "dismiss", "Close", id="help.close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help", classes="dialog"):
            yield Static(self._table())

    def _table(self) -> Table:
        table = Table(title="cachier-tui keys", expand=True, show_edge=False)
        table.add_column("Key", style="bold", no_wrap=True)
        table.add_column("Does")
        below = next((s for s in reversed(self.app.screen_stack) if s is not self), None)
        sources = [*([below] if below is not None else []), self.app]
        seen = set()
        for source in sources:
            for binding in getattr(source, "BINDINGS", []):
                if not isinstance(binding, Binding) or binding.action in seen:
                    continue
                seen.add(binding.action)
                keys = binding.key_display or " / ".join(
                    key_name(k) for k in binding.key.split(",")
                )
                what = binding.tooltip or binding.description  # the footer's may be shortened
                table.add_row(keys, what)
        for keys, what in GENERAL:
            table.add_row(keys, what)
        return table
