"""Status: every region's clusters with their light, per-proxy state, incidents, the feed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Header, Static

from tui.messages import StatusFetched
from tui.pages.base import Page
from tui.widgets.footer import SteadyFooter
from tui.widgets.status_light import LIGHTS, light_text, proxy_text
from tui.widgets.tables import upsert_row

if TYPE_CHECKING:  # annotations only: the page's first frame must not wait for pydantic
    from backend.api.schemas import StatusOut


class StatusPage(Page):
    """Clusters and proxies in one table (keyed rows, updated in place), incidents below."""

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
        clusters.add_column("Cluster", key="name", width=9)
        clusters.add_column("Light", key="light", width=10)
        clusters.add_column("Proxies: state, latency (usual)", key="proxies")
        incidents = self.query_one("#incidents", DataTable)
        incidents.add_column("When (UTC)", key="when", width=20)
        incidents.add_column("Cluster", key="cluster", width=9)
        incidents.add_column("Now", key="light", width=12)
        incidents.add_column("Cause", key="cause")
        styles = self.app.theme_variables
        legend = Text("Legend: ")
        for light in LIGHTS:
            legend.append_text(light_text(light, styles))
            legend.append("  ")
        self.query_one("#legend", Static).update(legend)

    async def load(self) -> StatusFetched:
        return StatusFetched(await self.cachier.client.status())

    @on(StatusFetched)
    def show(self, message: StatusFetched) -> None:
        with self.app.batch_update():
            self._show_clusters(message.status)
            self._show_incidents(message.status)
            self.query_one("#feed", Static).update(f"RSS feed: {message.status.rss_url}")

    def _show_clusters(self, status: StatusOut) -> None:
        """One row per cluster (a region's name heads its clusters): all of them fit at 80x24,
        each proxy as glyph + word + latency, and its injected fault if any."""
        table = self.query_one("#clusters", DataTable)
        styles = self.app.theme_variables
        wanted = []
        for region in status.regions:
            key = f"region:{region.name}"
            wanted.append(key)
            upsert_row(table, key, [Text(region.name, style="bold italic"), "", ""])
            for cluster in region.clusters:
                key = f"cluster:{cluster.name}"
                wanted.append(key)
                proxies = Text()
                for proxy in cluster.proxies:
                    proxies.append(proxy.hostname.split(".")[0].replace("proxy-", "p") + " ")
                    proxies.append_text(proxy_text(proxy.state, styles))
                    proxies.append(f"  {_ms(proxy.latency_ms)}")
                    if proxy.fault != "none":
                        fault = f"+{proxy.delay_ms}ms" if proxy.fault == "slow" else "fault"
                        proxies.append(f" [{fault}]", style="italic")
                    proxies.append("  ")
                upsert_row(table, key, [Text(cluster.name, style="bold"),
                                     light_text(cluster.light, styles), proxies])  # fmt: skip
        for key in [k.value for k in table.rows if k.value not in wanted]:
            table.remove_row(key)

    def _show_incidents(self, status: StatusOut) -> None:
        table = self.query_one("#incidents", DataTable)
        table.clear()
        styles = self.app.theme_variables
        for incident in status.incidents[:20]:
            when = (incident.started_at or "").replace("T", " ").rstrip("Z")
            table.add_row(when, incident.cluster, light_text(incident.light, styles),
                          incident.cause, key=str(incident.id))  # fmt: skip


def _ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.1f}ms" if value < 100 else f"{value:.0f}ms"
