"""Logs: the current cache's app log, newest at the bottom, flush lines easy to spot.

The page keeps the cursor (the last line id) itself: the first fetch asks for the newest
lines and replaces the view, later fetches ask for what follows and append. It follows
new lines like ``tail -f`` until the user scrolls up; then new lines are only counted
("N new lines") until ``end``/``G`` jumps back down.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Header, RichLog, Static

from tui.messages import LogsFetched
from tui.pages.audit import AuditScreen
from tui.pages.backend_log import BackendLogScreen
from tui.pages.base import Page
from tui.widgets.footer import SteadyFooter
from tui.widgets.theme import theme_colour

if TYPE_CHECKING:  # annotations only: the page's first frame must not wait for pydantic
    from backend.api.schemas import LogLineOut

FIRST_PAGE = 200  # the newest lines shown when the page (or another cache) is opened
NEXT_PAGE = 500  # lines asked for after the cursor; a full page fetches again at once
KEPT = 2000  # lines kept in the view (and re-rendered when its width changes)
FLUSH_GLYPH = "⚑"


class LogView(RichLog, inherit_bindings=False):
    """A RichLog that says when it reaches or leaves its bottom (following or not)."""

    BINDINGS = [
        Binding("up,k", "scroll_up", "Up", show=False),
        Binding("down,j", "scroll_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown,space", "page_down", "Page down", show=False),
        Binding("home,g", "scroll_home", "Oldest", show=False),
    ]  # end/G belong to the page: they also resume following

    @dataclass
    class FollowChanged(Message):
        following: bool

    @dataclass
    class WidthChanged(Message):
        """RichLog never re-wraps what it wrote: the page writes it again."""

        width: int

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.following = True
        self._width = 0

    def on_resize(self, event: events.Resize) -> None:
        super().on_resize(event)
        if event.size.width and event.size.width != self._width:
            if self._width:
                self.post_message(self.WidthChanged(event.size.width))
            self._width = event.size.width

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        following = round(new_value) >= self.max_scroll_y
        if following != self.following:
            self.following = following
            self.post_message(self.FollowChanged(following))


class LogsPage(Page):
    """Log lines of the cache's app as the API serves them (``t``, ``source``, ``message``)."""

    needs_cache = True
    BINDINGS = [
        Binding("end,G", "follow", "Follow", id="logs.follow"),
        Binding("b", "backend_log", "Backend log", id="logs.backend"),
        Binding("a", "audit", "Audit", id="logs.audit"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.lines: deque[LogLineOut] = deque(maxlen=KEPT)
        self.after: int | None = None  # the cursor: the id of the last line shown
        self.shown_sso: str | None = None  # the dashboard secret the lines shown belong to
        self.requested_sso: str | None = None
        self.unseen = 0  # lines that arrived while the user was scrolled up

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="logs-info", classes="hint")
        yield LogView(id="logs-view", wrap=True, max_lines=KEPT, markup=False, min_width=20)
        yield Static(id="logs-new")
        yield SteadyFooter()

    def on_mount(self) -> None:
        self._show_info()
        self.query_one(LogView).focus()

    async def load(self) -> LogsFetched:
        client, sso = self.client, self.sso
        if sso != self.shown_sso or self.after is None:  # another cache (or a new URL): start over
            self.requested_sso = sso
            return LogsFetched(await client.logs(sso, None, FIRST_PAGE), replace=True)
        return LogsFetched(await client.logs(sso, self.after, NEXT_PAGE), replace=False)

    def show_no_cache(self) -> None:
        self.shown_sso = self.after = None
        self.lines.clear()
        view = self.query_one(LogView)
        view.clear()
        view.write(Text("No cache chosen yet: choose a cache on the Caches page (1)."))
        self._show_info()

    # -- data ---------------------------------------------------------------------------
    @on(LogsFetched)
    def show(self, message: LogsFetched) -> None:
        view = self.query_one(LogView)
        new = message.logs.lines
        with self.app.batch_update():
            if message.replace:
                self.shown_sso = self.requested_sso or self.cachier.sso
                self.lines.clear()
                self.unseen = 0
                view.clear()
                view.following = True
            elif self.after is not None:
                new = [line for line in new if line.id > self.after]  # a repeated fetch
            following = view.following
            previous = self.lines[-1] if self.lines else None
            for line in new:
                self._write(view, line, previous, scroll=following)
                previous = line
            self.lines.extend(new)
            if not following:
                self.unseen += len(new)
            if message.replace or self.after is None:
                self.after = message.logs.next_after
            else:
                self.after = max(self.after, message.logs.next_after)
            self._show_info()
            self._show_unseen()
        if not message.replace and len(message.logs.lines) >= NEXT_PAGE:
            self.refresh_now()  # more are waiting: catch up now rather than next tick

    def _write(
        self, view: LogView, line: LogLineOut, previous: LogLineOut | None, scroll: bool
    ) -> None:
        day = line.t[:10]
        if previous is None or previous.t[:10] != day:
            view.write(
                Text(f"── {day} (UTC) ──", style=self._style("foreground-muted")), scroll_end=scroll
            )
        view.write(self._line_renderable(line), expand=True, scroll_end=scroll)

    def _style(self, variable: str, extra: str = "", background: bool = False) -> str:
        """A Rich style from a theme variable (Rich cannot read Textual's variables)."""
        colour = theme_colour(self.app, variable)
        if colour and background:
            colour = f"on {colour}"
        return f"{extra} {colour}".strip()

    def _line_renderable(self, line: LogLineOut) -> Table:
        """One line as a grid row: the message wraps under itself, not under the time."""
        grid = Table.grid(padding=(0, 1), expand=True)
        grid.add_column(no_wrap=True, width=8)
        grid.add_column(no_wrap=True, max_width=12)
        grid.add_column(ratio=1, overflow="fold")
        clock = Text(line.t[11:19], style=self._style("foreground-muted"))
        source = Text(line.source, style=self._style("text-secondary"))
        if line.origin is None:
            grid.add_row(clock, source, Text(line.message))
            return grid
        # A flush: glyph + word (legible without colour), then origin and proxy in bold; the
        # message itself only when it says more than those two.
        warning = self._style("text-warning", "bold")
        message = Text.assemble(
            (f"{FLUSH_GLYPH} FLUSH ", warning),
            "origin: ",
            (line.origin, warning),
            " · proxy: ",
            (line.proxy or "?", warning),
        )
        if line.origin not in line.message or (line.proxy and line.proxy not in line.message):
            message.append(f" · {line.message}")
        grid.add_row(clock, source, message, style=self._style("warning-muted", background=True))
        return grid

    def _show_info(self) -> None:
        name = self.cachier.cache_name
        whose = f"App log of {name}" if name else "App log"
        count = len(self.lines)
        info = Text(
            f"{whose} · {count} line{'s' if count != 1 else ''} · ",
            no_wrap=True,
            overflow="ellipsis",
        )
        info.append(f"{FLUSH_GLYPH} FLUSH", style=self._style("text-warning", "bold"))
        info.append(" lines show origin and proxy")
        self.query_one("#logs-info", Static).update(info)

    def _show_unseen(self) -> None:
        hint = self.query_one("#logs-new", Static)
        hint.set_class(self.unseen > 0, "-shown")
        if self.unseen:
            plural = "s" if self.unseen != 1 else ""
            hint.update(f"▼ {self.unseen} new line{plural} below · end or G: follow newest")

    @on(LogView.WidthChanged)
    def _rewrap(self) -> None:
        view = self.query_one(LogView)
        if not self.lines:
            return
        following = view.following
        view.clear()
        previous = None
        for line in self.lines:
            self._write(view, line, previous, scroll=following)
            previous = line

    @on(LogView.FollowChanged)
    def _follow_changed(self, message: LogView.FollowChanged) -> None:
        if message.following:
            self.unseen = 0
            self._show_unseen()

    def action_follow(self) -> None:
        view = self.query_one(LogView)
        view.scroll_end(animate=False, immediate=True)
        view.following = True
        self.unseen = 0
        self._show_unseen()

    def action_audit(self) -> None:
        """Who changed what: the cache's audit trail (its owner's view of it)."""
        if self.cachier.sso is None:
            self.notify("Choose a cache on the Caches page (1) first.")
            return
        self.app.push_screen(AuditScreen(self.client, self.cachier.sso, self.cachier.cache_name))

    def action_backend_log(self) -> None:
        """The in-process backend's own log lines (uvicorn, monitor), kept off the terminal."""
        self.app.push_screen(BackendLogScreen(self.cachier.settings.backend_log))
