"""The cache's Alerts view (``a`` on Analytics): every alert's state, and its thresholds.

One line per setting, keyboard only at 80×24: tab / shift+tab move between fields, an
empty field is off (or its default), enter or ctrl+s saves (the backend checks and answers
422 with the reason, shown as a notice), escape closes. The state above the form refreshes
every ``REFRESH_S`` while the view is open; what is being typed is never overwritten.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from tui.errors import ApiError

if TYPE_CHECKING:
    from backend.api.schemas import AlertOut, AlertsOut
    from tui.client import CachierClient

REFRESH_S = 2.0
# (field, label, unit, type): the order of the form; ``AlertsIn`` names the fields.
FIELDS: list[tuple[str, str, str, type]] = [
    ("hit_rate_below", "Hit rate below", "%", float),
    ("hit_rate_window_min", "  measured over", "minutes", float),
    ("memory_above", "Memory above", "% of the plan", float),
    ("evictions_above", "Evictions above", "per second", float),
    ("connections_above", "Connections above", "", int),
    ("refused_above", "Refused commands above", "per minute", float),
    ("fire_after", "Fire after (in a row)", "samples", int),
    ("resolve_after", "Resolve after (in a row)", "samples", int),
    ("webhook_url", "Webhook (POST, JSON)", "", str),
]
NAMES = {
    "hit_rate": "hit rate",
    "memory": "memory",
    "evictions": "evictions",
    "connections": "connections",
    "refused": "refused",
}
UNITS = {"hit_rate": "%", "memory": "%", "evictions": "/s", "connections": "", "refused": "/min"}


def badge(count: int) -> str:
    """The title bar's and the Caches list's badge: ``⚠ 2 alerts`` (empty when none)."""
    if not count:
        return ""
    return f"⚠ {count} alert" + ("" if count == 1 else "s")


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def state_line(alert: AlertOut) -> Text:
    """``⚠ FIRING  hit rate 12% < 50%`` or ``✓ ok      memory 3% (alert > 80%)``."""
    name, unit = NAMES[alert.alert], UNITS[alert.alert]
    side = "<" if alert.alert == "hit_rate" else ">"
    value = "—" if alert.value is None else f"{alert.value:.3g}{unit}"
    limit = f"{alert.threshold:g}{unit}"
    if alert.firing:
        line = Text("⚠ FIRING ", style="bold reverse")
        line.append(f" {name} {value} {side} {limit}", style="bold")
    else:
        line = Text("✓ ok      ")
        line.append(f" {name} {value}").append(f"  (alert {side} {limit})", style="dim")
    if alert.since:
        line.append(f"  since {alert.since[11:19]} UTC", style="dim")
    return line


def state_renderable(view: AlertsOut) -> Text:
    if not view.alerts:
        return Text("No thresholds set: fill in a field below (empty = off).", style="dim")
    return Text("\n").join(state_line(a) for a in view.alerts)


def parse_form(values: dict[str, str]) -> dict[str, Any]:
    """The body of ``PUT …/alerts`` from the fields' text; ValueError names a bad field.
    Empty fields are left out: off, or the default."""
    body: dict[str, Any] = {}
    for field, label, _unit, kind in FIELDS:
        text = values.get(field, "").strip()
        if not text:
            continue
        if kind is str:
            body[field] = text
            continue
        try:
            body[field] = kind(text)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise ValueError(f"{label.strip()}: {text!r} is not {what}") from None
    return body


class AlertsScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "dismiss", "Close", id="alerts.close"),
        Binding("ctrl+s", "save", "Save", id="alerts.save"),
    ]

    def __init__(
        self,
        client: CachierClient | None,
        sso: str,
        cache_name: str | None,
        view: AlertsOut | None = None,
    ) -> None:
        """``client`` None (screenshots, snapshots): shows ``view`` and asks nothing."""
        super().__init__()
        self.client, self.sso, self.cache_name = client, sso, cache_name
        self.view: AlertsOut | None = view
        self.saved_at: float | None = None
        self._filled = False

    def compose(self) -> ComposeResult:
        whose = f" of {self.cache_name}" if self.cache_name else ""
        with Vertical(id="alerts", classes="dialog"):
            yield Label(f"Alerts{whose}", id="alerts-title", classes="question")
            yield Static("Asking the backend…", id="alerts-state")
            with VerticalScroll(id="alerts-form"):
                for field, label, unit, _kind in FIELDS:
                    with Horizontal(classes="alert-row"):
                        yield Label(label)
                        yield Input(id=f"alert-{field}", compact=True, placeholder="off")
                        if unit:
                            yield Label(unit, classes="unit")
            yield Label(
                "tab next field · empty = off · enter/ctrl+s save · esc close", classes="hint"
            )

    def on_mount(self) -> None:
        if self.view is not None:
            self._show(self.view, fill=True)
            self._filled = True
        if self.client is not None:
            self.reload()
            self.set_interval(REFRESH_S, self.reload)

    def _inputs(self) -> dict[str, Input]:
        return {field: self.query_one(f"#alert-{field}", Input) for field, *_ in FIELDS}

    def _show(self, view: AlertsOut, fill: bool) -> None:
        self.view = view
        self.query_one("#alerts-state", Static).update(state_renderable(view))
        if fill:
            settings = view.settings
            for field, widget in self._inputs().items():
                value = getattr(settings, field)
                widget.value = value if isinstance(value, str) else _number(value)
                widget.placeholder = "off" if field.endswith(("below", "above", "url")) else ""

    @work(exclusive=True, group="alerts")
    async def reload(self) -> None:
        if self.client is None:
            return
        try:
            view = await self.client.alerts(self.sso)
        except ApiError as exc:
            self.query_one("#alerts-state", Static).update(
                Text(f"The alerts cannot be read: {exc}", style="bold")
            )
            return
        self._show(view, fill=not self._filled)  # the form is filled once, then it is typed
        self._filled = True

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_save()

    def action_save(self) -> None:
        try:
            body = parse_form({field: widget.value for field, widget in self._inputs().items()})
        except ValueError as exc:
            self.notify(str(exc), title="Alerts", severity="error", timeout=6)
            return
        self._save(body)

    @work(exclusive=True, group="alerts-save")
    async def _save(self, body: dict[str, Any]) -> None:
        if self.client is None:
            return
        try:
            view = await self.client.set_alerts(self.sso, body)
        except ApiError as exc:
            self.notify(f"not saved: {exc}", title="Alerts", severity="error", timeout=8)
            return
        self.saved_at = time.monotonic()
        self._show(view, fill=True)
        self.notify("thresholds saved", title="Alerts", timeout=3)
