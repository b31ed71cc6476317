"""Request dependencies: each part of the service a route uses, and the admin token check.

``create_app`` puts the parts in ``app.state``; these functions are the only readers."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Body, Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from backend.activity import ActivitySampler
from backend.alerts import Alerts
from backend.analytics import Analytics
from backend.api.schemas import NoBody
from backend.control import audit
from backend.control.models import Cache
from backend.control.plane import ControlPlane
from backend.egress import EgressPolicy
from backend.status import FaultController, StatusView

_bearer = HTTPBearer(auto_error=False, description="the backend's admin token")


async def control_plane(request: Request) -> ControlPlane:
    return request.app.state.control


async def require_admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    expected = request.app.state.admin_token.encode()
    given = credentials.credentials.encode() if credentials is not None else b""
    if not hmac.compare_digest(given, expected):
        raise HTTPException(
            401,
            "a valid admin token is required (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    audit.act_as(audit.OPERATOR)


Control = Annotated[ControlPlane, Depends(control_plane)]


async def analytics(request: Request) -> Analytics:
    return request.app.state.analytics


AnalyticsDep = Annotated[Analytics, Depends(analytics)]


async def activity_sampler(request: Request) -> ActivitySampler | None:
    return request.app.state.activity


Activity = Annotated[ActivitySampler | None, Depends(activity_sampler)]


async def alerts(request: Request) -> Alerts:
    return request.app.state.alerts


AlertsDep = Annotated[Alerts, Depends(alerts)]


async def sso_cache(sso_secret: str, control: Control) -> Cache:
    """The cache a dashboard URL belongs to; an unknown or rotated secret is a 404."""
    cache = control.cache_by_sso(sso_secret)
    audit.act_as(audit.DASHBOARD)
    return cache


SsoCache = Annotated[Cache, Depends(sso_cache)]


async def egress(request: Request) -> EgressPolicy:
    return request.app.state.egress


Egress = Annotated[EgressPolicy, Depends(egress)]


async def status_view(request: Request) -> StatusView:
    return request.app.state.status_view


Status = Annotated[StatusView, Depends(status_view)]


async def fault_controller(request: Request) -> FaultController:
    return request.app.state.faults


Faults = Annotated[FaultController, Depends(fault_controller)]


# For actions without parameters (add a credential, flush, rotate ...): clients send no
# body, but one that is sent is checked, so malformed JSON or a stray field is a 422 and
# the action does not run.
NoBodyIn = Annotated[NoBody | None, Body(description="none; an empty object is accepted")]
