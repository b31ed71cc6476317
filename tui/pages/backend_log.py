"""The in-process backend's own log (uvicorn, monitor, …): kept off the terminal, shown here."""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, RichLog


class BackendLogScreen(ModalScreen[None]):
    """The lines as they were when it opened (the app keeps the last 500)."""

    BINDINGS = [Binding("escape,b,q", "dismiss", "Close", id="backend_log.close")]

    def __init__(self, lines: Iterable[str]) -> None:
        super().__init__()
        self.lines = list(lines)

    def compose(self) -> ComposeResult:
        with Vertical(id="backend-log", classes="dialog"):
            yield Label("Backend log (newest last) · escape closes", classes="question")
            # min_width=1: RichLog renders every line at least 78 wide by default, so in a
            # dialog narrower than that each long line was wrapped at 78 and then cropped.
            yield RichLog(id="backend-lines", wrap=True, max_lines=500, min_width=1)

    def on_mount(self) -> None:
        log = self.query_one(RichLog)
        for line in self.lines or [
            "(no backend log lines: the backend runs elsewhere or is quiet)"
        ]:
            log.write(line)
