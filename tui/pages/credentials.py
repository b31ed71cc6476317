"""Credentials: the cache's usernames/passwords, their capabilities and use, the SSO
secret, the app.

One keyed DataTable (rows updated in place, never rebuilt) whose "Last used" column tells
when a rotation is finished (``tui.activity``), the selected credential's activity under
it, the provider app's config vars and release below. Deleting a credential that still has
live connections asks a second time, naming them. Passwords are masked until revealed
(``v``); every mutation runs through ``Page.mutate`` (not exclusive, so a second key press
cannot cancel it) and its key is disabled while it runs.
"""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Header, Static
from textual.widgets.data_table import ColumnKey

from tui import activity
from tui.errors import ApiError
from tui.messages import (
    CapabilityChanged,
    CredentialAdded,
    CredentialDeleted,
    CredentialPromoted,
    CredentialsFetched,
    SsoRotated,
)
from tui.pages.base import Page
from tui.urls import sso_of
from tui.widgets.confirm import ConfirmModal
from tui.widgets.footer import SteadyFooter
from tui.widgets.tables import cursor_key, remove_rows_except, upsert_row

if TYPE_CHECKING:  # annotations only: the page's first frame must not wait for pydantic
    from backend.api.schemas import AppOut, CacheInfo, CredentialOut

MASK = "•" * 6
MASKED_WIDTH = len(MASK) + 4  # the mask and the last four characters
SECRET_SUFFIX = "_PASSWORD"  # config vars ending so are masked like the passwords
ROW_ACTIONS = {"reveal", "copy", "toggle_write", "toggle_flush", "toggle_api", "promote", "delete"}
MUTATIONS = {"toggle_write", "toggle_flush", "toggle_api", "promote", "delete", "add", "rotate_sso"}
PAGE_ACTIONS = ROW_ACTIONS | MUTATIONS
NO_CACHE = "No cache chosen: choose a cache on the Caches page (1), then come back (3)."
HINT = "v/y reveal/copy · w/f/i write/flush/api · u promote · d delete · a/s add/SSO"


def masked(secret: str) -> str:
    """``••••••`` and the last four characters: enough to tell two secrets apart."""
    return MASK + secret[-4:]


def checkbox(on: bool) -> Text:
    return Text("[x]", style="bold") if on else Text("[ ]", style="dim")


