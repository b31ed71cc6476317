"""Analytics: one cache's header and live graphs; *Flush cache* and *Move cache*.

At 80×24 the six graphs sit in a 2×3 grid under a four-line header, so nothing scrolls;
from 120 columns they become 3×2 and taller. The page keeps the samples in a ``History``,
which derives the graphed series (rates from cumulative counters) once per sample.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Header, Static

from tui.messages import AnalyticsFetched, CacheFlushed, CacheMoved
from tui.pages.alerts import AlertsScreen
from tui.pages.base import Page
from tui.pages.keys import KeysScreen
from tui.series import History
from tui.units import size
from tui.urls import sso_of
from tui.widgets.confirm import ConfirmModal
from tui.widgets.footer import SteadyFooter
from tui.widgets.line import FixedLine
from tui.widgets.theme import theme_colour

if TYPE_CHECKING:  # annotations only: the page's first frame must not wait for these
    from backend.api.schemas import CacheInfo
    from tui.client import CachierClient
    from tui.pages.analytics_graphs import AnalyticsGraphs

WINDOW_S = 600.0  # the graphs' span: ten minutes at full (1 s) resolution
# Samples kept: the window plus a minute, more than a graph bucket, so the buckets a graph
# has drawn keep all their samples until they scroll out (and need no redraw meanwhile).
KEPT_S = WINDOW_S + 60.0
HIT_RATE_SPAN_S = 60.0  # the header's "current" hit rate is over the last minute


async def fetch_analytics(
    client: CachierClient, sso: str, since: float | None = None
) -> AnalyticsFetched:
    """What the Analytics page shows (also the first answer when attaching to a cache)."""
    cache, stats = await asyncio.gather(client.cache(sso), client.stats(sso, KEPT_S, since))
    return AnalyticsFetched(cache, stats, since)


class AnalyticsPage(Page):
    """The current cache (``app.sso``): who and where it is, and how it is doing."""

    needs_cache = True
    fetches = AnalyticsFetched
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    BINDINGS = [
        Binding("f", "flush", "Flush", id="analytics.flush"),
        Binding("m", "move", "Move", id="analytics.move"),
        Binding("k", "keys", "Keys", id="analytics.keys"),
        Binding("a", "alerts", "Alerts", id="analytics.alerts"),
        # The same key while moving is refused: says why (the footer shows "m" dimmed).
        Binding(
            "m",
            "move_refused",
            "Move cache (when unavailable: why)",
            show=False,
            id="analytics.move-refused",
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.cache: CacheInfo | None = None
        self.history = History(KEPT_S)
        self._graph_grid: AnalyticsGraphs | None = None
        self._samples_sso: str | None = None  # the dashboard secret the samples came from
        self._binding_state = self._footer_state()  # as the footer is composed

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="analytics-info"):
            yield FixedLine("loading…", id="analytics-title")
            yield FixedLine(id="analytics-servers")
            yield FixedLine(id="analytics-figures")
            yield FixedLine(id="analytics-hint", classes="hint")
        yield Static(
            "No cache chosen yet: choose a cache on the Caches page (1), then come back "
            "here with 2 or Enter.",
            id="analytics-empty",
        )
        yield SteadyFooter()

    async def load(self) -> AnalyticsFetched:
        """After the first fetch of a cache, only the samples newer than the last one held:
        a refresh then parses one sample, not ten minutes of them."""
        sso = self.sso
        last = self.history.last
        since = last.t if last is not None and self._samples_sso == sso else None
        return await fetch_analytics(self.client, sso, since)

    def show_no_cache(self) -> None:
        self.add_class("-no-cache")
        self._sync_bindings()

    # -- data ---------------------------------------------------------------------------
    @on(AnalyticsFetched)
    async def show(self, message: AnalyticsFetched) -> None:
        graphs = await self._graphs()  # first: the state below and its display change together
        fresh, last = message.stats.samples, self.history.last
        if message.since is not None and last is not None and last.t == message.since:
            if not fresh and self.cache == message.cache:
                return  # nothing new: no repaint
            self.history.extend(fresh)
        else:
            self.history.replace(fresh)
        self.cache = message.cache
        self._samples_sso = self.cachier.sso
        if self.cachier.cache_name is None:
            self.cachier.cache_name = message.cache.name
        self.cachier.show_alerts(message.cache.alerts_firing)
        with self.app.batch_update():
            self.remove_class("-no-cache")
            self._show_info()
            graphs.show(self.history, self._samples_sso, message.cache)
        self._sync_bindings()

    async def _graphs(self) -> AnalyticsGraphs:
        """The graphs, mounted with the first data: plotext and their eighteen widgets load
        after the page has painted (and its first frame does not wait for them)."""
        if self._graph_grid is None:
            from tui.pages.analytics_graphs import AnalyticsGraphs

            self._graph_grid = AnalyticsGraphs(WINDOW_S, id="analytics-graphs")
            await self.mount(self._graph_grid, after="#analytics-empty")
        return self._graph_grid

    def _show_info(self) -> None:
        cache = self.cache
        assert cache is not None
        accent, muted = theme_colour(self.app, "accent"), theme_colour(self.app, "foreground-muted")
        title = Text.assemble(
            (cache.name, "bold"),
            "  plan ",
            (cache.plan, "bold"),
            "  region ",
            (cache.region, "bold"),
            "  cluster ",
            (f" {cache.cluster} ", f"bold reverse {accent}".strip()),
        )
        self.query_one("#analytics-title", FixedLine).show(title)
        servers = Text.assemble("servers ", (cache.servers, "bold"))
        if cache.tls_servers:
            servers.append_text(Text.assemble("  tls ", (cache.tls_servers, "bold")))
        servers.append("   graphs: last 10 min, UTC", style=muted)
        self.query_one("#analytics-servers", FixedLine).show(servers)
        last = self.history.last
        limit = last.memory_limit if last is not None and last.memory_limit else cache.memory_limit
        if last is None:
            memory = f"— / {size(limit)}"
        else:
            share = last.memory_used / limit
            shown = "<1%" if 0 < share < 0.01 else f"{share:.0%}"
            memory = f"{size(last.memory_used)} / {size(limit)} ({shown})"
        rate = self.history.hit_rate(HIT_RATE_SPAN_S)
        figures = Text.assemble(
            "memory ",
            (memory, "bold"),
            "  hit rate ",
            ("—" if rate is None else f"{rate:.0%}", "bold"),
            " (last min)",
        )
        self.query_one("#analytics-figures", FixedLine).show(figures)
        if self.busy == "move":
            hint = "moving the cache…"
        elif self.busy == "flush":
            hint = "flushing the cache…"
        elif not cache.can_migrate:
            hint = f"m Move cache unavailable: {cache.migrate_refusal or 'not possible now'}"
        else:
            hint = "f flush · m move to another cluster (its data is lost)"
        self.query_one("#analytics-hint", FixedLine).show(hint)

    # -- bindings -----------------------------------------------------------------------
    @property
    def busy(self) -> str | None:
        """The mutation running ("flush", "move"), if any: one at a time on this page."""
        return next(iter(self.mutating), None)

    def _footer_state(self) -> tuple[bool, bool, str | None]:
        """What the footer shows: whether a cache is chosen, whether it can move (assumed
        until its data arrives, so a paid cache's footer never changes then: Textual
        recomposes the whole footer for a change, which cost the first frame ~70 ms), and
        the mutation running."""
        chosen = not self.has_class("-no-cache")
        return chosen, self.cache is None or self.cache.can_migrate, self.busy

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Flush and move wait for each other: both move the cache's data."""
        chosen, movable, busy = self._footer_state()
        if action == "flush":
            return True if chosen and not busy else None  # None: shown dimmed
        if action == "move":
            return True if chosen and movable and not busy else None
        if action == "move_refused":  # answers "m" with the reason instead
            return chosen and not movable and not busy
        return True

    def mutations_changed(self) -> None:
        """The footer and the header's hint ("flushing the cache…") follow the mutation."""
        self._sync_bindings()
        if self.cache is not None:
            self._show_info()

    def _sync_bindings(self) -> None:
        """Refresh the footer only when what it shows would change."""
        state = self._footer_state()
        if state != self._binding_state:
            self._binding_state = state
            self.refresh_bindings()

    # -- actions ------------------------------------------------------------------------
    def action_keys(self) -> None:
        """The owner's view of the cache's keys: hot keys, prefixes, per-command hits."""
        cache = self.cache
        if cache is None:
            return
        self.app.push_screen(KeysScreen(self.client, sso_of(cache.dashboard_url), cache.name))

    def action_alerts(self) -> None:
        """The cache's alerts: their state, and the thresholds to set."""
        cache = self.cache
        if cache is None:
            return
        self.app.push_screen(AlertsScreen(self.client, sso_of(cache.dashboard_url), cache.name))

    def action_flush(self) -> None:
        cache = self.cache
        if cache is None:
            return

        sso = sso_of(cache.dashboard_url)

        def answered(yes: bool | None) -> None:
            if yes:
                self.mutate(
                    "flush",
                    f"Flushing {cache.name}",
                    lambda client: client.flush(sso),
                    partial(CacheFlushed, cache=cache),
                )

        self.app.push_screen(
            ConfirmModal(
                f"Flush cache {cache.name}?",
                f"Every item in {cache.name} is deleted, for every client.",
                yes="Flush",
            ),
            answered,
        )

    @on(CacheFlushed)
    def _flushed(self, message: CacheFlushed) -> None:
        name, proxy = message.cache.name, message.flushed.proxy
        self.notify(f"{name} flushed on proxy {proxy}", title="Flush cache")

    def action_move(self) -> None:
        cache = self.cache
        if cache is None:
            return

        sso = sso_of(cache.dashboard_url)

        def answered(yes: bool | None) -> None:
            if yes:
                self.mutate(
                    "move",
                    f"Moving {cache.name}",
                    lambda client: client.migrate(sso),
                    partial(CacheMoved, cache=cache),
                )

        self.app.push_screen(
            ConfirmModal(
                f"Move cache {cache.name} off cluster {cache.cluster}?",
                "All data in the cache is lost: it starts empty on the new cluster. "
                "Connected clients are disconnected and reconnect through the same servers.",
                yes="Move",
            ),
            answered,
        )

    def action_move_refused(self) -> None:
        reason = self.cache.migrate_refusal if self.cache else None
        self.notify(
            reason or "this cache cannot move now",
            title="Move cache unavailable",
            severity="warning",
            timeout=6,
        )

    @on(CacheMoved)
    def _moved(self, message: CacheMoved) -> None:
        cache, out = message.cache, message.moved
        self.notify(
            f"{cache.name} moved from cluster {out.previous_cluster} to {out.cluster}; "
            "it is empty now",
            title="Move cache",
            timeout=8,
        )
        if self.cache is not None and self.cache.id == cache.id:  # the header now, not later
            self.cache = self.cache.model_copy(
                update={"cluster": out.cluster, "servers": out.servers}
            )
            self._show_info()
