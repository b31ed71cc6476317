"""Pilot tests of the cache pages (Analytics, Credentials, Logs) against a real backend.

Every action of the cache pages is driven with keys and checked where it matters: in the
backend (through its HTTP API, or a real memcache client) and on the page afterwards.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from pymemcache.exceptions import MemcacheClientError
from textual.widgets import DataTable, Static

from tests.backend.test_auth import AuthenticatingClient
from tests.conftest import address
from tests.tui.conftest import admin, running_app, wait_for
from tui.app import CachierApp
from tui.pages.analytics import AnalyticsPage
from tui.pages.caches import CachesPage
from tui.pages.credentials import CredentialsPage
from tui.pages.logs import LogsPage, LogView
from tui.urls import sso_of
from tui.widgets.confirm import ConfirmModal

# -- helpers ----------------------------------------------------------------------------


async def create_cache(app: CachierApp, name: str, plan: str = "100mb") -> dict:
    async with admin(app) as client:
        reply = await client.post("/api/v1/admin/caches", json={"name": name, "plan": plan})
    assert reply.status_code == 201, reply.text
    return reply.json()


async def admin_cache(app: CachierApp, cache_id: str) -> dict:
    async with admin(app) as client:
        reply = await client.get(f"/api/v1/admin/caches/{cache_id}")
    assert reply.status_code == 200, reply.text
    return reply.json()


async def dashboard(dashboard_url: str, path: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(f"{dashboard_url}/api/{path}")


async def usernames(dashboard_url: str) -> list[str]:
    reply = await dashboard(dashboard_url, "credentials")
    assert reply.status_code == 200, reply.text
    return [c["username"] for c in reply.json()]


async def open_analytics(app: CachierApp, pilot, cache: dict) -> AnalyticsPage:
    app.open_cache(sso_of(cache["dashboard_url"]), cache["name"], "analytics")
    await wait_for(pilot, lambda: isinstance(app.screen, AnalyticsPage))
    page = app.screen
    await wait_for(pilot, lambda: page.cache is not None and page.cache.id == cache["id"])
    return page


async def open_credentials(
    app: CachierApp, pilot, cache: dict, by_key: bool = False
) -> CredentialsPage:
    """The cache on Credentials: opened there directly, or from Analytics with ``3``."""
    if by_key:
        await open_analytics(app, pilot, cache)
        await pilot.press("3")
    else:
        app.open_cache(sso_of(cache["dashboard_url"]), cache["name"], "credentials")
    await wait_for(pilot, lambda: isinstance(app.screen, CredentialsPage))
    page = app.screen
    table = page.query_one(DataTable)
    await wait_for(
        pilot,
        lambda: (
            page.cache is not None
            and page.cache.id == cache["id"]
            and table.row_count == len(page.credentials) > 0
        ),
    )
    return page


async def add_credential(app: CachierApp, pilot, page: CredentialsPage, cache: dict) -> str:
    """``a`` on the page; returns the new username once the table shows it."""
    before = set(await usernames(cache["dashboard_url"]))
    await pilot.press("a")
    table = page.query_one(DataTable)
    await wait_for(
        pilot,
        lambda: (
            set(page.credentials) - before
            and all(u in table.rows for u in set(page.credentials) - before)
        ),
    )
    (new,) = set(page.credentials) - before
    return new


async def select_row(pilot, table: DataTable, username: str) -> None:
    """Move the cursor onto ``username``'s row with the arrow keys."""
    target = table.get_row_index(username)
    while table.cursor_row != target:
        await pilot.press("down" if table.cursor_row < target else "up")
    assert table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value == username


async def delete_new_credential(app: CachierApp, pilot, name: str) -> tuple[dict, str]:
    """A new cache's Credentials page: add a credential, select it, ``d`` and ``y``; returns
    the cache and the deleted username once the table no longer shows it."""
    cache = await create_cache(app, name)
    page = await open_credentials(app, pilot, cache)
    table = page.query_one(DataTable)
    doomed = await add_credential(app, pilot, page, cache)
    await select_row(pilot, table, doomed)
    await pilot.press("d")
    await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal))
    await pilot.press("y")
    await wait_for(pilot, lambda: doomed not in table.rows)
    return cache, doomed


def cell_text(table: DataTable, row: str, column: str) -> str:
    value = table.get_cell(row, column)
    return value.plain if hasattr(value, "plain") else str(value)


def static_text(page, selector: str) -> str:
    content = page.query_one(selector, Static).content
    return content.plain if hasattr(content, "plain") else str(content)


