"""The FastAPI application: public, admin (and later dashboard) routes."""

from __future__ import annotations

from fastapi import FastAPI

from backend import __version__
from backend.analytics import Analytics
from backend.api import admin, dashboard, errors
from backend.api.schemas import HealthOut
from backend.control.caches import ControlPlane


def create_app(control: ControlPlane, analytics: Analytics, admin_token: str) -> FastAPI:
    app = FastAPI(
        title="cachier",
        version=__version__,
        description="Control plane of the cachier multi-tenant memcache service.",
    )
    app.state.control = control
    app.state.analytics = analytics
    app.state.admin_token = admin_token
    errors.install(app)

    @app.get("/healthz", response_model=HealthOut, tags=["public"])
    async def healthz() -> HealthOut:
        return HealthOut(status="ok")

    app.include_router(admin.router)
    app.include_router(dashboard.router)
    return app
