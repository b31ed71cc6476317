"""Request dependencies: the control plane and the admin token check."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Body, Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from backend.analytics import Analytics
from backend.api.schemas import NoBody
from backend.control.caches import ControlPlane
from backend.control.models import Cache
from backend.egress import EgressPolicy

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
        raise HTTPException(401, "a valid admin token is required (Authorization: Bearer <token>)",
                            headers={"WWW-Authenticate": "Bearer"})  # fmt: skip


Control = Annotated[ControlPlane, Depends(control_plane)]


async def analytics(request: Request) -> Analytics:
    return request.app.state.analytics


AnalyticsDep = Annotated[Analytics, Depends(analytics)]


async def sso_cache(sso_secret: str, control: Control) -> Cache:
    """The cache a dashboard URL belongs to; an unknown or rotated secret is a 404."""
    return control.cache_by_sso(sso_secret)


SsoCache = Annotated[Cache, Depends(sso_cache)]


async def egress(request: Request) -> EgressPolicy:
    return request.app.state.service.egress


Egress = Annotated[EgressPolicy, Depends(egress)]


# For actions without parameters (add a credential, flush, rotate ...): clients send no
# body, but one that is sent is checked, so malformed JSON or a stray field is a 422 and
# the action does not run.
NoBodyIn = Annotated[NoBody | None, Body(description="none; an empty object is accepted")]
