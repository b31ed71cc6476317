"""The FastAPI application: public status, admin and dashboard routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend import __version__
from backend.api import admin, alerts, audit, dashboard, errors, keys, status, v2
from backend.api.gate import RequestGate
from backend.api.plans import router as plans_router
from backend.api.schemas import HealthOut
from backend.throttle import AuthThrottle

if TYPE_CHECKING:
    from backend.activity import ActivitySampler
    from backend.alerts import Alerts
    from backend.analytics import Analytics
    from backend.control.plane import ControlPlane
    from backend.egress import EgressPolicy
    from backend.status import FaultController, StatusView


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


class StrictTransportSecurity:
    """``Strict-Transport-Security`` on every answer given over HTTPS (RFC 6797).

    A browser that opened a dashboard over HTTPS then refuses to go back to plain HTTP
    for a year, so a link or a typed ``http://`` cannot leak the dashboard's secret in
    clear. Only on HTTPS (the header means nothing over HTTP, RFC 6797 7.2): the scheme is
    the connection's, or ``X-Forwarded-Proto`` from a reverse proxy uvicorn trusts
    (loopback by default). No ``includeSubDomains``: the service does not own its domain.
    """

    HEADER = (b"strict-transport-security", b"max-age=31536000")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("scheme") != "https":
            await self.app(scope, receive, send)
            return

        async def with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self.HEADER]}
            await send(message)

        await self.app(scope, receive, with_header)


class AnswerAfterDelivery:
    """Hold the answer to a change until its events have reached every subscriber.

    The control plane runs on its own thread and the data plane hears its events on the
    serving loop (``backend.loops``); without this, a client could get ``200`` for
    "capability off" and still write once on a live connection. Awaiting delivery (one
    loop round trip, well under a millisecond) before the response starts keeps "the API
    answered" meaning "live sessions follow it". Reads (GET, HEAD) answer at once.
    """

    SAFE = frozenset({"GET", "HEAD", "OPTIONS"})

    def __init__(self, app: ASGIApp, delivered: Callable[[], Awaitable[None]]) -> None:
        self.app = app
        self.delivered = delivered

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in self.SAFE:
            await self.app(scope, receive, send)
            return

        async def send_after_delivery(message: Message) -> None:
            if message["type"] == "http.response.start":
                await self.delivered()
            await send(message)

        await self.app(scope, receive, send_after_delivery)


def create_app(
    control: ControlPlane,
    analytics: Analytics,
    status_view: StatusView,
    faults: FaultController,
    egress: EgressPolicy,
    admin_token: str,
    max_body_bytes: int,
    events_delivered: Callable[[], Awaitable[None]] | None = None,
    activity: ActivitySampler | None = None,
    alerts_evaluator: Alerts | None = None,
    auth_throttle: AuthThrottle | None = None,
) -> FastAPI:
    """The API over exactly the parts it uses (each route reads one of them from
    ``app.state`` through ``deps``), so it can be built and tested without a ``Service``.

    ``events_delivered`` (``EventBus.delivered``) is awaited before a change is answered
    when subscribers live on another loop than the API's. ``activity`` answers the
    credentials' usage (none: every credential reads as never used). ``auth_throttle``
    counts /api/v2's failed authentications: the service passes the memcache one (one
    allowance for both protocols); without it the API keeps its own."""
    app = FastAPI(
        title="cachier",
        version=__version__,
        description="Control plane of the cachier multi-tenant memcache service.",
    )
    app.state.control = control
    app.state.analytics = analytics
    app.state.alerts = alerts_evaluator
    app.state.status_view = status_view
    app.state.faults = faults
    app.state.egress = egress
    app.state.admin_token = admin_token
    app.state.activity = activity
    app.state.auth_throttle = throttle = auth_throttle or AuthThrottle()
    errors.install(app)
    app.add_middleware(HeadAsGet)
    if events_delivered is not None:
        app.add_middleware(AnswerAfterDelivery, delivered=events_delivered)
    app.add_middleware(
        RequestGate,
        control=control,
        admin_token=admin_token,
        max_body=max_body_bytes,
        throttle=throttle,
    )
    app.add_middleware(StrictTransportSecurity)  # outermost: the gate's refusals get it too

    @app.get("/healthz", response_model=HealthOut, tags=["public"])
    async def healthz() -> HealthOut:
        return HealthOut(status="ok")

    app.include_router(status.router)
    app.include_router(status.admin_router)
    app.include_router(admin.router)
    app.include_router(dashboard.router)
    app.include_router(audit.owner_router)
    app.include_router(keys.router)
    app.include_router(alerts.router)
    app.include_router(audit.admin_router)
    app.include_router(v2.router)
    app.include_router(plans_router)
    document_regions(app, [region.name for region in status_view.topology.regions])
    return app


def document_regions(app: FastAPI, regions: list[str]) -> None:
    """List the service's regions as the enum of ``CacheCreate.region`` in the OpenAPI.

    The regions come from the topology the service runs, not from the code, so the model
    cannot name them; without the enum the document promised any string and a client (or
    schemathesis) could not know which ones the API accepts.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()  # FastAPI keeps it as app.openapi_schema: changed once, here
        region = document["components"]["schemas"]["CacheCreate"]["properties"]["region"]
        region["anyOf"] = [{"type": "string", "enum": regions}, {"type": "null"}]
        return document

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
