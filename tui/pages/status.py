"""Status: every region's clusters with their light, per-proxy state, incidents, the feed."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.events import Resize
from textual.widgets import DataTable, Header, Static
from textual.widgets.data_table import CellDoesNotExist

from tui.messages import StatusFetched
from tui.pages.base import Page
from tui.widgets.footer import SteadyFooter
from tui.widgets.status_light import LIGHTS, light_text, proxy_text
from tui.widgets.tables import upsert_row

if TYPE_CHECKING:  # annotations only: the page's first frame must not wait for pydantic
    from backend.api.schemas import ProxyStatus, StatusOut

NAME_W, LIGHT_W = 9, 10  # the cluster tables' fixed columns ("us-east-1", "◆ RESOLVED")
WHEN_W, CLUSTER_W = 12, 8  # the incidents' ("Nov 18 08:06", "use1-a")
GAP = "  "  # between two proxies on a line


class StatusPage(Page):
    """Clusters and proxies in one table (keyed rows, updated in place), incidents below.

    At 80 columns a cluster's three proxies fit one line while they are up; a proxy that is
    slow or down says more (its word, the injected fault), so its cluster's row grows to two
    lines rather than be cut. Incident causes wrap the same way, with proxies named as in
    the table (``p2``) since the row already names the cluster."""

    def __init__(self) -> None:
        super().__init__()
        self.status: StatusOut | None = None
        self._layout: list[tuple[str, int]] = []  # the clusters table's rows: key, height

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="status-body"):
            yield Static(id="legend")
            yield DataTable(id="clusters", cursor_type="row", zebra_stripes=True)
            yield Static("Recent incidents", classes="section")
            yield DataTable(id="incidents", cursor_type="row")
            yield Static(id="feed", classes="hint")
        yield SteadyFooter()

    def on_mount(self) -> None:
        clusters = self.query_one("#clusters", DataTable)
        clusters.add_column("Cluster", key="name", width=NAME_W)
        clusters.add_column("Light", key="light", width=LIGHT_W)
        clusters.add_column("Proxies: state, latency ms (usual)", key="proxies")
        incidents = self.query_one("#incidents", DataTable)
        incidents.add_column("When (UTC)", key="when", width=WHEN_W)
        incidents.add_column("Cluster", key="cluster", width=CLUSTER_W)
        incidents.add_column("Now", key="light", width=LIGHT_W)
        incidents.add_column("Cause", key="cause")
        self._show_legend()
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)

    def _theme_changed(self, _theme: object) -> None:
        """The lights' colours follow the theme (the shades differ on light themes)."""
        self._show_legend()
        if self.status is not None:
            self._show(self.status)

    def _show_legend(self) -> None:
        styles = self.app.theme_variables
        legend = Text("Legend: ")
        for light in LIGHTS:
            legend.append_text(light_text(light, styles))
            legend.append("  ")
        self.query_one("#legend", Static).update(legend)

    def on_resize(self, event: Resize) -> None:
        """Rows wrap at the page's width: a new width re-wraps them."""
        if self.status is not None:
            self._show(self.status)

    async def load(self) -> StatusFetched:
        return StatusFetched(await self.client.status())

    @on(StatusFetched)
    def show(self, message: StatusFetched) -> None:
        self.status = message.status
        self._show(message.status)

    def _show(self, status: StatusOut) -> None:
        with self.app.batch_update():
            self._show_clusters(status)
            self._show_incidents(status)
            self._show_feed()

    @on(DataTable.RowHighlighted, "#clusters")
    def _row_highlighted(self) -> None:
        self._show_feed()

    def _show_feed(self) -> None:
        """The feed of the highlighted row: a user subscribes to the cluster (or region)
        their caches are on, not to every incident of the service."""
        if self.status is None:
            return
        name, url = feed_of(self.status, _cursor_key(self.query_one("#clusters", DataTable)))
        self.query_one("#feed", Static).update(f"RSS feed ({name}): {url}")

    def _width_left(self, table: DataTable, *fixed: int) -> int:
        """Columns left for a table's last column: the page's width less the fixed columns,
        every column's padding and a scrollbar."""
        width = table.size.width or self.size.width or 80
        padding = 2 * table.cell_padding * (len(fixed) + 1)
        scrollbar = table.scrollbar_size_vertical if table.show_vertical_scrollbar else 0
        return max(16, width - sum(fixed) - padding - scrollbar)

    def _show_clusters(self, status: StatusOut) -> None:
        """One row per cluster (a region's name heads its clusters), each proxy as glyph +
        word + latency (its usual one in brackets) and its injected fault if any. Rows are
        updated in place; only when a row's height changes (a proxy turns slow and its
        cluster needs a second line) is the table refilled, keeping the cursor's row."""
        table = self.query_one("#clusters", DataTable)
        styles = self.app.theme_variables
        width = self._width_left(table, NAME_W, LIGHT_W)
        rows: list[tuple[str, list[object], int]] = []
        for region in status.regions:
            rows.append(
                (f"region:{region.name}", [Text(region.name, style="bold italic"), "", ""], 1)
            )
            for cluster in region.clusters:
                segments = [_proxy_segment(proxy, styles) for proxy in cluster.proxies]
                proxies = _pack(segments, width)
                rows.append(
                    (
                        f"cluster:{cluster.name}",
                        [
                            Text(cluster.name, style="bold"),
                            light_text(cluster.light, styles),
                            proxies,
                        ],
                        len(proxies.split()),
                    )
                )
        layout = [(key, height) for key, _, height in rows]
        if layout == self._layout:
            for key, cells, _ in rows:
                upsert_row(table, key, cells)
            return
        cursor = _cursor_key(table)
        table.clear()
        for key, cells, height in rows:
            table.add_row(*cells, key=key, height=height)
        self._layout = layout
        if cursor is not None and cursor in table.rows:
            table.move_cursor(row=table.get_row_index(cursor), animate=False)

    def _show_incidents(self, status: StatusOut) -> None:
        table = self.query_one("#incidents", DataTable)
        cursor = _cursor_key(table)
        table.clear()
        styles = self.app.theme_variables
        width = self._width_left(table, WHEN_W, CLUSTER_W, LIGHT_W)
        hostnames = [p.hostname for r in status.regions for c in r.clusters for p in c.proxies]
        for incident in status.incidents[:20]:
            cause = incident.cause
            for hostname in sorted({*hostnames, *incident.proxies}, key=len, reverse=True):
                cause = cause.replace(hostname, short_name(hostname))
            lines = Text(cause).wrap(self.app.console, width)
            table.add_row(
                _when(incident.started_at),
                incident.cluster,
                light_text(incident.light, styles),
                Text("\n").join(lines),
                key=str(incident.id),
                height=len(lines),
            )
        if cursor is not None and cursor in table.rows:
            table.move_cursor(row=table.get_row_index(cursor), animate=False)


