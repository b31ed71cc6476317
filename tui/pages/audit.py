"""The cache's audit trail: who changed what and when (credentials, capabilities, SSO,
flushes, moves, the log drain), newest first, as its owner and operators see it."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, RichLog

from tui.errors import ApiError

if TYPE_CHECKING:
    from backend.api.schemas import AuditEntryOut, AuditOut
    from tui.client import CachierClient

SHOWN = 200  # the newest entries; older ones stay in the API (?before=)
# Who, in one word: the trail's actors as the backend names them.
WHO = {
    "operator (admin token)": "operator",
    "cache owner (dashboard)": "dashboard",
    "memcache client": "client",
    "system": "system",
}


def entry_text(entry: AuditEntryOut) -> Text:
    """``Nov 27 14:01:17  dashboard  capabilities changed · cachier_u2: write off``."""
    try:
        when = datetime.fromisoformat(entry.t.replace("Z", "+00:00")).strftime("%b %d %H:%M:%S")
    except ValueError:
        when = entry.t
    who = WHO.get(entry.actor, entry.actor)
    return Text.assemble(
        (f"{when}  ", "dim"), (f"{who:<9}  ", "bold"), (entry.action, "bold"), f" · {entry.detail}"
    )


class AuditScreen(ModalScreen[None]):
    """Fetched when it opens (``r`` fetches again); the trail changes only with changes."""

    BINDINGS = [
        Binding("escape,a,q", "dismiss", "Close", id="audit.close"),
        Binding("r", "reload", "Reload", id="audit.reload"),
    ]

    def __init__(
        self,
        client: CachierClient | None,
        sso: str,
        cache_name: str | None,
        trail: AuditOut | None = None,
    ) -> None:
        """``client`` None (screenshots, snapshots): shows ``trail`` and asks nothing."""
        super().__init__()
        self.client, self.sso, self.cache_name = client, sso, cache_name
        self.trail = trail

    def compose(self) -> ComposeResult:
        whose = f" of {self.cache_name}" if self.cache_name else ""
        with Vertical(id="audit", classes="dialog"):
            yield Label(
                f"Audit trail{whose} (newest first) · r reload · escape closes",
                classes="question",
            )
            yield RichLog(  # newest first: the top is what matters, never scrolled away
                id="audit-lines", wrap=True, max_lines=SHOWN, min_width=1, auto_scroll=False
            )

    def on_mount(self) -> None:
        if self.trail is not None:
            self._show(self.trail)
        self.action_reload()

    @work(exclusive=True, group="audit")
    async def action_reload(self) -> None:
        if self.client is None:
            return
        log = self.query_one(RichLog)
        try:
            answer = await self.client.audit(self.sso, SHOWN)
        except ApiError as exc:
            log.clear()
            log.write(Text(f"The audit trail cannot be read: {exc}", style="bold"))
            return
        self._show(answer)

    def _show(self, answer: AuditOut) -> None:
        self.trail = answer
        log = self.query_one(RichLog)
        log.clear()
        for entry in answer.entries:
            log.write(entry_text(entry))
        if not answer.entries:
            log.write("(no changes recorded)")
        log.scroll_home(animate=False)
