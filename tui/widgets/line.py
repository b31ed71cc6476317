"""A one-line label that live refreshes rewrite, usually with the same text."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class FixedLine(Static):
    """Its size never depends on its text (CSS gives it one line and a width), so a new text
    repaints only this line with no layout pass, and the same text repaints nothing."""

    def __init__(
        self,
        content: Text | str = "",
        *,
        id: str | None = None,  # noqa: A002
        classes: str | None = None,
    ) -> None:
        super().__init__(content, id=id, classes=classes)
        self._shown: Text | str = content

    def show(self, content: Text | str) -> None:
        if content != self._shown:
            self._shown = content
            self.update(content, layout=False)
