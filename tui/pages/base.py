"""What every page shares: a self re-arming refresh that runs only while the page is shown,
and one way to run a mutation.

A fetch runs in an exclusive async worker (the latest wins), posts one message, and only
then schedules the next fetch, so a slow backend never gets requests stacked behind it.
Hidden pages stop fetching; pausing stops the timer but keeps the page's data.

A mutation (create, flush, promote, ...) runs in a worker that is *not* exclusive, so a
second key press cannot cancel it halfway; instead its action's key is disabled until it
has answered. The worker only calls the API and posts one message (a ``Mutated`` subclass
or ``MutationFailed``); the page's handlers change widgets and state.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from textual import on, work
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer

from tui.errors import ApiError
from tui.messages import FetchFailed, Mutated, MutationFailed

if TYPE_CHECKING:
    from tui.app import CachierApp
    from tui.client import CachierClient

Answer = TypeVar("Answer")


class Page(Screen):
    """Subclasses implement ``load`` (client calls only, no widgets) and message handlers."""

    needs_cache = False  # True: the page shows one cache and needs the app's current one
    fetches: type[Message] | None = None  # what load() returns (attaching may fetch it first)

    def __init__(self) -> None:
        super().__init__()
        self._timer: Timer | None = None
        self.mutating: set[str] = set()  # actions whose call has not answered yet

    @property
    def cachier(self) -> CachierApp:
        return self.app  # type: ignore[return-value]

    @property
    def client(self) -> CachierClient:
        """The backend's client, for workers: they run only once it is set, and a worker
        that somehow runs before reports it like any failed call."""
        client = self.cachier.client
        if client is None:
            raise ApiError("the backend is not reached yet")
        return client

    @property
    def sso(self) -> str:
        """The current cache's dashboard secret, for the cache pages' workers."""
        sso = self.cachier.sso
        if sso is None:
            raise ApiError("no cache chosen")
        return sso

    async def load(self) -> Message | None:
        raise NotImplementedError

    # -- reads --------------------------------------------------------------------------
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
        self._fetch()

    def show_no_cache(self) -> None:
        """A cache page opened before a cache was chosen (operator view)."""

    @work(exclusive=True, group="fetch", exit_on_error=False)
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

    # -- mutations ----------------------------------------------------------------------
    def mutate(
        self,
        action: str,
        description: str,
        call: Callable[[CachierClient], Awaitable[Answer]],
        answered: Callable[[str, Answer], Mutated],
    ) -> None:
        """Run ``call`` with the client in a worker; ``answered(action, answer)`` is the
        message it then posts, handled by the page (``@on`` its class). ``action`` stays in
        ``mutating`` until then, so ``check_action`` disables its key. After a success the
        page refreshes; a failure is a notification naming ``description``.

        ``call`` makes the request only when the worker runs (no coroutine is left
        un-awaited if it never does, e.g. on quit)."""
        self.mutating.add(action)
        self.mutations_changed()
        self._mutation(action, description, call, answered)

    @work(group="mutation", exit_on_error=False)
    async def _mutation(
        self,
        action: str,
        description: str,
        call: Callable[[CachierClient], Awaitable[Answer]],
        answered: Callable[[str, Answer], Mutated],
    ) -> None:
        try:
            answer = await call(self.client)
        except ApiError as error:
            self.post_message(MutationFailed(action, description, str(error)))
            return
        except Exception as error:  # a bug: the key must not stay disabled for good
            self.post_message(
                MutationFailed(action, description, f"{type(error).__name__}: {error}")
            )
            raise  # the worker's error state keeps the traceback
        self.post_message(answered(action, answer))

    @on(Mutated)
    def _mutated(self, message: Mutated) -> None:
        """After the page's own handler of the subclass: the key back, then fresh data."""
        self._mutation_ended(message.action)
        self.refresh_now()

    @on(MutationFailed)
    def _mutation_failed(self, message: MutationFailed) -> None:
        self._mutation_ended(message.action)
        self.notify(f"{message.description} failed: {message.error}", severity="error", timeout=6)

    def _mutation_ended(self, action: str) -> None:
        self.mutating.discard(action)
        self.mutations_changed()

    def mutations_changed(self) -> None:
        """A mutation started or ended: the footer shows which keys work now."""
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """An action whose mutation is running is shown dimmed (None) and does nothing."""
        return None if action in self.mutating else True
