"""The one mutation path (``Page.mutate``): its key is disabled while the call runs, the
worker posts one typed message, the page's handler shows the outcome, then the page
refreshes; a failure is a notice and gives the key back.

The app is the snapshot tests' frozen app with a scripted client, so each step can be held
and looked at; the Pilot tests in test_cache_pages.py run the same paths on a real backend.
"""

from __future__ import annotations

import asyncio
from typing import Any

from textual.message import Message
from textual.widgets import Select

from backend.api.schemas import FlushOut, PlanOut, StatsOut
from tests.tui.screen import screen_lines
from tui import sample_data as data
from tui.errors import ApiError
from tui.messages import (
    AnalyticsFetched,
    CacheFlushed,
    CachesFetched,
    CredentialsFetched,
    Mutated,
    MutationFailed,
)
from tui.pages.analytics import AnalyticsPage
from tui.pages.caches import CreateCacheModal
from tui.pages.credentials import CredentialsPage
from tui.screenshots import frozen_app, show
from tui.widgets.confirm import ConfirmModal


class ScriptedClient:
    """Answers reads with the sample data; each mutation does what the test says."""

    def __init__(self) -> None:
        self.reads = 0
        self.release = asyncio.Event()  # a held mutation answers once this is set
        self.failure: Exception | None = None

    async def cache(self, sso: str) -> Any:
        self.reads += 1
        return data.cache_info()

    async def stats(
        self, sso: str, window_s: float | None = None, since: float | None = None
    ) -> StatsOut:
        return StatsOut(interval_s=1.0, samples=[]) if since is not None else data.stats()

    async def credentials(self, sso: str) -> Any:
        return data.credentials()

    async def app(self, sso: str) -> Any:
        return data.app_out()

    async def plans(self) -> list[PlanOut]:
        return [PlanOut(name="small", memory_limit=1), PlanOut(name="large", memory_limit=2)]

    async def flush(self, sso: str) -> FlushOut:
        await self.release.wait()
        return FlushOut(cache_id="c0000000000", proxy="proxy-2", origin="web interface")

    async def promote(self, sso: str, username: str) -> Any:
        if self.failure is not None:
            raise self.failure
        raise AssertionError("the test sets a failure")


def notices(app, severity: str | None = None) -> list[str]:
    return [n.message for n in app._notifications if severity in (None, n.severity)]


async def test_a_mutation_holds_its_keys_until_its_message_then_shows_it_and_refreshes() -> None:
    posted: list[Message] = []
    app = frozen_app()
    async with app.run_test(size=(80, 24), message_hook=posted.append) as pilot:
        await show(pilot, "analytics", AnalyticsFetched(data.cache_info(), data.stats()))
        page = app.screen
        assert isinstance(page, AnalyticsPage)
        app.client = client = ScriptedClient()  # type: ignore[assignment]
        app.refresh_s = 600.0  # only the refresh after the change fetches in this test
        await pilot.press("f")
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("y")
        await pilot.pause()
        reads = client.reads  # the page fetched once when the modal closed
        assert page.busy == "flush" and page.mutating == {"flush"}
        assert page.check_action("flush", ()) is None and page.check_action("move", ()) is None
        assert "flushing the cache" in str(page.query_one("#analytics-hint").render())
        assert not [m for m in posted if isinstance(m, Mutated)]

        client.release.set()
        await pilot.pause()
        await pilot.pause()
        (done,) = [m for m in posted if isinstance(m, Mutated)]
        assert isinstance(done, CacheFlushed) and done.action == "flush"
        assert done.flushed.proxy == "proxy-2" and done.cache.name == "shop"
        assert "shop flushed on proxy proxy-2" in notices(app)
        assert page.busy is None and page.check_action("flush", ()) is True
        assert "flushing" not in str(page.query_one("#analytics-hint").render())
        await pilot.pause()
        assert client.reads == reads + 1  # refreshed after the change


async def test_a_failed_mutation_is_a_notice_naming_it_and_gives_the_key_back() -> None:
    posted: list[Message] = []
    app = frozen_app()
    async with app.run_test(size=(80, 24), message_hook=posted.append) as pilot:
        message = CredentialsFetched(data.cache_info(), data.credentials(), data.app_out())
        await show(pilot, "credentials", message)
        page = app.screen
        assert isinstance(page, CredentialsPage)
        app.client = client = ScriptedClient()  # type: ignore[assignment]
        app.refresh_s = 600.0
        client.failure = ApiError("the backend said no", 409)
        await pilot.press("down", "u")  # a secondary credential
        await pilot.pause()
        await pilot.pause()
        (failed,) = [m for m in posted if isinstance(m, MutationFailed)]
        secondary = data.credentials()[1].username
        assert (failed.action, failed.error) == ("promote", "the backend said no")
        assert f"Promoting {secondary} failed: the backend said no" in notices(app, "error")
        assert page.mutating == set() and page.check_action("promote", ()) is True
        assert page.credentials[secondary].primary is False  # nothing changed on the page
        assert client.reads == 0  # nothing refreshed after a failure


async def test_a_bug_in_a_mutation_is_a_notice_too_and_never_locks_the_key() -> None:
    app = frozen_app()
    async with app.run_test(size=(80, 24)) as pilot:
        message = CredentialsFetched(data.cache_info(), data.credentials(), data.app_out())
        await show(pilot, "credentials", message)
        page = app.screen
        assert isinstance(page, CredentialsPage)
        app.client = client = ScriptedClient()  # type: ignore[assignment]
        client.failure = KeyError("surprise")
        await pilot.press("down", "u")
        await pilot.pause()
        await pilot.pause()
        assert any("failed: KeyError" in n for n in notices(app, "error"))
        assert page.check_action("promote", ()) is True


async def test_the_create_dialog_offers_the_plans_the_backend_serves() -> None:
    app = frozen_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await show(pilot, "caches", CachesFetched(data.cache_page(), data.status()))
        app.client = ScriptedClient()  # type: ignore[assignment]
        await pilot.press("c")
        for _ in range(5):
            if isinstance(app.screen, CreateCacheModal):
                break
            await pilot.pause()
        modal = app.screen
        assert isinstance(modal, CreateCacheModal)
        plan = modal.query_one("#plan", Select)
        assert [str(option[1]) for option in plan._options] == ["small", "large"]
        assert plan.value == "small"  # the default plan is not offered: the first one is


async def test_credentials_show_every_config_var_the_app_holds() -> None:
    """TLS on: the app holds MEMCACHIER_TLS_SERVERS too, and the page shows it."""
    app_out = data.app_out()
    app_out.config_vars["MEMCACHIER_TLS_SERVERS"] = "127.0.0.1:11219"
    app = frozen_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await show(
            pilot, "credentials", CredentialsFetched(data.cache_info(), data.credentials(), app_out)
        )
        shown = "\n".join(screen_lines(app))
        for name in app_out.config_vars:
            assert name in shown
        password = app_out.config_vars["MEMCACHIER_PASSWORD"]
        assert password not in shown and password[-4:] in shown  # masked until revealed