def feed_of(status: StatusOut, row_key: str | None) -> tuple[str, str]:
    """What the clusters table's row ``row_key`` subscribes to, and its feed URL."""
    kind, _, name = (row_key or "").partition(":")
    if kind == "cluster":
        for region in status.regions:
            for cluster in region.clusters:
                if cluster.name == name:
                    return name, cluster.rss_url
    if kind == "region":
        return name, f"{status.rss_url}?{urlencode({'region': name})}"
    return "all clusters", status.rss_url


def short_name(hostname: str) -> str:
    """``proxy-2.use1-b.us-east-1.cachier.internal`` -> ``p2``: where the cluster is shown
    next to it, a proxy's first label is enough."""
    return hostname.split(".")[0].replace("proxy-", "p")


def _proxy_segment(proxy: ProxyStatus, styles: dict[str, str]) -> Text:
    segment = Text(f"{short_name(proxy.hostname)} ")
    segment.append_text(proxy_text(proxy.state, styles))
    segment.append(f" {_ms(proxy.latency_ms)}")
    if proxy.baseline_ms is not None:
        segment.append(f" ({_ms(proxy.baseline_ms)})", style="dim")
    if proxy.fault != "none":
        fault = f"+{proxy.delay_ms}ms" if proxy.fault == "slow" else "fault"
        segment.append(f" [{fault}]", style="italic")
    return segment


def _pack(segments: list[Text], width: int) -> Text:
    """Segments on as few lines of ``width`` as they fit, never split."""
    lines: list[Text] = []
    for segment in segments:
        if lines and lines[-1].cell_len + len(GAP) + segment.cell_len <= width:
            lines[-1].append(GAP)
            lines[-1].append_text(segment)
        else:
            lines.append(segment.copy())
    return Text("\n").join(lines)


def _cursor_key(table: DataTable) -> str | None:
    """The key of the cursor's row, to put the cursor back after refilling the table."""
    try:
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
    except CellDoesNotExist:  # an empty table
        return None


def _when(started_at: str | None) -> str:
    """``2026-11-18T08:06:00Z`` -> ``Nov 18 08:06`` (UTC; recent incidents need no year)."""
    if not started_at:
        return ""
    try:
        return datetime.fromisoformat(started_at.replace("Z", "+00:00")).strftime("%b %d %H:%M")
    except ValueError:
        return started_at


def _ms(value: float | None) -> str:
    """Milliseconds without the unit (the column's title says ms)."""
    if value is None:
        return "—"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"
