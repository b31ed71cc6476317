"""The FastAPI application: public status, admin and dashboard routes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend import __version__
from backend.api import admin, dashboard, errors, status
from backend.api.gate import RequestGate
from backend.api.plans import router as plans_router
from backend.api.schemas import HealthOut

if TYPE_CHECKING:
    from backend.service import Service


class HeadAsGet:
    """Answer ``HEAD`` on every ``GET`` route: the GET's status and headers, no body.

    Uptime checkers and feed readers ask with HEAD (RFC 9110 9.3.2: a server should answer
    it like GET) and FastAPI routes answer only the methods they declare, so without this
    ``/healthz`` looked down to them (405). Declaring HEAD on each route would repeat
    every operation in the OpenAPI document under the same id.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, without_body)


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
    app.add_middleware(HeadAsGet)
    app.add_middleware(RequestGate, control=service.control, admin_token=admin_token,
                       max_body=service.config.max_body_bytes)  # fmt: skip

    @app.get("/healthz", response_model=HealthOut, tags=["public"])
    async def healthz() -> HealthOut:
        return HealthOut(status="ok")

    app.include_router(status.router)
    app.include_router(status.admin_router)
    app.include_router(admin.router)
    app.include_router(dashboard.router)
    app.include_router(plans_router)
    return app