def notifications(app: CachierApp, severity: str | None = None) -> list[str]:
    return [n.message for n in app._notifications if severity in (None, n.severity)]


# -- Credentials ------------------------------------------------------------------------


async def test_add_creates_a_secondary_credential_in_the_backend(tmp_path) -> None:
    async with running_app(tmp_path) as (app, pilot):
        cache = await create_cache(app, "adds")
        page = await open_credentials(app, pilot, cache, by_key=True)
        primary = cache["credentials"][0]["username"]
        new = await add_credential(app, pilot, page, cache)
        reply = await dashboard(cache["dashboard_url"], "credentials")
        listed = {c["username"]: c for c in reply.json()}
        assert set(listed) == {primary, new}
        assert listed[new]["primary"] is False
        assert listed[new]["write"] and listed[new]["flush"]
        assert listed[primary]["primary"] is True
        table = page.query_one(DataTable)
        assert "secondary" in cell_text(table, new, "primary")


async def test_turning_write_off_makes_a_real_memcache_set_fail(tmp_path) -> None:
    async with running_app(tmp_path) as (app, pilot):
        cache = await create_cache(app, "read-only")
        page = await open_credentials(app, pilot, cache)
        table = page.query_one(DataTable)
        username = await add_credential(app, pilot, page, cache)
        password = page.credentials[username].password
        endpoint = address(cache["servers"])
        live = AuthenticatingClient(endpoint, username, password)
        fresh = AuthenticatingClient(endpoint, username, password)
        try:  # it can write before the toggle: the refusals below are the toggle's doing
            assert await asyncio.to_thread(live.set, "k", "v", noreply=False) is True

            await select_row(pilot, table, username)
            await pilot.press("w")
            await wait_for(pilot, lambda: cell_text(table, username, "write") == "[ ]")
            (listed,) = [
                c
                for c in (await dashboard(cache["dashboard_url"], "credentials")).json()
                if c["username"] == username
            ]
            assert listed["write"] is False and listed["flush"] is True

            # the connection opened before the toggle sees it at once, a new one too
            for client in (live, fresh):
                with pytest.raises(MemcacheClientError, match="'write' capability"):
                    await asyncio.to_thread(client.set, "k", "w", noreply=False)
            assert await asyncio.to_thread(fresh.get, "k") == b"v"  # reading is still allowed
        finally:
            await asyncio.to_thread(live.close)
            await asyncio.to_thread(fresh.close)


async def test_promote_names_the_credential_in_the_app_config_and_makes_a_release(
    tmp_path,
) -> None:
    async with running_app(tmp_path) as (app, pilot):
        cache = await create_cache(app, "promotes")
        before = (await dashboard(cache["dashboard_url"], "app")).json()
        old_primary = cache["credentials"][0]["username"]
        assert before["config_vars"]["MEMCACHIER_USERNAME"] == old_primary
        page = await open_credentials(app, pilot, cache)
        table = page.query_one(DataTable)
        new = await add_credential(app, pilot, page, cache)
        await select_row(pilot, table, new)
        await pilot.press("u")
        await wait_for(
            pilot,
            lambda: (
                "primary" in cell_text(table, new, "primary")
                and "secondary" in cell_text(table, old_primary, "primary")
            ),
        )
        after = (await dashboard(cache["dashboard_url"], "app")).json()
        assert after["config_vars"]["MEMCACHIER_USERNAME"] == new
        assert after["config_vars"]["MEMCACHIER_PASSWORD"] == page.credentials[new].password
        assert after["release"] > before["release"]
        # the page's config vars follow on their next refresh
        await wait_for(pilot, lambda: page.provider_app.config_vars["MEMCACHIER_USERNAME"] == new)


async def test_confirmed_delete_removes_the_credential(tmp_path) -> None:
    async with running_app(tmp_path) as (app, pilot):
        cache, doomed = await delete_new_credential(app, pilot, "deletes")
        assert doomed not in await usernames(cache["dashboard_url"])
        assert await usernames(cache["dashboard_url"]) == [cache["credentials"][0]["username"]]


@pytest.mark.parametrize("key", ["n", "escape"])
async def test_cancelled_delete_keeps_the_credential(tmp_path, key: str) -> None:
    async with running_app(tmp_path) as (app, pilot):
        cache = await create_cache(app, f"keeps-{key}")
        page = await open_credentials(app, pilot, cache)
        table = page.query_one(DataTable)
        kept = await add_credential(app, pilot, page, cache)
        await select_row(pilot, table, kept)
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press(key)
        await wait_for(pilot, lambda: app.screen is page)
        await pilot.pause(0.3)  # a refresh or two: a deletion would have shown by now
        assert kept in await usernames(cache["dashboard_url"])
        assert kept in table.rows


