"""CachierApp: pages as modes, global bindings, reaching the backend (in this process or
attached), and the in-process backend's lifetime."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.timer import Timer

from tui.errors import ApiError
from tui.widgets.status_light import status_variables

if TYPE_CHECKING:  # the page's frame paints before these load (see CachierApp.on_mount)
    from backend.service import Service  # FastAPI, uvicorn: only for the in-process backend
    from tui.client import CachierClient  # httpx, pydantic

log = logging.getLogger(__name__)
REFRESH_CHOICES = (1.0, 2.0, 5.0, 10.0, 30.0)
# The footer shows the five page keys as one item, "12345 pages" (help lists each page).
PAGES = Binding.Group("pages", compact=True)
PALETTE_PAGES = [
    ("caches", "Caches page", "Every cache: plan, place, cluster light, usage (1)"),
    ("analytics", "Analytics page", "Graphs of the current cache; flush, move (2)"),
    ("credentials", "Credentials page", "Credentials, capabilities, SSO, config vars (3)"),
    ("status", "Status page", "Clusters, proxies, incidents, RSS feed (4)"),
    ("logs", "Logs page", "The app log of the current cache (5)"),
]


@dataclass
class Settings:
    refresh_s: float = 1.0
    operator: bool = True  # False: one cache's owner, reached through its dashboard URL
    sso: str | None = None  # the cache shown by the cache pages, if known at start
    admin_token: str | None = None
    title: str = "cachier"
    live: bool = True  # False in snapshot tests: pages show injected data only
    clock: Callable[[], float] | None = None  # frozen in snapshot tests
    backend_log: deque[str] = field(default_factory=lambda: deque(maxlen=500))


@dataclass(frozen=True)
class Remote:
    """A running backend to attach to; the admin token opens the operator view."""

    base_url: str
    admin_token: str | None = None
    cafile: Path | None = None  # --api-ca: the only CA trusted for an https:// backend


def page(module: str, name: str) -> Callable[[], Screen]:
    """A page imported when it is first shown: start-up loads only the first page's code
    (the dashboard's first frame waits for every import before it)."""

    def make() -> Screen:
        return getattr(import_module(f"tui.pages.{module}"), name)()

    return make


NOTICE_REPEAT_S = 60.0
# Pages whose own refresh carries the title badge's count (``show_alerts``): the Caches
# list (every cache's), Analytics and Credentials (the cache's, in ``GET cache``).
BADGE_PAGES = {"caches", "analytics", "credentials"}


class BackendLogHandler(logging.Handler):
    """The in-process backend's log lines go to the app, never onto the terminal."""

    def __init__(self, app: CachierApp) -> None:
        super().__init__(logging.INFO)
        self.app = app
        self._notified: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.app.settings.backend_log.append(self.format(record))
            if record.levelno >= logging.WARNING:  # a person sees it, not only the log
                self._notify_once(record)
        except Exception:  # logging must never break the UI
            pass

    def _notify_once(self, record: logging.LogRecord) -> None:
        """One notice per distinct message a minute: a failure that repeats every second
        (a demo client that cannot connect) must not bury the screen in notices."""
        message = record.getMessage()[:200]
        now = time.monotonic()
        if now - self._notified.get(message, -NOTICE_REPEAT_S) < NOTICE_REPEAT_S:
            return
        self._notified[message] = now
        severity = "error" if record.levelno >= logging.ERROR else "warning"
        self.app.call_later(
            self.app.notify, message, title="Backend", severity=severity, timeout=10
        )


class CachierApp(App[None]):
    CSS_PATH = Path(__file__).with_name("cachier.tcss")
    TITLE = "cachier"
    MODES = {
        "caches": page("caches", "CachesPage"),
        "analytics": page("analytics", "AnalyticsPage"),
        "credentials": page("credentials", "CredentialsPage"),
        "status": page("status", "StatusPage"),
        "logs": page("logs", "LogsPage"),
    }
    BINDINGS = [
        Binding("1,f2", "page('caches')", "Caches", id="page.caches", group=PAGES),
        Binding("2,f3", "page('analytics')", "Analytics", id="page.analytics", group=PAGES),
        Binding("3,f4", "page('credentials')", "Credentials", id="page.credentials", group=PAGES),
        Binding("4,f5", "page('status')", "Status", id="page.status", group=PAGES),
        Binding("5,f6", "page('logs')", "Logs", id="page.logs", group=PAGES),
        Binding("question_mark,f1", "help", "Help", id="app.help"),
        Binding("p", "pause", "Pause", id="app.pause"),
        Binding("r", "interval", "Interval", id="app.interval", show=False),
        Binding("ctrl+r", "refresh", "Refresh now", id="app.refresh", show=False),
        Binding("q", "quit", "Quit", id="app.quit"),
    ]

    paused: reactive[bool] = reactive(False)
    refresh_s: reactive[float] = reactive(1.0)

    def __init__(
        self, settings: Settings, service: Service | None = None, remote: Remote | None = None
    ) -> None:
        super().__init__()
        self.settings = settings
        self.client: CachierClient | None = None  # set once the backend is reached
        self.service = service
        self.remote = remote
        self._prefetched: Message | None = None
        self.failure: str | None = None  # why the backend could not be used (printed at exit)
        self.sso = settings.sso
        self.cache_name: str | None = None
        self.refresh_s = settings.refresh_s
        self.title = settings.title
        self._badge_timer: Timer | None = None

    def get_theme_variable_defaults(self) -> dict[str, str]:
        """``$status-up`` … ``$status-resolved``: the product's green, yellow, red and blue in
        a shade that reads on the current theme (the theme's own colours do not say that)."""
        return {**super().get_theme_variable_defaults(), **status_variables(self.current_theme)}

    # -- lifetime -----------------------------------------------------------------------
    async def on_mount(self) -> None:
        """The first page's frame paints at once; the backend is reached meanwhile (the HTTP
        client and pydantic alone take about a third of a second to import), and the page
        fills in when it answers."""
        await self.switch_mode("caches" if self.settings.operator else "analytics")
        self._arm_badge()
        if self.service is not None:
            await self._start_service(self.service)
        elif self.remote is not None:  # after the page's first frame: imports hold the GIL
            remote = self.remote
            self.call_after_refresh(
                lambda: self.run_worker(
                    self._attach_remote(remote), group="attach", exit_on_error=False
                )
            )

    async def _start_service(self, service: Service) -> None:
        from backend.service import ServiceError
        from tui.client import CachierClient

        self._route_backend_logs()
        try:
            listening = await service.start()
        except ServiceError as error:
            self._fail(f"cannot start the backend: {error}")
            return
        for warning in service.warnings:  # what cachier-backend prints under its banner
            log.warning("%s", warning)  # a notice, and a line of the Backend log
        self.client = CachierClient(
            listening.api_url,
            service.config.admin_token,
            cafile=listening.api_certificate,  # --api-tls: its own certificate, pinned
            server_name=listening.api_server_name or None,
        )
        self._refresh_current()

    async def _attach_remote(self, remote: Remote) -> None:
        """Reach a running backend. Its first answer is the first page's data, shown as
        that page's first refresh; a backend that cannot be used ends the app with one
        readable line (unreachable, token refused, dashboard URL no longer valid)."""
        self.sub_title = f"reaching {remote.base_url}…"  # a slow backend shows why it waits
        client_module = await asyncio.to_thread(import_module, "tui.client")  # keeps painting
        try:
            client = client_module.CachierClient(
                remote.base_url, remote.admin_token, cafile=remote.cafile
            )
        except ApiError as error:  # an --api-ca file that holds no certificate
            self._fail(str(error))
            return
        try:
            self._prefetched = await self._first_page(client)
        except ApiError as error:
            await client.close()
            self._fail(self._refusal(error))
            return
        self.client = client
        self.watch_paused(self.paused)  # the sub-title back to the pause badge, if any
        self._refresh_current()

    async def _first_page(self, client: CachierClient) -> Message:
        if self.settings.sso is not None:
            from tui.pages.analytics import fetch_analytics

            return await fetch_analytics(client, self.settings.sso)
        from tui.pages.caches import fetch_caches

        return await fetch_caches(client)

    def _fail(self, reason: str) -> None:
        self.failure = reason
        self.exit(return_code=1)

    def _refusal(self, error: ApiError) -> str:
        if self.settings.sso is not None and error.status == 404:
            return "this dashboard URL is not valid (any more): ask for the current one"
        return str(error)

    async def on_unmount(self) -> None:
        if self.client is not None and self.settings.live:
            await self.client.close()
        if self.service is not None:
            await self.service.stop()

    def _route_backend_logs(self) -> None:
        from backend import logs

        handler = BackendLogHandler(self)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
        logs.install(handler)

    def take_prefetched(self, kind: type[Message] | None) -> Message | None:
        """The first page's data, fetched moments before while attaching: the page's first
        refresh shows it instead of asking again."""
        prefetched, self._prefetched = self._prefetched, None
        return prefetched if kind is not None and isinstance(prefetched, kind) else None

    # -- cache selection ----------------------------------------------------------------
    def open_cache(self, sso: str, name: str, page: str = "analytics") -> None:
        """Show one cache on the cache pages (from the operator's Caches page)."""
        self.sso, self.cache_name = sso, name
        if self.current_mode == page:
            self._refresh_current()
        else:
            self.call_later(self.switch_mode, page)

    def follow_sso(self, sso: str) -> None:
        """After a rotation: keep working on the new dashboard URL."""
        self.sso = sso

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The command palette (ctrl+p) lists every page next to Textual's own commands."""
        yield from super().get_system_commands(screen)
        for mode, title, text in PALETTE_PAGES:
            if mode != "caches" or self.settings.operator:
                yield SystemCommand(title, text, partial(self.call_later, self.action_page, mode))
        yield SystemCommand("Pause / resume", "Stop or restart live refresh", self.action_pause)
        yield SystemCommand("Refresh now", "Fetch the current page now", self.action_refresh)

    # -- actions ------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "page" and parameters and parameters[0] == "caches":
            return self.settings.operator  # the owner of one cache has no cache list
        return True

    async def action_page(self, name: str) -> None:
        if self.current_mode != name:
            await self.switch_mode(name)

    def action_help(self) -> None:
        from tui.pages.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_pause(self) -> None:
        self.paused = not self.paused
        self._refresh_current()

    def action_interval(self) -> None:
        later = [c for c in REFRESH_CHOICES if c > self.refresh_s]
        self.refresh_s = later[0] if later else REFRESH_CHOICES[0]
        self.notify(f"refreshing every {self.refresh_s:g} s", timeout=2)
        self._arm_badge()
        self._refresh_current()

    def action_refresh(self) -> None:
        self._refresh_current()

    def _refresh_current(self) -> None:
        screen = self.screen
        if hasattr(screen, "refresh_now"):
            screen.refresh_now()

    def show_alerts(self, firing: int) -> None:
        """The title bar's badge: ``cachier · ⚠ 2 alerts`` while alerts fire (the cache's on
        its pages, every cache's on the operator's Caches page)."""
        from tui.pages.alerts import badge

        shown = badge(firing)
        title = f"{self.settings.title} · {shown}" if shown else self.settings.title
        if self.title != title:
            self.title = title

    # -- the alert badge on every page ---------------------------------------------------
    def badge_sso(self) -> str | None:
        """Whose alerts the title counts: the shown cache's dashboard secret, or None for
        every cache's (the operator's Caches and Status pages, or no cache chosen yet)."""
        if self.settings.operator and self.current_mode in ("caches", "status"):
            return None
        return self.sso

    def _arm_badge(self) -> None:
        """One timer for the app at the refresh interval (restarted when it changes)."""
        if self._badge_timer is not None:
            self._badge_timer.stop()
        self._badge_timer = self.set_interval(self.refresh_s, self._keep_badge)

    def _keep_badge(self) -> None:
        """Keep the badge current where the shown screen's refresh does not carry it (the
        Status and Logs pages, the keys, alerts and audit views, help): one small request
        per interval, ``GET cache`` or a one-row admin list. A page that carries it
        (``BADGE_PAGES``, shown with nothing over it) costs no request of its own."""
        if self.client is None or self.paused or not self.settings.live:
            return
        carried = self.current_mode == "caches" or self.sso is not None
        if self.current_mode in BADGE_PAGES and len(self.screen_stack) == 1 and carried:
            return
        self._fetch_badge(self.client, self.badge_sso())

    @work(exclusive=True, group="badge", exit_on_error=False)
    async def _fetch_badge(self, client: CachierClient, sso: str | None) -> None:
        """The latest ask wins; the coroutine is made only when the worker runs."""
        try:
            if sso is None:
                if not self.settings.operator:
                    return
                firing = (await client.caches(limit=1)).alerts_firing
            else:
                firing = (await client.cache(sso)).alerts_firing
        except ApiError:
            return  # the page's own refresh says what is wrong (or the cache was rotated)
        if self.badge_sso() == sso:  # not another cache or page meanwhile
            self.show_alerts(firing)

    def watch_paused(self, paused: bool) -> None:
        self.sub_title = "⏸ PAUSED" if paused else ""
