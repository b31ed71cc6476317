"""Caches (operator): every cache with its plan, place, cluster light and live figures."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Header, Input, Label, Select, Static

from tui.errors import ApiError
from tui.messages import CacheCreated, CachesFetched, FetchFailed, PlansFetched
from tui.pages.base import Page
from tui.units import size
from tui.urls import sso_of
from tui.widgets.footer import SteadyFooter
from tui.widgets.status_light import light_text
from tui.widgets.tables import cursor_key, remove_rows_except, upsert_row

if TYPE_CHECKING:  # annotations only: the page's first frame must not wait for pydantic
    from backend.api.schemas import CacheOut, PlanOut
    from tui.client import CachierClient

DEFAULT_PLAN = "100mb"  # preselected when the backend offers it


async def fetch_caches(client: CachierClient) -> CachesFetched:
    """What the Caches page shows (also the first answer when attaching as an operator)."""
    caches, status = await asyncio.gather(client.caches(), client.status())
    return CachesFetched(caches, status)


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


class CachesPage(Page):
    fetches = CachesFetched
    BINDINGS = [
        Binding("enter", "open", "Open", id="caches.open"),
        Binding("c", "create", "Create cache", id="caches.create"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.caches: dict[str, CacheOut] = {}
        self.regions: list[str] = []
        self.plans: list[PlanOut] = []  # fetched when a cache is first created

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="caches", cursor_type="row", zebra_stripes=True)
        yield Static("enter: open the cache · c: create a cache", classes="hint")
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

    async def load(self) -> CachesFetched:
        return await fetch_caches(self.client)

    @on(CachesFetched)
    def show(self, message: CachesFetched) -> None:
        lights = {c.name: c.light for r in message.status.regions for c in r.clusters}
        self.regions = [r.name for r in message.status.regions]
        styles = self.app.theme_variables
        table = self.query_one(DataTable)
        self.caches = {c.id: c for c in message.caches}
        with self.app.batch_update():
            for cache in message.caches:
                usage = cache.usage
                gets = usage.get_hits + usage.get_misses
                share = usage.memory_used / cache.memory_limit if cache.memory_limit else 0
                cluster = Text(f"{cache.cluster} ")
                cluster.append_text(light_text(lights.get(cache.cluster, "green"), styles))
                name = Text(cache.name)
                if cache.alerts_firing:  # before the name: a long name is cut at its end
                    name = Text.assemble((f"⚠{cache.alerts_firing} ", "bold reverse"), cache.name)
                upsert_row(
                    table,
                    cache.id,
                    [
                        name,
                        cache.plan,
                        cache.region,
                        cluster,
                        f"{size(usage.memory_used):>5} {share:4.0%}",
                        f"{usage.get_hits / gets:.0%}" if gets else "—",
                        str(usage.connections),
                    ],
                )
            remove_rows_except(table, self.caches)
        self.cachier.show_alerts(sum(c.alerts_firing for c in message.caches))

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
