"""The in-process backend's log as the dashboard shows it: no request lines, no secrets,
and warnings a person sees as a notice rather than only in the log dialog."""

from __future__ import annotations

import logging

from tests.tui.conftest import admin, running_app, wait_for


async def test_backend_log_holds_no_request_lines_and_no_dashboard_secret(tmp_path) -> None:
    async with running_app(tmp_path) as (app, pilot):
        async with admin(app) as client:
            body = {"name": "logged", "plan": "100mb"}
            cache = (await client.post("/api/v1/admin/caches", json=body)).json()
        secret = cache["dashboard_url"].rsplit("/dashboard/", 1)[1]
        app.open_cache(secret, "logged")  # the dashboard polls the secret URL from now on
        await wait_for(pilot, lambda: app.current_mode == "analytics")
        fetched_before = app.client is not None and len(app.settings.backend_log)
        await pilot.pause(1.0)  # about five refreshes of the cache's pages
        # A library that logs a URL on its own gets it redacted, like any other line.
        logging.getLogger("uvicorn.error").info("peer asked for %s", cache["dashboard_url"])
        await pilot.pause(0.1)
        lines = list(app.settings.backend_log)
    assert fetched_before is not False
    assert any("peer asked for" in line and "/dashboard/<secret>" in line for line in lines)
    assert [line for line in lines if secret in line] == []
    assert [line for line in lines if "HTTP Request" in line] == []
    for credential in cache["credentials"]:
        assert [line for line in lines if credential["password"] in line] == []


async def test_a_backend_warning_is_a_notice_on_screen_once(tmp_path) -> None:
    async with running_app(tmp_path) as (app, pilot):
        message = "demo traffic for 'shop' (ASCII) cannot run: the pymemcache package is missing"
        demo_log = logging.getLogger("backend.demo")
        demo_log.warning(message)
        demo_log.warning(message)  # the same failure again: no second notice
        demo_log.info("demo client 'shop' (ASCII) working again")  # info: the log only

        def notices() -> list[str]:
            return [n.message for n in app._notifications]

        await wait_for(pilot, lambda: message in notices())
        await pilot.pause(0.2)
        assert notices().count(message) == 1
        assert not any("working again" in n for n in notices())
        assert any(message in line for line in app.settings.backend_log)
