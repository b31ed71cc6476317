"""The rotation walkthrough (issue 16 item 1) at 80×24 against a real backend: add a
credential, switch a pymemcache client to it, watch the old one's "last used" age grow
and its connections drop to 0, delete it; and the second confirmation that names the live
connections of a credential still in use."""

from __future__ import annotations

import asyncio
import re

from pymemcache.client.base import Client
from textual.widgets import DataTable, Static

from backend.clients import authenticating_socket_module
from tests.backend.test_auth import AuthenticatingClient
from tests.conftest import address
from tests.tui.conftest import running_app, wait_for
from tests.tui.test_cache_pages import (
    add_credential,
    cell_text,
    create_cache,
    notifications,
    open_credentials,
    select_row,
    usernames,
)
from tui.widgets.confirm import ConfirmModal


def modal_text(app) -> str:
    return " ".join(str(s.content) for s in app.screen.query(Static))


def readme_client(endpoint: tuple[str, int], username: str, password: str) -> Client:
    """pymemcache logging in as the README shows (``authenticating_socket_module``)."""
    login = authenticating_socket_module(username, password)
    return Client(endpoint, socket_module=login, connect_timeout=5, timeout=5)


def unused_for_s(text: str) -> int | None:
    match = re.fullmatch(r"unused for (\d+) s", text)
    return int(match.group(1)) if match else None


async def test_rotation_walkthrough(tmp_path) -> None:
    async with running_app(tmp_path) as (app, pilot):
        cache = await create_cache(app, "rotating")
        old = cache["credentials"][0]
        endpoint = address(cache["servers"])
        page = await open_credentials(app, pilot, cache)
        table = page.query_one(DataTable)
        assert cell_text(table, old["username"], "used") == "never used"

        client = readme_client(endpoint, old["username"], old["password"])
        assert await asyncio.to_thread(client.set, "k", "v", noreply=False)
        await wait_for(pilot, lambda: cell_text(table, old["username"], "used").endswith("1 conn"))
        assert re.fullmatch(r"\d+ s ago · 1 conn", cell_text(table, old["username"], "used"))
        await select_row(pilot, table, old["username"])
        detail = str(page.query_one("#cred-activity", Static).content)
        assert "ascii" in detail and "from 127.0.0.1" in detail and "1 conn: 127.0.0.1" in detail

        new = await add_credential(app, pilot, page, cache)
        await wait_for(pilot, lambda: cell_text(table, new, "used") == "never used")
        await select_row(pilot, table, new)
        await pilot.press("u")  # the app gets the new credential
        await wait_for(pilot, lambda: "primary" in cell_text(table, new, "primary"))
        client.close()  # the app restarts with the new one
        client = readme_client(endpoint, new, page.credentials[new].password)
        assert await asyncio.to_thread(client.get, "k") == b"v"

        await wait_for(pilot, lambda: cell_text(table, new, "used").endswith("1 conn"))
        await wait_for(pilot, lambda: unused_for_s(cell_text(table, old["username"], "used")))
        first = unused_for_s(cell_text(table, old["username"], "used"))
        assert first is not None
        await wait_for(
            pilot,
            lambda: (unused_for_s(cell_text(table, old["username"], "used")) or 0) > first,
        )  # the age grows while nobody uses it

        await select_row(pilot, table, old["username"])
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")  # no connection left: one confirmation is enough
        await wait_for(pilot, lambda: old["username"] not in table.rows)
        assert not isinstance(app.screen, ConfirmModal)
        assert await usernames(cache["dashboard_url"]) == [new]
        assert await asyncio.to_thread(client.get, "k") == b"v"  # it never noticed
        client.close()


async def test_deleting_a_credential_in_use_asks_again_naming_its_connections(
    tmp_path,
) -> None:
    async with running_app(tmp_path) as (app, pilot):
        cache = await create_cache(app, "in-use")
        endpoint = address(cache["servers"])
        page = await open_credentials(app, pilot, cache)
        table = page.query_one(DataTable)
        busy = await add_credential(app, pilot, page, cache)
        password = page.credentials[busy].password
        clients = [AuthenticatingClient(endpoint, busy, password) for _ in range(2)]
        for client in clients:
            assert await asyncio.to_thread(client.set, "k", "v", noreply=False)
        await wait_for(pilot, lambda: cell_text(table, busy, "used").endswith("2 conns"))
        await select_row(pilot, table, busy)

        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await wait_for(pilot, lambda: "still in use" in modal_text(app))
        text = modal_text(app)
        assert "2 conns" in text and "127.0.0.1 ×2" in text
        await pilot.press("n")  # changed my mind: nothing happens
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmModal))
        await pilot.pause(0.3)
        assert busy in await usernames(cache["dashboard_url"])
        assert await asyncio.to_thread(clients[0].get, "k") == b"v"

        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await wait_for(pilot, lambda: "still in use" in modal_text(app))
        await pilot.press("y")  # delete anyway
        await wait_for(pilot, lambda: busy not in table.rows)
        assert busy not in await usernames(cache["dashboard_url"])
        assert any("2 open connections closed" in m for m in notifications(app))
        for client in clients:
            client.close()
