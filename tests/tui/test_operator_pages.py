"""Pilot tests of the operator pages against a real in-process backend."""

from __future__ import annotations

import secrets
import socket

from textual.widgets import DataTable, Input

from tests.conftest import ADMIN_TOKEN, RunningService
from tests.tui.conftest import admin, running_app, wait_for
from tui.app import CachierApp, Remote, Settings
from tui.pages.caches import CachesPage, CreateCacheModal
from tui.pages.help import HelpScreen
from tui.pages.status import StatusPage


def cell_text(table: DataTable, row: str, column: str) -> str:
    value = table.get_cell(row, column)
    return value.plain if hasattr(value, "plain") else str(value)


async def test_create_a_cache_from_the_caches_page(tmp_path) -> None:
    async with running_app(tmp_path) as (app, pilot):
        assert isinstance(app.screen, CachesPage)
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, CreateCacheModal))
        app.screen.query_one("#name", Input).value = "from-the-tui"
        await pilot.press("enter")
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 1)
        async with admin(app) as client:
            (cache,) = (await client.get("/api/v1/admin/caches")).json()["items"]
        assert cache["name"] == "from-the-tui" and cache["plan"] == "100mb"
        assert cell_text(table, cache["id"], "name") == "from-the-tui"
        assert "● UP" in cell_text(table, cache["id"], "cluster")


async def test_cancelled_create_creates_nothing(tmp_path) -> None:
    async with running_app(tmp_path) as (app, pilot):
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, CreateCacheModal))
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, CachesPage))
        async with admin(app) as client:
            assert (await client.get("/api/v1/admin/caches")).json()["items"] == []


async def test_status_page_follows_an_injected_fault(tmp_path) -> None:
    async with running_app(tmp_path) as (app, pilot):
        await pilot.press("4")
        await wait_for(pilot, lambda: isinstance(app.screen, StatusPage))
        table = app.screen.query_one("#clusters", DataTable)
        await wait_for(pilot, lambda: "cluster:local-b" in table.rows)
        assert cell_text(table, "cluster:local-b", "light") != "✖ DOWN"
        hostname = "proxy-2.local-b.local.cachier.internal"
        async with admin(app) as client:
            reply = await client.post(
                f"/api/v1/admin/proxies/{hostname}/fault", json={"mode": "down"}
            )
            assert reply.status_code == 200
        await wait_for(pilot, lambda: cell_text(table, "cluster:local-b", "light") == "✖ DOWN")
        assert "p2 ✖ DOWN" in cell_text(table, "cluster:local-b", "proxies")
        assert cell_text(table, "cluster:local-a", "light") != "✖ DOWN"  # only local-b failed
        incidents = app.screen.query_one("#incidents", DataTable)
        await wait_for(pilot, lambda: incidents.row_count >= 1)


async def test_pause_shows_a_badge_and_help_lists_the_bindings(tmp_path) -> None:
    async with running_app(tmp_path) as (app, pilot):
        await pilot.press("p")
        assert app.paused and "PAUSED" in app.sub_title
        await pilot.press("p")
        assert not app.paused and app.sub_title == ""
        await pilot.press("r")
        assert app.refresh_s == 1.0  # 0.2 -> the next choice
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, CachesPage))


async def test_quitting_stops_the_backend_and_frees_its_ports(tmp_path) -> None:
    import socket

    async with running_app(tmp_path) as (app, pilot):
        api = app.service.listening.api_url.rsplit(":", 1)[1]
        await pilot.press("q")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", int(api)))


async def test_command_palette_lists_the_pages(tmp_path) -> None:
    async with running_app(tmp_path) as (app, pilot):
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert {
            "Caches page",
            "Analytics page",
            "Credentials page",
            "Status page",
            "Logs page",
        } <= set(titles)
        status = next(c for c in app.get_system_commands(app.screen) if c.title == "Status page")
        status.callback()
        await wait_for(pilot, lambda: isinstance(app.screen, StatusPage))


async def test_attaching_says_where_it_waits_then_shows_the_caches(
    service: RunningService, tmp_path
) -> None:
    """An attached dashboard paints its page at once and says which backend it is reaching
    while that backend has not answered; the page fills in when it does."""
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    silent_url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    try:
        app = CachierApp(Settings(), remote=Remote(silent_url, ADMIN_TOKEN))
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: silent_url in app.sub_title)
            assert isinstance(app.screen, CachesPage) and app.client is None
    finally:
        silent.close()
    name = f"attached-{secrets.token_hex(3)}"
    with service.admin() as client:
        created = client.post("/api/v1/admin/caches", json={"name": name, "plan": "100mb"})
        assert created.status_code == 201
    app = CachierApp(Settings(), remote=Remote(service.api_url, ADMIN_TOKEN))
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: created.json()["id"] in table.rows)
        assert app.client is not None and app.sub_title == ""