async def test_the_primary_credential_cannot_be_deleted(tmp_path) -> None:
    async with running_app(tmp_path) as (app, pilot):
        cache = await create_cache(app, "primary-stays")
        primary = cache["credentials"][0]["username"]
        page = await open_credentials(app, pilot, cache)
        await select_row(pilot, page.query_one(DataTable), primary)
        await pilot.press("d")
        await wait_for(pilot, lambda: any("cannot be deleted" in m for m in notifications(app)))
        assert app.screen is page  # no confirmation asked for what cannot happen
        assert await usernames(cache["dashboard_url"]) == [primary]


async def test_rotating_the_sso_secret_kills_the_old_url_and_the_page_follows(tmp_path) -> None:
    async with running_app(tmp_path) as (app, pilot):
        cache = await create_cache(app, "rotates")
        old_url = cache["dashboard_url"]
        page = await open_credentials(app, pilot, cache)
        old_sso = app.sso
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await wait_for(pilot, lambda: app.sso != old_sso)
        assert app.screen is page
        assert (await dashboard(old_url, "cache")).status_code == 404
        new_url = (await admin_cache(app, cache["id"]))["dashboard_url"]
        assert sso_of(new_url) == app.sso != sso_of(old_url)
        assert (await dashboard(new_url, "cache")).status_code == 200

        # the page keeps working on the new URL: add a credential, see it in the backend
        new = await add_credential(app, pilot, page, {"dashboard_url": new_url})
        assert new in await usernames(new_url)
        assert (await dashboard(old_url, "credentials")).status_code == 404
        # and so do the other cache pages
        await pilot.press("2")
        await wait_for(pilot, lambda: isinstance(app.screen, AnalyticsPage))
        analytics = app.screen
        await wait_for(pilot, lambda: analytics.cache is not None)
        assert analytics.cache.dashboard_url == new_url
        assert notifications(app, "error") == []


# -- Analytics and Logs -----------------------------------------------------------------


async def test_flush_from_analytics_is_logged_with_its_origin_and_proxy(tmp_path) -> None:
    async with running_app(tmp_path, size=(160, 40)) as (app, pilot):
        cache = await create_cache(app, "flushes")
        page = await open_analytics(app, pilot, cache)
        await pilot.press("f")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await wait_for(pilot, lambda: any("flushed on proxy" in m for m in notifications(app)))
        assert app.screen is page

        lines = (await dashboard(cache["dashboard_url"], "logs")).json()["lines"]
        flushes = [line for line in lines if line["origin"] is not None]
        assert len(flushes) == 1
        (flush,) = flushes
        assert flush["origin"] == "web interface"
        proxies = set(app.service.listening.proxies)
        assert flush["proxy"] in proxies
        assert f".{cache['cluster']}." in flush["proxy"]

        await pilot.press("5")
        await wait_for(pilot, lambda: isinstance(app.screen, LogsPage))
        logs = app.screen
        await wait_for(pilot, lambda: any(line.id == flush["id"] for line in logs.lines))
        (shown,) = [line for line in logs.lines if line.id == flush["id"]]
        assert (shown.origin, shown.proxy) == ("web interface", flush["proxy"])
        view = logs.query_one(LogView)
        await wait_for(pilot, lambda: any("FLUSH" in strip.text for strip in view.lines))
        (rendered,) = [strip.text for strip in view.lines if "FLUSH" in strip.text]
        assert "origin: web interface" in rendered and flush["proxy"] in rendered


async def test_cancelled_move_changes_nothing(tmp_path) -> None:
    async with running_app(tmp_path) as (app, pilot):
        cache = await create_cache(app, "stays-put")
        page = await open_analytics(app, pilot, cache)
        await pilot.press("m")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen is page)
        await pilot.pause(0.3)
        after = await admin_cache(app, cache["id"])
        assert (after["cluster"], after["servers"]) == (cache["cluster"], cache["servers"])
        assert page.busy is None and page.cache.cluster == cache["cluster"]


async def test_confirmed_move_changes_the_cluster_keeps_servers_and_updates_header(
    tmp_path,
) -> None:
    async with running_app(tmp_path) as (app, pilot):
        cache = await create_cache(app, "moves")
        page = await open_analytics(app, pilot, cache)
        assert f" {cache['cluster']} " in static_text(page, "#analytics-title")
        await pilot.press("m")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await wait_for(pilot, lambda: app.screen is page and page.cache.cluster != cache["cluster"])
        after = await admin_cache(app, cache["id"])
        assert after["cluster"] != cache["cluster"]
        assert after["servers"] == cache["servers"]
        assert page.cache.cluster == after["cluster"]
        title = static_text(page, "#analytics-title")
        assert f" {after['cluster']} " in title and f" {cache['cluster']} " not in title


