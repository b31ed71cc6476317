"""/api/v2: a cache managed with one of its own credentials (HTTP Basic auth).

For a deploy script that rotates credentials without the dashboard URL: a credential
with the ``api`` capability (the primary always has it) reads the cache's info, stats and
audit trail, and adds, switches, promotes and deletes credentials and flushes. Each route
calls the dashboard's own route function, so answers and error statuses are the
dashboard's; only who is asking differs (``backend.api.basic_auth``), and the audit trail
names the credential (``credential <username> (API)``).

Not here: what the dashboard URL alone allows (rotating it, moving the cache, the app's
log drain). The info answer leaves the dashboard URL out (empty): it grants those.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from fastapi.security import HTTPBasic
from starlette.requests import HTTPConnection

from backend.api import audit as audit_routes
from backend.api import dashboard
from backend.api.audit import Before, Limit
from backend.api.basic_auth import Refused, authenticate, parse
from backend.api.dashboard import Since, Window
from backend.api.deps import Activity, AnalyticsDep, Control, NoBodyIn, PeerStatsDep
from backend.api.errors import BODY_ERRORS, errors
from backend.api.schemas import (
    AuditOut,
    CacheInfo,
    CapabilitiesPatch,
    CredentialOut,
    DeleteOut,
    FlushOut,
    StatsOut,
)
from backend.control import audit
from backend.control.models import Cache
from backend.throttle import AuthThrottle

PREFIX = "/api/v2/caches/"


class _Basic(HTTPBasic):
    """HTTP Basic in the OpenAPI document (scheme ``HTTPBasic``); the header is read by
    ``basic_auth.parse``, the one parser the gate uses too, and refusals are ours."""

    async def __call__(self, request: HTTPConnection) -> tuple[str, str] | None:  # type: ignore[override]
        return parse(request.headers.get("authorization"))


_basic = _Basic(
    scheme_name="HTTPBasic",
    auto_error=False,
    realm="cachier",
    description="a credential of the cache with the api capability (username:password)",
)


def throttle_of(request: Request) -> AuthThrottle:
    return request.app.state.auth_throttle


async def api_cache(
    cache_id: str,
    request: Request,
    control: Control,
    given: Annotated[tuple[str, str] | None, Depends(_basic)],
) -> Cache:
    """The cache of ``cache_id`` if the caller's credential is one of its, with ``api``."""
    host = request.client.host if request.client is not None else ""
    cache, credential = authenticate(control, throttle_of(request), host, given, cache_id)
    audit.act_as(audit.api_credential(credential.username))
    return cache


ApiCache = Annotated[Cache, Depends(api_cache)]


def _responses() -> dict[int | str, dict]:
    documented = errors(401, 403, 404, 422, 429)
    documented[401]["description"] = "No credential, an unknown username or a wrong password"
    documented[401]["headers"] = {
        "WWW-Authenticate": {"description": 'Basic realm="cachier"', "schema": {"type": "string"}}
    }
    documented[403]["description"] = "The credential does not have the api capability"
    documented[404]["description"] = (
        "No such cache, a cache the credential is not of, or no such credential"
    )
    documented[429]["headers"] = {
        "Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}
    }
    return documented


router = APIRouter(prefix="/api/v2/caches/{cache_id}", tags=["api v2"], responses=_responses())


@router.get("/info", response_model=CacheInfo)
async def info(cache: ApiCache, control: Control) -> CacheInfo:
    """The dashboard's cache info, without the dashboard URL (it grants more than the api)."""
    return dashboard.cache_info(control, cache).model_copy(update={"dashboard_url": ""})


@router.get("/stats", response_model=StatsOut)
async def stats(
    request: Request,
    cache: ApiCache,
    analytics: AnalyticsDep,
    peers: PeerStatsDep,
    window: Window = None,
    since: Since = None,
) -> StatsOut:
    return await dashboard.stats(request, cache, analytics, peers, window, since)


@router.get("/credentials", response_model=list[CredentialOut])
async def list_credentials(cache: ApiCache, activity: Activity) -> list[CredentialOut]:
    return await dashboard.list_credentials(cache, activity)


@router.post(
    "/credentials",
    response_model=CredentialOut,
    status_code=status.HTTP_201_CREATED,
    responses=errors(*BODY_ERRORS),
)
async def add_credential(
    cache: ApiCache, control: Control, activity: Activity, body: NoBodyIn = None
) -> CredentialOut:
    return await dashboard.add_credential(cache, control, activity, body)


@router.patch(
    "/credentials/{username}", response_model=CredentialOut, responses=errors(409, *BODY_ERRORS)
)
async def set_capabilities(
    username: str, body: CapabilitiesPatch, cache: ApiCache, control: Control, activity: Activity
) -> CredentialOut:
    return await dashboard.set_capabilities(username, body, cache, control, activity)


@router.post(
    "/credentials/{username}/promote",
    response_model=CredentialOut,
    responses=errors(409, *BODY_ERRORS),
)
async def promote_credential(
    username: str, cache: ApiCache, control: Control, activity: Activity, body: NoBodyIn = None
) -> CredentialOut:
    return await dashboard.promote_credential(username, cache, control, activity, body)


@router.delete("/credentials/{username}", response_model=DeleteOut, responses=errors(409))
async def delete_credential(username: str, cache: ApiCache, control: Control) -> DeleteOut:
    return await dashboard.delete_credential(username, cache, control)


@router.post("/flush", response_model=FlushOut, responses=errors(*BODY_ERRORS))
async def flush(cache: ApiCache, control: Control, body: NoBodyIn = None) -> FlushOut:
    return await dashboard.flush(cache, control, body)


@router.get("/audit", response_model=AuditOut)
async def cache_audit(
    cache: ApiCache, control: Control, before: Before = None, limit: Limit = 100
) -> AuditOut:
    """This cache's audit trail, newest first, as the dashboard shows it."""
    return await audit_routes.cache_audit(cache, control, before, limit)


__all__ = ["PREFIX", "Refused", "router"]
