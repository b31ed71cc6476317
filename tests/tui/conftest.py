"""The TUI against a real backend running in the app's own loop, as `cachier-tui` runs it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from textual.pilot import Pilot

from backend.service import Service
from tests.conftest import ADMIN_TOKEN, make_config
from tui.app import CachierApp, Settings


@asynccontextmanager
async def running_app(
    tmp_path, size: tuple[int, int] = (80, 24), **config
) -> AsyncIterator[tuple[CachierApp, Pilot]]:
    service = Service(make_config(tmp_path, probe_interval=0.1, **config))
    app = CachierApp(Settings(refresh_s=0.2, admin_token=ADMIN_TOKEN), service=service)
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: app.client is not None)
        yield app, pilot


async def wait_for(pilot: Pilot, condition, timeout: float = 10.0) -> None:
    """Let the app run until ``condition()`` holds (real I/O happens meanwhile)."""
    waited = 0.0
    while not condition():
        assert waited < timeout, "condition never held"
        await pilot.pause(0.05)
        waited += 0.05


def admin(app: CachierApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=app.service.listening.api_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
