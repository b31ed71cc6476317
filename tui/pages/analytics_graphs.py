"""The Analytics page's seven graphs, as one grid the page mounts with its first data.

Kept out of the page's module so that plotext and the graphs' widgets load only once
there is something to draw, after the page has painted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Grid

from tui.series import History
from tui.units import size
from tui.widgets.graph import Graph, Series, compact, duration_us, percent, short_bytes

if TYPE_CHECKING:
    from backend.api.schemas import CacheInfo


class AnalyticsGraphs(Grid):
    """Memory, hit rate, gets/sets per second, connections, items, evictions per second,
    and command latency across the whole width (three lines and their values need it)."""

    def __init__(self, window_s: float, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.window_s = window_s

    def compose(self) -> ComposeResult:
        window = self.window_s
        yield Graph(
            "memory", fmt=short_bytes, y_floor=1024, y_base=1024, window_s=window, id="graph-memory"
        )
        yield Graph("hit rate", fmt=percent, y_max=100.0, window_s=window, id="graph-hits")
        yield Graph("ops/s", window_s=window, id="graph-ops")
        yield Graph("connections", window_s=window, id="graph-connections")
        yield Graph("items", window_s=window, id="graph-items")
        yield Graph("evictions/s", window_s=window, id="graph-evictions")
        yield Graph(
            "latency",
            fmt=duration_us,
            y_floor=10.0,
            log_scale=True,
            window_s=window,
            id="graph-latency",
        )

    def show(self, history: History, source: object, cache: CacheInfo) -> None:
        """The history's series; ``source`` names whose they are (see ``Graph.set_data``)."""
        last = history.last

        def show(graph: str, *series: Series, summary: str | None = None) -> None:
            widget = self.query_one(f"#graph-{graph}", Graph)
            widget.set_data(history.t, *series, summary=summary, source=source)

        show(
            "memory",
            Series("used", history.memory_used, "primary"),
            summary=None
            if last is None
            else (f"{size(last.memory_used)} of {size(last.memory_limit or cache.memory_limit)}"),
        )
        show("hits", Series("hits", history.hit_percent, "success"))
        show(
            "ops", Series("gets", history.gets, "accent"), Series("sets", history.sets, "secondary")
        )
        show("connections", Series("connections", history.connections, "warning"))
        show("items", Series("items", history.items, "primary"))
        show(
            "evictions",
            Series("evictions", history.evictions, "error"),
            summary=None
            if last is None
            else (f"{compact(history.evictions[-1] or 0)}  ({compact(last.evictions)} total)"),
        )
        show(
            "latency",
            Series("p50", history.latency_p50, "success"),
            Series("p99", history.latency_p99, "warning", peak=True),
            Series("max", history.latency_max, "error", peak=True),
        )
