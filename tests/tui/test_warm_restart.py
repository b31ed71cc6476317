"""The in-process dashboard (``cachier-tui`` without --api) stops its backend cleanly when
the user quits with ``q``: that stop saves the caches' items, as SIGTERM does for
``cachier-backend``, and the next ``cachier-tui`` on the same data dir has them back."""

from __future__ import annotations

import asyncio

from pymemcache.client.base import Client

from backend.snapshot import snapshot_path
from tests.conftest import address
from tests.tui.conftest import admin, running_app


def _client(info: dict) -> Client:
    client = Client(address(info["servers"]), connect_timeout=5, timeout=5)
    credential = info["credentials"][0]
    client.set(credential["username"], credential["password"], noreply=False)
    return client


def _set(info: dict) -> None:
    client = _client(info)
    assert client.set("kept", b"across a quit", flags=7, noreply=False)
    client.close()


def _get(info: dict) -> tuple[bytes, int] | None:
    client = _client(info)
    try:
        reply = client.raw_command(b"mg kept f", b"\r\n")  # "HD f<flags>" on a hit
        if not reply.startswith(b"HD "):
            return None
        return client.get("kept"), int(reply.split()[1][1:])
    finally:
        client.close()


async def test_quitting_the_dashboard_saves_the_items_and_the_next_start_loads_them(
    tmp_path,
) -> None:
    async with running_app(tmp_path) as (app, pilot):
        async with admin(app) as api:
            created = await api.post("/api/v1/admin/caches", json={"name": "tui", "plan": "100mb"})
        assert created.status_code == 201, created.text
        info = created.json()
        await asyncio.to_thread(_set, info)
        snapshot = snapshot_path(tmp_path, info["cluster"])
        assert not snapshot.exists()
        assert app.return_code is None
        await pilot.press("q")  # the app exits and stops its backend (on_unmount): it saves
        assert app.return_code == 0
    assert snapshot.exists()

    async with running_app(tmp_path) as (app, pilot):
        async with admin(app) as api:
            info = (await api.get(f"/api/v1/admin/caches/{info['id']}")).json()
        assert await asyncio.to_thread(_get, info) == (b"across a quit", 7)