class CredentialsPage(Page):
    """Who may connect to the cache, with which capabilities; the app's config vars."""

    needs_cache = True

    # The footer has room for three page actions at 80 columns (with the app's keys); the
    # hint line under the table and the help screen (?) list every key.
    BINDINGS = [
        Binding("u", "promote", "Promote ↑", id="credentials.promote"),
        Binding("d", "delete", "Delete ✕", id="credentials.delete"),
        Binding("a", "add", "Add", tooltip="Add new credentials", id="credentials.add"),
        Binding(
            "s",
            "rotate_sso",
            "Rotate the SSO secret (a new dashboard URL)",
            id="credentials.rotate_sso",
            show=False,
        ),
        Binding("v", "reveal", "Reveal / hide the password", id="credentials.reveal", show=False),
        Binding("y", "copy", "Copy the password (and show it)", id="credentials.copy", show=False),
        Binding(
            "w", "toggle_write", "Toggle the write capability", id="credentials.write", show=False
        ),
        Binding(
            "f", "toggle_flush", "Toggle the flush capability", id="credentials.flush", show=False
        ),
        Binding(
            "i",
            "toggle_api",
            "Toggle the api capability (/api/v2 with this credential)",
            id="credentials.api",
            show=False,
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.credentials: dict[str, CredentialOut] = {}
        self.cache: CacheInfo | None = None
        self.provider_app: AppOut | None = None
        self.revealed: set[str] = set()  # usernames whose password is shown in clear
        self._pending_row: str | None = None  # a row to move the cursor to once it exists

    # -- layout -------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(NO_CACHE, id="cred-empty")
        with Vertical(id="cred-body"):
            yield Static("Credentials", id="cred-title", classes="section")
            yield DataTable(id="credentials", cursor_type="row", zebra_stripes=True)
            with Vertical(id="cred-details"):  # stays on screen however many rows
                yield Static(id="cred-activity")  # the selected credential's use
                yield Static("Config vars", id="cred-app-title", classes="section")
                yield Static(id="cred-config")
                yield Static(HINT, classes="hint")
        yield SteadyFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        # 77 cells with the cells' padding: the table fits 80 columns with its vertical
        # scrollbar (more rows than fit), so no horizontal one hides a row or cuts a cell.
        columns = (
            ("Username", "username", 10),  # backend.control.secrets.new_username: 10
            ("Password", "password", MASKED_WIDTH),
            ("Primary", "primary", 9),
            ("Write", "write", 5),
            ("Flush", "flush", 5),
            ("API", "api", 3),
            ("Last used", "used", 21),
        )
        for label, key, width in columns:
            table.add_column(label, key=key, width=width)
        self.query_one("#cred-body").display = False

    def show_no_cache(self) -> None:
        self.query_one("#cred-empty").display = True
        self.query_one("#cred-body").display = False
        self.refresh_bindings()

    # -- data ---------------------------------------------------------------------------
    async def load(self) -> CredentialsFetched | None:
        client, sso = self.client, self.sso
        try:
            cache, credentials, app = await asyncio.gather(
                client.cache(sso), client.credentials(sso), client.app(sso)
            )
        except ApiError:
            if self.cachier.sso != sso or "rotate_sso" in self.mutating:
                # The secret was rotated meanwhile (its answer may still be on its way to
                # this page): the refresh after the rotation uses the new one.
                return None
            raise
        return CredentialsFetched(cache, credentials, app)

    @on(CredentialsFetched)
    def show(self, message: CredentialsFetched) -> None:
        table = self.query_one(DataTable)
        with self.app.batch_update():
            if self.cache is None or self.cache.id != message.cache.id:
                table.clear()  # another cache: nothing of the previous one stays revealed
                self.revealed.clear()
            self.cache, self.provider_app = message.cache, message.app
            self.credentials = {c.username: c for c in message.credentials}
            self.revealed &= set(self.credentials)
            for credential in message.credentials:
                upsert_row(table, credential.username, self._cells(credential))
            remove_rows_except(table, self.credentials)
            self._fit_password()
            self._move_to_pending()
            self.query_one("#cred-empty").display = False
            self.query_one("#cred-body").display = True
            self.query_one("#cred-title", Static).update(
                f"Credentials of {message.cache.name}  ({len(message.credentials)})"
            )
            self._show_app()
            self._show_activity()
        self.refresh_bindings()
        self.cachier.show_alerts(message.cache.alerts_firing)  # the title's badge, current

    def now(self) -> float:
        """The time ages are counted to (frozen in snapshots)."""
        return (self.cachier.settings.clock or time.time)()

    @on(DataTable.RowHighlighted)
    def _show_activity(self) -> None:
        credential = self._selected()
        line = (
            "" if credential is None else activity.details(credential.username, credential.activity)
        )
        self.query_one("#cred-activity", Static).update(Text(line, style="dim"))

    def _cells(self, credential: CredentialOut) -> list[Text]:
        accent = self.app.theme_variables.get("accent", "")
        password = credential.password
        shown = password if credential.username in self.revealed else masked(password)
        primary = (
            Text("★ primary", style=f"bold {accent}".strip())
            if credential.primary
            else Text("secondary", style="dim")
        )
        return [
            Text(credential.username, style="bold" if credential.primary else ""),
            Text(shown),
            primary,
            checkbox(credential.write),
            checkbox(credential.flush),
            checkbox(credential.api),
            Text(activity.used(credential.activity, self.now())),
        ]

    def _show_app(self) -> None:
        app = self.provider_app
        if app is None:
            return
        self.query_one("#cred-app-title", Static).update(f"Config vars of app {app.name}")
        clear = {self.credentials[u].password for u in self.revealed if u in self.credentials}
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(overflow="fold")
        for name, value in app.config_vars.items():  # whatever the app holds, in its order
            if name.endswith(SECRET_SUFFIX) and value not in clear:
                value = masked(value)  # shown with the primary's password (v on its row)
            grid.add_row(name, Text(value))
        release = Text(f"v{app.release}")
        if app.releases:
            release.append(f"  {app.releases[0].description}", style="dim")
        grid.add_row("Release", release)
        if self.cache is not None:
            grid.add_row("Dashboard URL", Text(masked(self.cache.dashboard_url), style="dim"))
        self.query_one("#cred-config", Static).update(grid)

    def _redraw(self, username: str) -> None:
        credential = self.credentials.get(username)
        table = self.query_one(DataTable)
        if credential is not None:
            upsert_row(table, username, self._cells(credential))
        elif username in table.rows:
            table.remove_row(username)
        self._fit_password()
        self._show_app()

    def _fit_password(self) -> None:
        """The password column is as wide as a masked password, so "Last used" fits beside
        it at 80 columns; while one is revealed, as wide as a password (the table then
        scrolls sideways at 80 columns)."""
        table = self.query_one(DataTable)
        column = table.columns[ColumnKey("password")]
        width = max((len(c.password) for c in self.credentials.values()), default=0)
        width = max(width, MASKED_WIDTH) if self.revealed else MASKED_WIDTH
        if column.width != width:
            column.width = width
            first = next(iter(table.rows), None)
            if first is not None:  # makes the table measure its columns again
                table.update_cell(
                    first, "password", table.get_cell(first, "password"), update_width=True
                )

    def _move_to_pending(self) -> None:
        table = self.query_one(DataTable)
        if self._pending_row is not None and self._pending_row in table.rows:
            table.move_cursor(row=table.get_row_index(self._pending_row))
            self._pending_row = None

    def _selected(self) -> CredentialOut | None:
        key = cursor_key(self.query_one(DataTable))
        return None if key is None else self.credentials.get(key)

    # -- bindings -----------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action not in PAGE_ACTIONS:
            return True
        if self.cachier.sso is None:
            return False  # no cache chosen: hidden, the footer shows the page keys instead
        if self.cache is None:
            return None  # shown, dimmed: nothing loaded yet
        if action in ROW_ACTIONS and self._selected() is None:
            return None
        if action in self.mutating or ("rotate_sso" in self.mutating and action in MUTATIONS):
            return None  # already running (or the secret is changing under every call)
        return True

    # -- actions ------------------------------------------------------------------------
    def action_reveal(self) -> None:
        credential = self._selected()
        if credential is None:
            return
        self.revealed ^= {credential.username}
        self._redraw(credential.username)

    def action_copy(self) -> None:
        credential = self._selected()
        if credential is None:
            return
        self.app.copy_to_clipboard(credential.password)
        self.notify(
            f"{credential.password}\n(sent to the clipboard by OSC 52: some SSH terminals "
            "ignore it, so here it is too)",
            title=f"Password of {credential.username}",
            timeout=15,
            markup=False,
        )

    def action_toggle_write(self) -> None:
        self._toggle("write")

    def action_toggle_flush(self) -> None:
        self._toggle("flush")

    def action_toggle_api(self) -> None:
        self._toggle("api")

    def _toggle(self, capability: str) -> None:
        credential, sso = self._selected(), self.cachier.sso
        action = f"toggle_{capability}"
        if credential is None or sso is None or action in self.mutating:
            return
        value = not getattr(credential, capability)
        username = credential.username
        self.mutate(
            action,
            f"Turning {capability} {'on' if value else 'off'} for {username}",
            lambda client: client.set_capabilities(sso, username, **{capability: value}),
            partial(CapabilityChanged, capability=capability),
        )

    @on(CapabilityChanged)
    def _capability_changed(self, message: CapabilityChanged) -> None:
        credential, capability = message.credential, message.capability
        self.credentials[credential.username] = credential
        self._redraw(credential.username)
        state = "on" if getattr(credential, capability) else "off"
        self.notify(f"{credential.username}: {capability} {state}", timeout=3)

    def action_promote(self) -> None:
        credential, sso = self._selected(), self.cachier.sso
        if credential is None or sso is None or "promote" in self.mutating:
            return
        username = credential.username
        if credential.primary:
            self.notify(
                f"{username} is already the primary credential", severity="warning", timeout=4
            )
            return
        self.mutate(
            "promote",
            f"Promoting {username}",
            lambda client: client.promote(sso, username),
            CredentialPromoted,
        )

    @on(CredentialPromoted)
    def _promoted(self, message: CredentialPromoted) -> None:
        promoted = message.credential
        for other in self.credentials.values():
            other.primary = other.username == promoted.username
        self.credentials[promoted.username] = promoted
        for username in self.credentials:
            self._redraw(username)
        missing = [c for c in ("write", "flush") if not getattr(promoted, c)]
        note = f" Note: its {' and '.join(missing)} capability is off." if missing else ""
        self.notify(
            f"{promoted.username} is the primary now: pushed to the app's config vars, "
            f"the app restarts; the old primary keeps working.{note}",
            severity="warning" if missing else "information",
            timeout=8 if missing else 6,
        )

    def action_delete(self) -> None:
        credential, sso = self._selected(), self.cachier.sso
        if credential is None or sso is None or "delete" in self.mutating:
            return
        username = credential.username
        if credential.primary:
            self.notify(
                f"{username} is the primary credential, the one the app uses: it cannot "
                "be deleted. Promote another credential first (u), then delete this one.",
                title="Not deleted",
                severity="warning",
                timeout=8,
            )
            return

        def delete() -> None:
            if "delete" not in self.mutating:
                self.mutate(
                    "delete",
                    f"Deleting {username}",
                    lambda client: client.delete_credential(sso, username),
                    CredentialDeleted,
                )

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            # The page's latest figures (refreshed every few seconds): still in use?
            latest = self.credentials.get(username)
            used = latest.activity if latest is not None else None
            if used is None or not used.connections:
                delete()
                return
            self.app.push_screen(
                ConfirmModal(
                    f"{username} is still in use: {activity.connections(used.connections)}",
                    f"From {activity.peers(used.peers)}. Deleting it closes "
                    f"{'it' if used.connections == 1 else 'them'} now; those clients cannot "
                    "reconnect until they use another credential.",
                    yes="Delete anyway",
                ),
                lambda sure: delete() if sure else None,
            )

        self.app.push_screen(
            ConfirmModal(
                f"Delete credential {username}?",
                "Clients using it can no longer connect; its open connections are closed now.",
                yes="Delete",
            ),
            answered,
        )

    @on(CredentialDeleted)
    def _deleted(self, message: CredentialDeleted) -> None:
        username, closed = message.deleted.username, message.deleted.closed_connections
        self.credentials.pop(username, None)
        self.revealed.discard(username)
        self._redraw(username)
        self.notify(
            f"credential {username} deleted; {closed} open connection"
            f"{'' if closed == 1 else 's'} closed",
            timeout=5,
        )

    def action_add(self) -> None:
        sso = self.cachier.sso
        if "add" in self.mutating or sso is None:
            return
        self.mutate(
            "add", "Adding a credential", lambda client: client.add_credential(sso), CredentialAdded
        )

    @on(CredentialAdded)
    def _added(self, message: CredentialAdded) -> None:
        added = message.credential
        self.credentials[added.username] = added
        self._redraw(added.username)
        self._pending_row = added.username
        self._move_to_pending()
        self.notify(f"credential {added.username} added (write and flush on, api off)", timeout=4)

    def action_rotate_sso(self) -> None:
        if "rotate_sso" in self.mutating or self.cachier.sso is None:
            return
        name = self.cache.name if self.cache is not None else "this cache"

        def answered(yes: bool | None) -> None:
            sso = self.cachier.sso
            if yes and sso is not None and "rotate_sso" not in self.mutating:
                self.mutate(
                    "rotate_sso",
                    "Rotating the SSO secret",
                    lambda client: client.rotate_sso(sso),
                    SsoRotated,
                )

        self.app.push_screen(
            ConfirmModal(
                f"Rotate the dashboard SSO secret of {name}?",
                "The current dashboard URL stops working at once; this dashboard "
                "follows the new one.",
                yes="Rotate",
            ),
            answered,
        )

    @on(SsoRotated)
    def _rotated(self, message: SsoRotated) -> None:
        url = message.rotated.dashboard_url
        self.cachier.follow_sso(sso_of(url))
        if self.cache is not None:
            self.cache.dashboard_url = url
            self._show_app()
        self.app.copy_to_clipboard(url)
        self.notify(
            f"{url}\n(also sent to the clipboard by OSC 52)",
            title="New dashboard URL",
            timeout=30,
            markup=False,
        )
