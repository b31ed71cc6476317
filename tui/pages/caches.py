"""Caches (operator): every cache with its plan, place, cluster light and live figures.

The backend may hold 10 000 caches, so the page never asks for all of them: the table holds
the caches loaded so far, in the list's order (by name), and a refresh asks again only
for the rows on screen and a margin (``CachesPage.load``). Scrolling near the last
loaded row loads the next page; ``end`` loads the rest and goes to the last cache; ``/``
filters (the list's ``q``: name, id, cluster or plan). The line under the table says where
the cursor is among all the caches (the list's ``total``).

A page answers for a range of the list: every cache after its starting key up to its last
cache (or to the end, on the last page) is on it. Each answer replaces the loaded rows of
its range, so a cache created or deleted elsewhere appears or goes when its rows are
asked again, and a refresh never needs more than the rows around the screen. The list's
cursors are opaque: the page keeps the one that follows each page's last cache, and asks
from the nearest one above the screen.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Header, Input, Label, Select, Static

from tui.errors import ApiError
from tui.messages import CacheCreated, CachesFetched, FetchFailed, PlansFetched
from tui.pages.base import Page
from tui.units import size
from tui.urls import sso_of
from tui.widgets.footer import SteadyFooter
from tui.widgets.status_light import light_text
from tui.widgets.tables import cursor_key, upsert_row

if TYPE_CHECKING:  # annotations only: the page's first frame must not wait for pydantic
    from backend.api.schemas import CacheOut, CachePageOut, PlanOut
    from tui.client import CachierClient

DEFAULT_PLAN = "100mb"  # preselected when the backend offers it
FIRST_PAGE = 60  # rows asked for before the table's height is known (attaching)
MARGIN = 20  # rows asked for beyond the screen, so scrolling a little shows fresh rows
BULK_PAGE = 500  # rows per request when ``end`` loads the rest of the list
MAX_PAGE = 1000  # the list's largest page
CHROME = 4  # lines of the page that are not rows: header, table header, hint, footer
FILTER_LINES = 3  # the filter field, when open (a bordered input)

Key = tuple[str, str]  # (name, id): the list's order


def key_of(cache: CacheOut) -> Key:
    return cache.name, cache.id


def badged_name(cache: CacheOut) -> str:
    """``⚠2 shop`` when two of its alerts fire: before the name, so a long name is cut at
    its end, not the badge (names have no spaces)."""
    return f"⚠{cache.alerts_firing} {cache.name}" if cache.alerts_firing else cache.name


def unbadged(name: object) -> str:
    """The name a badged cell sorts by."""
    text = str(name)
    return text.split(" ", 1)[1] if text.startswith("⚠") else text


async def fetch_caches(client: CachierClient, limit: int = FIRST_PAGE) -> CachesFetched:
    """The first page of the Caches page (also the first answer when attaching as an
    operator), with the cluster lights."""
    page, status = await asyncio.gather(client.caches(limit), client.status())
    return CachesFetched(page, status)


class CreateCacheModal(ModalScreen[tuple[str, str, str | None] | None]):
    """Name, plan and region of a new cache; escape cancels. The plans are the backend's
    (``GET /api/v1/plans``), so a plan added there is offered here without a release."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="create.cancel")]

    def __init__(self, regions: list[str], plans: list[str]) -> None:
        super().__init__()
        self.regions = regions
        self.plans = plans

    def compose(self) -> ComposeResult:
        plan = DEFAULT_PLAN if DEFAULT_PLAN in self.plans else self.plans[0]
        with Vertical(id="create-cache", classes="dialog"):
            yield Label("New cache", classes="question")
            yield Input(placeholder="name (letters, digits, . _ -)", id="name")
            yield Select([(p, p) for p in self.plans], value=plan, id="plan", allow_blank=False)
            yield Select(
                [(r, r) for r in self.regions],
                value=self.regions[0],
                id="region",
                allow_blank=False,
            )
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Create", id="create", variant="primary")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "create":
            self._submit()
        else:
            self.dismiss(None)

    def on_input_submitted(self) -> None:
        self._submit()

    def _submit(self) -> None:
        name = self.query_one("#name", Input).value.strip()
        if not name:
            self.notify("a cache needs a name", severity="warning")
            return
        plan = self.query_one("#plan", Select).value
        region = self.query_one("#region", Select).value
        self.dismiss((name, str(plan), str(region)))

    def action_cancel(self) -> None:
        self.dismiss(None)


