"""The Credentials page switches a credential's ``api`` capability (issue 16 item 6).

Pilot against a real backend: ``i`` on a row toggles it, the checkbox follows, and the
credential's /api/v2 access follows at once (a real HTTP Basic request).
"""

from __future__ import annotations

import httpx
from textual.widgets import DataTable

from tests.tui.conftest import running_app, wait_for
from tests.tui.test_cache_pages import (
    add_credential,
    cell_text,
    create_cache,
    dashboard,
    open_credentials,
    select_row,
)


async def test_i_toggles_api_and_v2_access_follows(tmp_path) -> None:
    async with running_app(tmp_path) as (app, pilot):
        cache = await create_cache(app, "api-toggle")
        page = await open_credentials(app, pilot, cache)
        table = page.query_one(DataTable)
        primary = cache["credentials"][0]["username"]
        username = await add_credential(app, pilot, page, cache)
        password = page.credentials[username].password
        assert cell_text(table, primary, "api") == "[x]"  # the primary always has it
        assert cell_text(table, username, "api") == "[ ]"  # off for a new credential
        info = f"{app.service.listening.api_url}/api/v2/caches/{cache['id']}/info"
        async with httpx.AsyncClient(auth=(username, password), timeout=10) as api:
            assert (await api.get(info)).status_code == 403

            await select_row(pilot, table, username)
            await pilot.press("i")
            await wait_for(pilot, lambda: cell_text(table, username, "api") == "[x]")
            listed = {
                c["username"]: c
                for c in (await dashboard(cache["dashboard_url"], "credentials")).json()
            }
            assert listed[username]["api"] is True
            assert listed[username]["write"] and listed[username]["flush"]  # untouched
            assert (await api.get(info)).status_code == 200

            await pilot.press("i")
            await wait_for(pilot, lambda: cell_text(table, username, "api") == "[ ]")
            assert (await api.get(info)).status_code == 403
