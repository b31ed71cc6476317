"""The title bar's alert badge on every page (issue 16 item 3), with Pilot at 80×24
against a real backend: real memcache connections make a `connections above 1` alert
fire and resolve while the Credentials, Status and Logs pages and the audit view are
shown, for the operator (in-process backend) and for a cache's owner (dashboard URL).

Pages whose refresh already fetches the cache (Credentials) carry the count themselves:
the app then asks nothing more; elsewhere it asks one small request per interval."""

from __future__ import annotations

import asyncio

import httpx

from tests.backend.test_auth import AuthenticatingClient
from tests.conftest import CacheHandle, RunningService, address
from tests.tui.conftest import running_app, wait_for
from tests.tui.screen import screen_lines
from tests.tui.test_cache_pages import create_cache, open_credentials
from tui.app import CachierApp, Remote, Settings
from tui.pages.audit import AuditScreen
from tui.pages.logs import LogsPage
from tui.pages.status import StatusPage
from tui.urls import api_of, sso_of

THRESHOLDS = {"connections_above": 1, "fire_after": 1, "resolve_after": 1}


async def set_thresholds(dashboard_url: str) -> None:
    async with httpx.AsyncClient() as client:
        reply = await client.put(f"{dashboard_url}/api/alerts", json=THRESHOLDS)
    assert reply.status_code == 200, reply.text


async def connect(cache: dict, count: int = 2) -> list[AuthenticatingClient]:
    """``count`` live connections of the cache's primary credential (real pymemcache)."""
    credential = cache["credentials"][0]

    def one() -> AuthenticatingClient:
        client = AuthenticatingClient(
            address(cache["servers"]), credential["username"], credential["password"]
        )
        client.get("x")
        return client

    return [await asyncio.to_thread(one) for _ in range(count)]


async def close(clients: list[AuthenticatingClient]) -> None:
    for client in clients:
        await asyncio.to_thread(client.close)


def title_line(app: CachierApp) -> str:
    return screen_lines(app)[0]


def record_requests(app: CachierApp) -> list[str]:
    """Every request the dashboard sends from now on, as ``path?query``."""
    seen: list[str] = []

    async def hook(request: httpx.Request) -> None:
        query = request.url.query.decode()
        seen.append(request.url.path + (f"?{query}" if query else ""))

    assert app.client is not None
    app.client.http.event_hooks["request"].append(hook)
    return seen


async def test_the_operator_sees_the_badge_come_and_go_on_every_page(tmp_path) -> None:
    async with running_app(tmp_path, sample_interval=0.1) as (app, pilot):
        cache = await create_cache(app, "watched")
        await set_thresholds(cache["dashboard_url"])
        await open_credentials(app, pilot, cache)
        requests = record_requests(app)

        # Fires and resolves while Credentials is shown: its own refresh carries the count.
        clients = await connect(cache)
        await wait_for(pilot, lambda: "⚠ 1 alert" in title_line(app))
        await close(clients)
        await wait_for(pilot, lambda: "alert" not in title_line(app))
        assert app.title == "cachier"
        assert not any(r.startswith("/api/v1/admin/caches") for r in requests)
        asked_cache = sum(r.endswith("/api/cache") for r in requests)
        asked_credentials = sum(r.endswith("/api/credentials") for r in requests)
        assert asked_cache > 0 and abs(asked_cache - asked_credentials) <= 1  # no extra ask

        # Status: every cache's count (a one-row admin list), fires while it is shown.
        await pilot.press("4")
        await wait_for(pilot, lambda: isinstance(app.screen, StatusPage))
        clients = await connect(cache)
        await wait_for(pilot, lambda: "⚠ 1 alert" in title_line(app))
        assert "/api/v1/admin/caches?limit=1" in requests

        # Logs, then its audit view over it: the cache's count; it resolves there.
        await pilot.press("5")
        await wait_for(pilot, lambda: isinstance(app.screen, LogsPage))
        await pilot.pause(0.5)  # a few intervals: it stays while the alert fires
        assert "⚠ 1 alert" in title_line(app)
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, AuditScreen))
        await close(clients)
        await wait_for(pilot, lambda: "alert" not in title_line(app))
        await pilot.press("escape")

        # Paused, the badge is left as it was, as every page's data is.
        await pilot.press("p")
        clients = await connect(cache)
        await pilot.pause(1.0)
        assert "alert" not in title_line(app)
        await pilot.press("p")
        await wait_for(pilot, lambda: "⚠ 1 alert" in title_line(app))
        await close(clients)


async def test_the_owner_sees_the_badge_on_logs_and_status(
    service: RunningService, cache: CacheHandle
) -> None:
    url = cache.info["dashboard_url"]
    await set_thresholds(url)
    settings = Settings(operator=False, sso=sso_of(url), refresh_s=0.2)
    app = CachierApp(settings, remote=Remote(api_of(url)))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.client is not None)
        await pilot.press("5")
        await wait_for(pilot, lambda: isinstance(app.screen, LogsPage))
        requests = record_requests(app)
        clients = await connect(cache.info)
        await wait_for(pilot, lambda: "⚠ 1 alert" in title_line(app))
        await pilot.press("4")
        await wait_for(pilot, lambda: isinstance(app.screen, StatusPage))
        await close(clients)
        await wait_for(pilot, lambda: "alert" not in title_line(app))
        assert any(r.endswith("/api/cache") for r in requests)  # the cache's own count
        assert not any(r.startswith("/api/v1/admin") for r in requests)  # no operator route