class CacheTable(DataTable):
    """The caches; ``end`` (and ``ctrl+end``) asks for the last cache of the whole list,
    not of the rows loaded so far."""

    BINDINGS = [Binding("end,ctrl+end", "scroll_bottom", "Last", show=False)]

    class LastWanted(Message):
        pass

    def action_scroll_bottom(self) -> None:
        super().action_scroll_bottom()
        self.post_message(self.LastWanted())


class CachesPage(Page):
    fetches = CachesFetched
    BINDINGS = [
        Binding("enter", "open", "Open", id="caches.open"),
        Binding("c", "create", "Create cache", id="caches.create"),
        Binding("slash", "filter", "Filter", id="caches.filter"),
        Binding("escape", "close_filter", "Close filter", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.keys: list[Key] = []  # the loaded rows, in the table's order
        self.caches: dict[str, CacheOut] = {}  # the loaded rows by id
        self.cursors: dict[Key, str] = {}  # the list's cursor that follows a loaded row
        self.complete = False  # the last loaded row is the last of the list
        self.total = 0  # caches matching the filter, as the last answer counted them
        self.q = ""  # the filter
        self.lights: dict[str, str] = {}
        self.regions: list[str] = []
        self.plans: list[PlanOut] = []  # fetched when a cache is first created
        self._loading_more = False
        self._to_last = False  # ``end`` was pressed: go to the last row once it is loaded

    def compose(self) -> ComposeResult:
        yield Header()
        yield CacheTable(id="caches", cursor_type="row", zebra_stripes=True)
        yield Input(placeholder="filter: name, id, cluster or plan (enter)", id="filter")
        yield Static("", id="caches-hint", classes="hint")
        yield SteadyFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for label, key, width in (
            ("Cache", "name", 11),
            ("Plan", "plan", 5),
            ("Region", "region", 9),
            ("Cluster", "cluster", 17),
            ("Memory", "memory", 12),
            ("Hits", "hits", 4),
            ("Conns", "conns", 5),
        ):
            table.add_column(label, key=key, width=width)
        self.query_one("#filter", Input).display = False
        self.watch(table, "scroll_y", self._scrolled, init=False)
        self._show_position()

    def on_resize(self) -> None:
        self._fit_table()

    def _fit_table(self) -> None:
        """The table is as tall as its rows, up to what the screen leaves it, so the hint
        (and the filter, when open) stays right under it and it scrolls itself."""
        field = self.query_one("#filter", Input)
        room = self.size.height - CHROME + 1 - (FILTER_LINES if field.display else 0)
        self.query_one(DataTable).styles.max_height = max(room, 2)

    # -- what to ask for -----------------------------------------------------------------
    def _rows_shown(self) -> tuple[int, int]:
        """The index of the first row on screen and how many rows the screen can hold (the
        table's own height is that of its rows until it fills the screen)."""
        table = self.query_one(DataTable)
        shown = self.size.height - CHROME if self.size.height > CHROME else FIRST_PAGE
        return min(int(table.scroll_y), len(self.keys)), shown

    def _anchor(self, before: int) -> tuple[Key | None, str | None]:
        """The nearest loaded row above index ``before`` whose following cursor is known
        (None: the list's start), and that cursor."""
        index = min(before, len(self.keys)) - 1
        while index >= 0 and self.keys[index] not in self.cursors:
            index -= 1
        if index < 0:
            return None, None
        return self.keys[index], self.cursors[self.keys[index]]

    async def load(self) -> CachesFetched:
        """The rows on screen and ``MARGIN`` more, and the cluster lights.

        The request starts at the nearest known cursor above the screen. When that is
        far above (after ``end`` loaded big pages), the rows up to the screen are asked
        for first, once: that answer's cursor is then the one just above the screen, and
        the next refreshes cost only the rows shown."""
        first, shown = self._rows_shown()
        after, cursor = self._anchor(first)
        start = 0 if after is None else bisect_right(self.keys, after)
        q = self.q
        if first - start > MARGIN:
            bridge = await self.client.caches(min(first - start, MAX_PAGE), cursor, q)
            self.post_message(CachesFetched(bridge, None, after, q))
            if bridge.items and bridge.next_cursor is not None:
                after, cursor, start = key_of(bridge.items[-1]), bridge.next_cursor, first
        limit = min(first - start + shown + MARGIN, MAX_PAGE)
        page, status = await asyncio.gather(
            self.client.caches(limit, cursor, q), self.client.status()
        )
        return CachesFetched(page, status, after, q)

    def _maybe_load_more(self) -> None:
        """Near the last loaded row (and more exist): the next page."""
        if self.complete or self._loading_more or not self.keys or self.cachier.client is None:
            return
        first, shown = self._rows_shown()
        cursor_row = self.query_one(DataTable).cursor_row
        if max(first + shown, cursor_row + 1) + MARGIN // 2 > len(self.keys):
            self._next_page(shown + MARGIN)

    def _next_page(self, limit: int) -> None:
        """The page after the last loaded row (whose cursor is known unless the list
        ended there)."""
        cursor = self.cursors.get(self.keys[-1]) if self.keys else None
        if cursor is not None:
            self._loading_more = True
            self._load_page(self.keys[-1], cursor, limit)

    @work(group="more", exit_on_error=False)
    async def _load_page(self, after: Key, cursor: str, limit: int) -> None:
        q = self.q
        try:
            page = await self.client.caches(limit, cursor, q)
        except ApiError as error:
            self._loading_more = self._to_last = False
            self.post_message(FetchFailed(str(error)))
            return
        self.post_message(CachesFetched(page, None, after, q))

    # -- showing an answer ---------------------------------------------------------------
    @on(CachesFetched)
    def show(self, message: CachesFetched) -> None:
        if message.q != self.q:
            return  # asked before the filter changed
        if message.status is not None:
            self.lights = {c.name: c.light for r in message.status.regions for c in r.clusters}
            self.regions = [r.name for r in message.status.regions]
        if message.status is None and self._loading_more:
            self._loading_more = False
        with self.app.batch_update():
            self._merge(message.after, message.page)
        self.total = message.page.total
        # The title's badge: every cache's alerts, counted by the backend (not only the
        # rows loaded here, nor only those the filter keeps).
        self.cachier.show_alerts(message.page.alerts_firing)
        self._show_position()
        if self._to_last:
            self._go_to_last()
        else:
            self._maybe_load_more()

    def _merge(self, after: Key | None, page: CachePageOut) -> None:
        """The page's range of the list (after ``after``, up to its last cache or to the
        end) replaces the loaded rows of that range."""
        table = self.query_one(DataTable)
        items = page.items
        low = 0 if after is None else bisect_right(self.keys, after)
        if after is not None and not self.keys:
            return  # the rows it followed were dropped meanwhile (the filter changed)
        ends_list = page.next_cursor is None
        high = len(self.keys) if ends_list else bisect_right(self.keys, key_of(items[-1]))
        old = self.keys[low:high]
        new = [key_of(c) for c in items]
        kept, highlighted = set(new), cursor_key(table)
        for key in old:
            if key not in kept:
                table.remove_row(key[1])
                del self.caches[key[1]]
                self.cursors.pop(key, None)
        self.keys[low:high] = new
        styles = self.app.theme_variables
        added = []
        for cache in items:
            if cache.id not in self.caches:
                added.append(cache.id)
            self.caches[cache.id] = cache
            upsert_row(table, cache.id, self._cells(cache, styles))
        if page.next_cursor is not None:
            self.cursors[new[-1]] = page.next_cursor
        if ends_list:
            self.complete = True
        elif low + len(new) == len(self.keys):
            self.complete = False
        tail = {key[1] for key in self.keys[len(self.keys) - len(added) :]}
        if added and tail != set(added):  # not all appended after the others: reorder
            table.sort("name", key=unbadged)
            if highlighted is not None and highlighted in table.rows:
                table.move_cursor(row=table.get_row_index(highlighted), scroll=False)

    def _cells(self, cache: CacheOut, styles: dict[str, str]) -> list:
        """A row's cells; the name carries the cache's firing alerts (``⚠2 shop``)."""
        usage = cache.usage
        gets = usage.get_hits + usage.get_misses
        share = usage.memory_used / cache.memory_limit if cache.memory_limit else 0
        cluster = Text(f"{cache.cluster} ")
        cluster.append_text(light_text(self.lights.get(cache.cluster, "green"), styles))
        return [
            badged_name(cache),
            cache.plan,
            cache.region,
            cluster,
            f"{size(usage.memory_used):>5} {share:4.0%}",
            f"{usage.get_hits / gets:.0%}" if gets else "—",
            str(usage.connections),
        ]

    def _show_position(self) -> None:
        """Where the cursor is among all the caches, and the filter."""
        table = self.query_one(DataTable)
        if self.total and self.keys:
            where = f"{table.cursor_row + 1:,} of {self.total:,}"
        else:
            where = "no cache" if not self.q else "no cache matches"
        matching = f" matching “{self.q}”" if self.q else ""
        self.query_one("#caches-hint", Static).update(
            f"{where}{matching} · enter: open · c: create · /: filter"
        )

    def _scrolled(self) -> None:
        self._maybe_load_more()

    @on(DataTable.RowHighlighted)
    def _moved(self) -> None:
        self._show_position()
        self._maybe_load_more()

    # -- the last cache ------------------------------------------------------------------
    @on(CacheTable.LastWanted)
    def _last_wanted(self) -> None:
        if self.complete:
            return  # the table's own binding is already there
        self._to_last = True
        if not self._loading_more and self.cachier.client is not None:
            self._next_page(BULK_PAGE)

    def _go_to_last(self) -> None:
        if self.complete:
            self._to_last = False
            table = self.query_one(DataTable)
            table.move_cursor(row=len(self.keys) - 1)
        elif not self._loading_more:
            self._next_page(BULK_PAGE)

    # -- the filter ----------------------------------------------------------------------
    def action_filter(self) -> None:
        field = self.query_one("#filter", Input)
        field.value = self.q
        field.display = True
        self._fit_table()
        field.focus()

    def action_close_filter(self) -> None:
        field = self.query_one("#filter", Input)
        if field.display:
            field.display = False
            self._fit_table()
            self.query_one(DataTable).focus()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self.action_close_filter()
        q = event.value.strip()
        if q == self.q:
            return
        self.q, self.keys, self.caches, self.cursors = q, [], {}, {}
        self.complete, self.total, self._to_last = False, 0, False
        self._loading_more = False  # a page still on its way is for the old filter
        self.query_one(DataTable).clear()
        self._show_position()
        self.refresh_now()

    # -- opening one ---------------------------------------------------------------------
    def action_open(self) -> None:
        key = cursor_key(self.query_one(DataTable))
        if key is None:
            return
        cache = self.caches[key]
        self.cachier.open_cache(sso_of(cache.dashboard_url), cache.name)

    @on(DataTable.RowSelected)
    def _row_selected(self) -> None:
        self.action_open()

    def action_create(self) -> None:
        """The dialog, once the plans are known (fetched on the first use: they change only
        with the backend's release, and the page refreshes every second)."""
        if self.plans:
            self._ask_for_cache()
        else:
            self._fetch_plans()

    @work(exclusive=True, group="plans", exit_on_error=False)
    async def _fetch_plans(self) -> None:
        try:
            self.post_message(PlansFetched(await self.client.plans()))
        except ApiError as error:
            self.post_message(FetchFailed(f"cannot list the plans: {error}"))

    @on(PlansFetched)
    def _plans_fetched(self, message: PlansFetched) -> None:
        self.plans = message.plans
        if self.plans and self.is_current:  # not over another page opened meanwhile
            self._ask_for_cache()

    def _ask_for_cache(self) -> None:
        def answered(answer: tuple[str, str, str | None] | None) -> None:
            if answer is not None:
                name, plan, region = answer
                self.mutate(
                    "create",
                    f"Creating {name}",
                    lambda client: client.create_cache(name, plan, region),
                    CacheCreated,
                )

        plans = [plan.name for plan in self.plans]
        self.app.push_screen(CreateCacheModal(self.regions or ["local"], plans), answered)

    @on(CacheCreated)
    def _created(self, message: CacheCreated) -> None:
        self.notify(f"cache {message.cache.name} created on {message.cache.cluster}")