async def test_move_is_disabled_on_the_free_plan(tmp_path) -> None:
    async with running_app(tmp_path) as (app, pilot):
        cache = await create_cache(app, "freebie", plan="free")
        page = await open_analytics(app, pilot, cache)
        assert page.cache.can_migrate is False
        assert "free plan" in static_text(page, "#analytics-hint")
        await pilot.press("m")
        await wait_for(pilot, lambda: any("free plan" in m for m in notifications(app)))
        assert app.screen is page  # no ConfirmModal
        await pilot.pause(0.3)
        assert not isinstance(app.screen, ConfirmModal)
        assert (await admin_cache(app, cache["id"]))["cluster"] == cache["cluster"]


# -- Caches -----------------------------------------------------------------------------


async def test_enter_on_a_cache_row_opens_its_analytics(tmp_path) -> None:
    async with running_app(tmp_path) as (app, pilot):
        await create_cache(app, "first")
        second = await create_cache(app, "second")
        assert isinstance(app.screen, CachesPage)
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 2)
        target = table.get_row_index(second["id"])
        while table.cursor_row != target:
            await pilot.press("down")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, AnalyticsPage))
        page = app.screen
        await wait_for(pilot, lambda: page.cache is not None)
        assert page.cache.id == second["id"]
        assert app.sso == sso_of(second["dashboard_url"]) and app.cache_name == "second"
        await wait_for(pilot, lambda: "second" in static_text(page, "#analytics-title"))


async def test_the_audit_trail_names_who_deleted_a_credential_at_80x24(tmp_path) -> None:
    """Delete a credential on the Credentials page, then `5` `a`: the trail shows it as the
    dashboard's doing, newest first, whole at 80 columns, and `escape` closes it."""
    from tests.tui.screen import screen_lines
    from tui.pages.audit import AuditScreen

    async with running_app(tmp_path) as (app, pilot):
        cache, doomed = await delete_new_credential(app, pilot, "audited")
        await pilot.press("5")
        await wait_for(pilot, lambda: isinstance(app.screen, LogsPage))
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, AuditScreen))
        await wait_for(pilot, lambda: "credential deleted" in "\n".join(screen_lines(app)))
        lines = screen_lines(app)
        text = "\n".join(lines)
        assert "Audit trail of audited" in text
        deleted = next(line for line in lines if "credential deleted" in line)
        assert "dashboard" in deleted and doomed in deleted
        order = [
            w for w in ("credential deleted", "credential added", "cache created") if w in text
        ]
        assert order == ["credential deleted", "credential added", "cache created"]
        assert text.index("credential deleted") < text.index("cache created")
        assert "operator" in next(line for line in lines if "cache created" in line)
        for secret in (cache["credentials"][0]["password"], sso_of(cache["dashboard_url"])):
            assert secret not in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, LogsPage))


async def test_the_keys_view_shows_what_clients_hit_at_80x24(tmp_path) -> None:
    """`k` on Analytics: per-command bars, then the hot keys once clients send commands
    (sampling starts when the view opens); keys cut to fit 80 columns."""
    from tests.tui.screen import screen_lines
    from tui.pages.keys import KeysScreen

    async with running_app(tmp_path) as (app, pilot):
        cache = await create_cache(app, "keyed")
        await open_analytics(app, pilot, cache)
        await pilot.press("k")
        await wait_for(pilot, lambda: isinstance(app.screen, KeysScreen))
        screen = app.screen
        await wait_for(pilot, lambda: screen.view is not None and screen.view.tracking)
        credential = cache["credentials"][0]

        def traffic() -> None:
            client = AuthenticatingClient(
                address(cache["servers"]), credential["username"], credential["password"]
            )
            try:
                client.set("user:" + "x" * 40, b"v" * 2000)
                for _ in range(200):
                    client.get("user:" + "x" * 40)
                for _ in range(100):
                    client.get("miss:1")
            finally:
                client.close()

        await asyncio.to_thread(traffic)
        await wait_for(pilot, lambda: screen.view is not None and len(screen.view.keys) == 2)
        text = "\n".join(screen_lines(app))
        assert "get    " in text and "200 / 100  67% hits" in text
        assert "user:" + "x" * 20 in text and "…" in text  # the long key, cut
        assert "Hot keys" in text and "miss:1" in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, AnalyticsPage))
