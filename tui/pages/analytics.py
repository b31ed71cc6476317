"""Analytics: one cache's header and live graphs; *Flush cache* and *Move cache*.

At 80×24 the six graphs sit in a 2×3 grid under a four-line header, so nothing scrolls;
from 120 columns they become 3×2 and taller. Counters arrive cumulative (as memcached
reports them) and are turned into per-second rates here, before the graphs downsample.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical
from textual.widgets import Footer, Header, Static

from backend.api.schemas import CacheInfo, FlushOut, MigrateOut, Sample
from tui.client import CachierClient, sso_of
from tui.messages import AnalyticsFetched
from tui.pages.base import Page
from tui.units import size
from tui.widgets.confirm import ConfirmModal
from tui.widgets.graph import Graph, Series, compact, percent, short_bytes, theme_colour

WINDOW_S = 600.0  # the graphs' span: ten minutes at full (1 s) resolution
HIT_RATE_SPAN_S = 60.0  # the header's "current" hit rate is over the last minute


def rates(samples: Sequence[Sample], counter: str) -> list[float | None]:
    """Per-second rate of a cumulative counter between consecutive samples; ``None`` for
    the first sample and wherever the counter went backwards (a restart or a move)."""
    out: list[float | None] = [None] * min(1, len(samples))
    for before, after in zip(samples, samples[1:], strict=False):
        delta = getattr(after, counter) - getattr(before, counter)
        seconds = after.t - before.t
        out.append(delta / seconds if seconds > 0 and delta >= 0 else None)
    return out


def recent_hit_rate(samples: Sequence[Sample], span_s: float = HIT_RATE_SPAN_S) -> float | None:
    """Hits / gets over the last ``span_s`` seconds, from the cumulative counters."""
    if not samples:
        return None
    last = samples[-1]
    first = next((s for s in samples if s.t >= last.t - span_s), last)
    if first is last and len(samples) > 1:
        first = samples[-2]
    hits = last.get_hits - first.get_hits
    gets = hits + last.get_misses - first.get_misses
    if gets <= 0 or hits < 0:
        return last.hit_rate
    return hits / gets


async def fetch_analytics(client: CachierClient, sso: str,
                          since: float | None = None) -> AnalyticsFetched:  # fmt: skip
    """What the Analytics page shows (also the dashboard URL's start-up check)."""
    cache, stats = await asyncio.gather(client.cache(sso), client.stats(sso, WINDOW_S, since))
    return AnalyticsFetched(cache, stats, since)


class AnalyticsPage(Page):
    """The current cache (``app.sso``): who and where it is, and how it is doing."""

    needs_cache = True
    fetches = AnalyticsFetched
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    BINDINGS = [
        Binding("f", "flush", "Flush cache", id="analytics.flush"),
        Binding("m", "move", "Move cache", id="analytics.move"),
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
        self.add_class("-loading")
        self.cache: CacheInfo | None = None
        self.samples: Sequence[Sample] = ()
        self._samples_sso: str | None = None  # the dashboard secret the samples came from
        self.busy: str | None = None  # the mutation running ("flush", "move"), if any
        self._binding_state: tuple[object, ...] = ()

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="analytics-info"):
            yield Static("loading…", id="analytics-title")
            yield Static(id="analytics-servers")
            yield Static(id="analytics-figures")
            yield Static(id="analytics-hint", classes="hint")
        yield Static(
            "No cache chosen yet: choose a cache on the Caches page (1), then come back "
            "here with 2 or Enter.",
            id="analytics-empty",
        )
        with Grid(id="analytics-graphs"):
            yield Graph("memory", fmt=short_bytes, y_floor=1024, y_base=1024, id="graph-memory")
            yield Graph("hit rate", fmt=percent, y_max=100.0, id="graph-hits")
            yield Graph("ops/s", id="graph-ops")
            yield Graph("connections", id="graph-connections")
            yield Graph("items", id="graph-items")
            yield Graph("evictions/s", id="graph-evictions")
        yield Footer()

    async def load(self) -> AnalyticsFetched:
        """After the first fetch of a cache, only the samples newer than the last one held:
        a refresh then parses one sample, not ten minutes of them."""
        sso = self.cachier.sso
        since = self.samples[-1].t if self.samples and self._samples_sso == sso else None
        return await fetch_analytics(self.cachier.client, sso, since)

    def show_no_cache(self) -> None:
        self.add_class("-no-cache")
        self._sync_bindings()

    # -- data ---------------------------------------------------------------------------
    @on(AnalyticsFetched)
    def show(self, message: AnalyticsFetched) -> None:
        fresh = message.stats.samples
        if message.since is not None and self.samples and self.samples[-1].t == message.since:
            if not fresh and self.cache == message.cache:
                return  # nothing new: no repaint
            horizon = (fresh[-1].t if fresh else self.samples[-1].t) - WINDOW_S
            fresh = [s for s in self.samples if s.t > horizon] + fresh
        self.cache, self.samples = message.cache, fresh
        self._samples_sso = self.cachier.sso
        if self.cachier.cache_name is None:
            self.cachier.cache_name = message.cache.name
        with self.app.batch_update():
            self.remove_class("-no-cache", "-loading")
            self._show_info()
            self._show_graphs()
        self._sync_bindings()

    def _show_info(self) -> None:
        cache = self.cache
        assert cache is not None
        accent, muted = theme_colour(self.app, "accent"), theme_colour(self.app, "foreground-muted")
        title = Text.assemble(
            (cache.name, "bold"), "  plan ", (cache.plan, "bold"),
            "  region ", (cache.region, "bold"), "  cluster ",
            (f" {cache.cluster} ", f"bold reverse {accent}".strip()),
        )  # fmt: skip
        self.query_one("#analytics-title", Static).update(title, layout=False)
        servers = Text.assemble("servers ", (cache.servers, "bold"))
        if cache.tls_servers:
            servers.append_text(Text.assemble("  tls ", (cache.tls_servers, "bold")))
        servers.append("   graphs: last 10 min, UTC", style=muted)
        self.query_one("#analytics-servers", Static).update(servers, layout=False)
        last = self.samples[-1] if self.samples else None
        limit = last.memory_limit if last is not None and last.memory_limit else cache.memory_limit
        if last is None:
            memory = f"— / {size(limit)}"
        else:
            share = last.memory_used / limit
            shown = "<1%" if 0 < share < 0.01 else f"{share:.0%}"
            memory = f"{size(last.memory_used)} / {size(limit)} ({shown})"
        rate = recent_hit_rate(self.samples)
        figures = Text.assemble(
            "memory ", (memory, "bold"),
            "  hit rate ", ("—" if rate is None else f"{rate:.0%}", "bold"), " (last min)",
        )  # fmt: skip
        self.query_one("#analytics-figures", Static).update(figures, layout=False)
        if self.busy == "move":
            hint = "moving the cache…"
        elif self.busy == "flush":
            hint = "flushing the cache…"
        elif not cache.can_migrate:
            hint = f"m Move cache unavailable: {cache.migrate_refusal or 'not possible now'}"
        else:
            hint = "f flush · m move to another cluster (its data is lost)"
        self.query_one("#analytics-hint", Static).update(hint, layout=False)

    def _show_graphs(self) -> None:
        samples = self.samples
        times = [s.t for s in samples]
        last = samples[-1] if samples else None
        memory = self.query_one("#graph-memory", Graph)
        summary = None if last is None else (
            f"{size(last.memory_used)} of {size(last.memory_limit or self.cache.memory_limit)}"
        )  # fmt: skip
        memory.set_data(times, Series("used", [s.memory_used for s in samples], "primary"),
                        summary=summary)  # fmt: skip
        hits = [None if s.hit_rate is None else s.hit_rate * 100 for s in samples]
        self.query_one("#graph-hits", Graph).set_data(times, Series("hits", hits, "success"))
        self.query_one("#graph-ops", Graph).set_data(
            times,
            Series("gets", rates(samples, "cmd_get"), "accent"),
            Series("sets", rates(samples, "cmd_set"), "secondary"),
        )
        self.query_one("#graph-connections", Graph).set_data(
            times, Series("connections", [s.curr_connections for s in samples], "warning")
        )
        self.query_one("#graph-items", Graph).set_data(
            times, Series("items", [s.items for s in samples], "primary")
        )
        evictions = rates(samples, "evictions")
        total = f"{compact(last.evictions)} total" if last is not None else None
        self.query_one("#graph-evictions", Graph).set_data(
            times, Series("evictions", evictions, "error"),
            summary=None if total is None else f"{compact(evictions[-1] or 0)}  ({total})",
        )  # fmt: skip

    # -- bindings -----------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "flush":
            return None if self.cache is None or self.busy else True
        if action == "move":
            if self.cache is None or self.busy or not self.cache.can_migrate:
                return None  # shown dimmed; "move_refused" answers the key instead
            return True
        if action == "move_refused":
            return self.cache is not None and not self.busy and not self.cache.can_migrate
        return True

    def _sync_bindings(self) -> None:
        """Refresh the footer only when what it shows would change."""
        cache = self.cache
        state = (cache is not None, cache.can_migrate if cache else None, self.busy)
        if state != self._binding_state:
            self._binding_state = state
            self.refresh_bindings()

    # -- actions ------------------------------------------------------------------------
    def action_flush(self) -> None:
        cache = self.cache
        if cache is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._mutate("flush", f"Flushing {cache.name}",
                             self.cachier.client.flush(sso_of(cache.dashboard_url)),
                             lambda out: self._flushed(cache, out))  # fmt: skip

        self.app.push_screen(
            ConfirmModal(f"Flush cache {cache.name}?",
                         f"Every item in {cache.name} is deleted, for every client.",
                         yes="Flush"),
            answered,
        )  # fmt: skip

    def _flushed(self, cache: CacheInfo, out: FlushOut) -> None:
        self.notify(f"{cache.name} flushed on proxy {out.proxy}", title="Flush cache")

    def action_move(self) -> None:
        cache = self.cache
        if cache is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._mutate("move", f"Moving {cache.name}",
                             self.cachier.client.migrate(sso_of(cache.dashboard_url)),
                             lambda out: self._moved(cache, out))  # fmt: skip

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
        self.notify(reason or "this cache cannot move now", title="Move cache unavailable",
                    severity="warning", timeout=6)  # fmt: skip

    def _moved(self, cache: CacheInfo, out: MigrateOut) -> None:
        self.notify(f"{cache.name} moved from cluster {out.previous_cluster} to {out.cluster}; "
                    "it is empty now", title="Move cache", timeout=8)  # fmt: skip
        if self.cache is not None and self.cache.id == cache.id:  # the header now, not later
            self.cache = self.cache.model_copy(update={"cluster": out.cluster,
                                                       "servers": out.servers})  # fmt: skip
            self._show_info()

    def _mutate(self, kind: str, description: str, call: Coroutine[Any, Any, Any],
                done: Callable[[Any], None]) -> None:  # fmt: skip
        """One mutation at a time: its bindings are disabled until it has finished."""
        self.busy = kind
        self._sync_bindings()
        if self.cache is not None:
            self._show_info()

        async def guarded() -> Any:
            try:
                return await call
            finally:
                self.busy = None
                self._sync_bindings()

        self.run_action(description, guarded(), done)
