"""The in-process backend's own log (uvicorn, monitor, …): kept off the terminal, shown here."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, RichLog


class BackendLogScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,b,q", "dismiss", "Close", id="backend_log.close")]

    def compose(self) -> ComposeResult:
        with Vertical(id="backend-log", classes="dialog"):
            yield Label("Backend log (newest last) · escape closes", classes="question")
            # min_width=1: RichLog renders every line at least 78 wide by default, so in a
            # dialog narrower than that each long line was wrapped at 78 and then cropped.
            yield RichLog(id="backend-lines", wrap=True, max_lines=500, min_width=1)

    def on_mount(self) -> None:
        log = self.query_one(RichLog)
        lines = list(self.app.settings.backend_log)
        for line in lines or ["(no backend log lines: the backend runs elsewhere or is quiet)"]:
            log.write(line)
