"""The cache's Keys view (its owner's only): hits and misses per command as bars, the
hottest keys and key prefixes of the last minute or two, and the largest values written.

Opening it starts sampling on the backend (one command in eight, bounded sketches); it
refreshes every ``REFRESH_S`` while open, which keeps the sampling on, and the backend
stops sampling five minutes after it closes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from tui.errors import ApiError
from tui.units import size
from tui.widgets.graph import compact

if TYPE_CHECKING:
    from backend.api.schemas import CommandCountOut, KeyCountOut, KeysOut
    from tui.client import CachierClient

REFRESH_S = 2.0
BAR_W = 20  # cells of a command's hit/miss bar
KEY_W = 26  # a key's cells before it is cut with an ellipsis
SHOWN = 8  # rows per table: the view fits 80×24 with a little scrolling


def command_bar(row: CommandCountOut) -> Text:
    """``get   ██████████████░░░░░░  1.2k / 310  80% hits``: hits solid, misses light."""
    total = row.hits + row.misses
    line = Text(f"{row.command:<6} ")
    if not total:
        return line.append("─" * BAR_W, style="dim").append("  no commands yet", style="dim")
    solid = round(BAR_W * row.hits / total)
    line.append("█" * solid, style="bold").append("░" * (BAR_W - solid), style="dim")
    line.append(f"  {compact(row.hits)} / {compact(row.misses)}")
    return line.append(f"  {100 * row.hits / total:.0f}% hits", style="dim")


def _cut(text: str, width: int = KEY_W) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _hit_rate(row: KeyCountOut) -> str:
    return f"{100 * row.hits / row.gets:.0f}%" if row.gets else "—"


def counts_table(title: str, rows: list[KeyCountOut]) -> Table:
    table = Table(title=title, title_justify="left", box=None, pad_edge=False, expand=True)
    table.add_column("key" if title.startswith("Hot") else "prefix", no_wrap=True)
    for column in ("gets", "hit%", "sets", "dels", "written"):
        table.add_column(column, justify="right", no_wrap=True)
    for row in rows[:SHOWN]:
        table.add_row(
            _cut(row.key or "(no prefix)"),
            compact(row.gets),
            _hit_rate(row),
            compact(row.sets),
            compact(row.deletes),
            size(row.bytes),
        )
    if not rows:
        table.add_row(Text("(none counted yet)", style="dim"), "", "", "", "", "")
    return table


def keys_renderable(view: KeysOut) -> Group:
    parts: list[Table | Text] = [Text("Hits / misses per command", style="bold")]
    parts += [command_bar(row) for row in view.commands]
    if not view.tracking:
        parts.append(Text("\nSampling starts now: keys appear as clients send commands."))
        return Group(*parts)
    parts.append(Text(""))
    parts.append(counts_table("Hot keys", view.keys))
    parts.append(Text(""))
    parts.append(counts_table("Key prefixes", view.prefixes))
    parts.append(Text(""))
    largest = Table(title="Largest values written", title_justify="left", box=None, pad_edge=False)
    largest.add_column("key", no_wrap=True)
    largest.add_column("size", justify="right")
    for row in view.largest[:SHOWN]:
        largest.add_row(_cut(row.key), size(row.size))
    parts.append(largest)
    return Group(*parts)


class KeysScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,k,q", "dismiss", "Close", id="keys.close")]

    def __init__(
        self,
        client: CachierClient | None,
        sso: str,
        cache_name: str | None,
        view: KeysOut | None = None,
    ) -> None:
        """``client`` None (screenshots, snapshots): shows ``view`` and asks nothing."""
        super().__init__()
        self.client, self.sso, self.cache_name = client, sso, cache_name
        self.view: KeysOut | None = view

    def compose(self) -> ComposeResult:
        whose = f" of {self.cache_name}" if self.cache_name else ""
        with Vertical(id="keys", classes="dialog"):
            yield Label(f"Keys{whose} · escape closes", id="keys-title", classes="question")
            with VerticalScroll(id="keys-scroll"):
                yield Static("Asking the backend…", id="keys-body")

    def on_mount(self) -> None:
        if self.view is not None:
            self._show(self.view)
        if self.client is not None:
            self.reload()
            self.set_interval(REFRESH_S, self.reload)

    @work(exclusive=True, group="keys")
    async def reload(self) -> None:
        if self.client is None:
            return
        try:
            view = await self.client.keys(self.sso)
        except ApiError as exc:
            body = self.query_one("#keys-body", Static)
            body.update(Text(f"The keys cannot be read: {exc}", style="bold"))
            return
        self._show(view)

    def _show(self, view: KeysOut) -> None:
        self.view = view
        body = self.query_one("#keys-body", Static)
        whose = f" of {self.cache_name}" if self.cache_name else ""
        span = f" · last {view.window_s:.0f} s, 1 in {view.sample_every} sampled"
        title = f"Keys{whose}{span if view.tracking else ''} · escape closes"
        self.query_one("#keys-title", Label).update(title)
        body.update(keys_renderable(view))
