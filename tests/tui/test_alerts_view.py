"""The Alerts view and the alert badges, with Pilot at 80×24 against a real backend: the
thresholds typed with the keyboard reach the backend, real connections make the alert fire,
and the title bar and the operator's Caches list show the badge until it resolves."""

from __future__ import annotations

import asyncio

import httpx
from textual.widgets import DataTable, Input

from tests.backend.test_auth import AuthenticatingClient
from tests.conftest import address
from tests.tui.conftest import running_app, wait_for
from tests.tui.screen import screen_lines
from tests.tui.test_cache_pages import create_cache, open_analytics
from tui.pages.alerts import AlertsScreen, badge, parse_form
from tui.pages.analytics import AnalyticsPage
from tui.pages.caches import CachesPage


def test_badge_and_form_parsing() -> None:
    assert badge(0) == "" and badge(1) == "⚠ 1 alert" and badge(3) == "⚠ 3 alerts"
    assert parse_form({"memory_above": " 80 ", "fire_after": "2", "hit_rate_below": ""}) == {
        "memory_above": 80.0,
        "fire_after": 2,
    }
    try:
        parse_form({"fire_after": "2.5"})
    except ValueError as exc:
        assert "Fire after" in str(exc) and "whole number" in str(exc)
    else:
        raise AssertionError("2.5 samples accepted")


async def test_alerts_set_from_the_keyboard_fire_and_show_badges_at_80x24(tmp_path) -> None:
    async with running_app(tmp_path, sample_interval=0.1) as (app, pilot):
        cache = await create_cache(app, "watched")
        await open_analytics(app, pilot, cache)
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, AlertsScreen))
        screen = app.screen
        await wait_for(pilot, lambda: screen.view is not None)
        text = "\n".join(screen_lines(app))
        for label in ("Hit rate below", "Refused commands above", "Resolve after", "Webhook"):
            assert label in text, text  # every field fits 80×24
        assert "No thresholds set" in text

        # Keyboard only: tab to "Connections above", type 1; tab to "Fire after", make it 2.
        for _ in range(12):
            if app.focused is not None and app.focused.id == "alert-connections_above":
                break
            await pilot.press("tab")
        assert app.focused is not None and app.focused.id == "alert-connections_above"
        await pilot.press("1")
        await pilot.press("tab", "tab")
        assert app.focused.id == "alert-fire_after"
        await pilot.press("ctrl+u", "2", "enter")
        url = f"{cache['dashboard_url']}/api/alerts"

        async def settings() -> dict:
            async with httpx.AsyncClient() as client:
                return (await client.get(url)).json()["settings"]

        for _ in range(100):
            if (await settings())["connections_above"] == 1:
                break
            await pilot.pause(0.05)
        saved = await settings()
        assert saved["connections_above"] == 1 and saved["fire_after"] == 2
        assert saved["memory_above"] is None  # left empty: off

        credential = cache["credentials"][0]

        def connect() -> AuthenticatingClient:
            client = AuthenticatingClient(
                address(cache["servers"]), credential["username"], credential["password"]
            )
            client.get("x")
            return client

        clients = [await asyncio.to_thread(connect) for _ in range(2)]
        try:
            await wait_for(pilot, lambda: "FIRING" in "\n".join(screen_lines(app)))
            assert "connections 2 > 1" in "\n".join(screen_lines(app))
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, AnalyticsPage))
            await wait_for(pilot, lambda: "⚠ 1 alert" in screen_lines(app)[0])
            assert app.title == "cachier · ⚠ 1 alert"
            # The operator's Caches list: the badge before the cache's name, and the total.
            await pilot.press("1")
            await wait_for(pilot, lambda: isinstance(app.screen, CachesPage))
            table = app.screen.query_one(DataTable)
            await wait_for(
                pilot,
                lambda: (
                    cache["id"] in table.rows and "⚠1 watched" in str(table.get_row(cache["id"])[0])
                ),
            )
            assert "⚠ 1 alert" in screen_lines(app)[0]
        finally:
            for client in clients:
                await asyncio.to_thread(client.close)
        await wait_for(pilot, lambda: app.title == "cachier", timeout=15)
        row = table.get_row(cache["id"])[0]
        assert str(row) == "watched"


async def test_a_refused_threshold_is_a_notice_and_the_view_stays(tmp_path) -> None:
    async with running_app(tmp_path) as (app, pilot):
        cache = await create_cache(app, "strict")
        await open_analytics(app, pilot, cache)
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, AlertsScreen))
        screen = app.screen
        await wait_for(pilot, lambda: screen.view is not None)
        screen.query_one("#alert-memory_above", Input).focus()
        await pilot.press("1", "5", "0", "enter")  # 150 % of the plan: refused by the backend
        await wait_for(
            pilot, lambda: any("not saved" in str(n.message) for n in app._notifications)
        )
        assert isinstance(app.screen, AlertsScreen)
        async with httpx.AsyncClient() as client:
            answer = (await client.get(f"{cache['dashboard_url']}/api/alerts")).json()
        assert answer["settings"]["memory_above"] is None
