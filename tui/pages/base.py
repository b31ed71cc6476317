"""What every page shares: a self re-arming refresh that runs only while the page is shown.

A fetch runs in an exclusive async worker (the latest wins), posts one message, and only
then schedules the next fetch, so a slow backend never gets requests stacked behind it.
Hidden pages stop fetching; pausing stops the timer but keeps the page's data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer

from tui.errors import ApiError
from tui.messages import FetchFailed

if TYPE_CHECKING:
    from tui.app import CachierApp


class Page(Screen):
    """Subclasses implement ``load`` (client calls only, no widgets) and message handlers."""

    needs_cache = False  # True: the page shows one cache and needs the app's current one
    fetches: type[Message] | None = None  # what load() returns (attaching may fetch it first)

    def __init__(self) -> None:
        super().__init__()
        self._timer: Timer | None = None

    @property
    def cachier(self) -> CachierApp:
        return self.app  # type: ignore[return-value]

    async def load(self) -> Message | None:
        raise NotImplementedError

    def on_screen_resume(self) -> None:
        self.refresh_now()

    def on_screen_suspend(self) -> None:
        self._cancel_timer()

    def refresh_now(self) -> None:
        self._cancel_timer()
        if self.cachier.client is None:
            return
        if self.needs_cache and self.cachier.sso is None:
            self.show_no_cache()
            return
        self.run_worker(self._fetch, exclusive=True, group="fetch", exit_on_error=False)

    def show_no_cache(self) -> None:
        """A cache page opened before a cache was chosen (operator view)."""

    async def _fetch(self) -> None:
        try:
            message = self.cachier.take_prefetched(self.fetches)  # the attach's answer
            if message is None:
                message = await self.load()
        except ApiError as error:
            message = FetchFailed(str(error))
        if message is not None:
            self.post_message(message)
        self._rearm()

    def _rearm(self) -> None:
        if self.is_current and not self.cachier.paused:
            self._timer = self.set_timer(self.cachier.refresh_s, self.refresh_now)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    @on(FetchFailed)
    def _fetch_failed(self, message: FetchFailed) -> None:
        self.notify(message.error, title="Backend", severity="error", timeout=5)

    def run_action(self, description: str, coroutine, done=None) -> None:
        """A mutation (flush, promote, ...): not exclusive, so a second key press cannot
        cancel it halfway; its outcome is a notification, then the page refreshes."""

        async def run() -> None:
            try:
                result = await coroutine
            except ApiError as error:
                self.notify(f"{description} failed: {error}", severity="error", timeout=6)
                return
            if done is not None:
                done(result)
            self.refresh_now()

        self.run_worker(run, group="mutation", exit_on_error=False)
