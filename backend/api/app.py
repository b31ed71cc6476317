"""The FastAPI application: public status, admin and dashboard routes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from backend import __version__
from backend.api import admin, dashboard, errors, status
from backend.api.gate import RequestGate
from backend.api.schemas import HealthOut

if TYPE_CHECKING:
    from backend.service import Service


def create_app(service: Service, admin_token: str) -> FastAPI:
    app = FastAPI(
        title="cachier",
        version=__version__,
        description="Control plane of the cachier multi-tenant memcache service.",
    )
    app.state.service = service
    app.state.control = service.control
    app.state.analytics = service.analytics
    app.state.admin_token = admin_token
    errors.install(app)
    app.add_middleware(RequestGate, control=service.control, admin_token=admin_token,
                       max_body=service.config.max_body_bytes)  # fmt: skip

    @app.get("/healthz", response_model=HealthOut, tags=["public"])
    async def healthz() -> HealthOut:
        return HealthOut(status="ok")

    app.include_router(status.router)
    app.include_router(status.admin_router)
    app.include_router(admin.router)
    app.include_router(dashboard.router)
    return app
