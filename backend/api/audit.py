"""The audit trail over HTTP: a cache's owner sees their cache's, an operator every one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from backend.api.dashboard import SQL_INT_MAX
from backend.api.deps import Control, SsoCache, require_admin
from backend.api.errors import errors
from backend.api.schemas import AuditEntryOut, AuditOut
from backend.control.repository import AuditRow

owner_router = APIRouter(
    prefix="/dashboard/{sso_secret}/api", tags=["dashboard"], responses=errors(404, 422)
)
admin_router = APIRouter(
    prefix="/api/v1/admin",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
    responses=errors(401, 422),
)

Before = Annotated[
    int | None,
    Query(ge=1, le=SQL_INT_MAX, description="entries older than this id; omit for the newest"),
]
Limit = Annotated[int, Query(ge=1, le=1000, description="at most this many entries")]


def audit_out(rows: list[AuditRow]) -> AuditOut:
    entries = [
        AuditEntryOut(
            id=r.id or 0,
            t=r.t,
            cache_id=r.cache_id,
            cache_name=r.cache_name,
            actor=r.actor,
            action=r.action,
            detail=r.detail,
        )
        for r in rows
    ]
    return AuditOut(entries=entries, next_before=entries[-1].id if entries else None)


@owner_router.get("/audit", response_model=AuditOut)
async def cache_audit(
    cache: SsoCache, control: Control, before: Before = None, limit: Limit = 100
) -> AuditOut:
    """Every change of this cache, newest first: who (operator, dashboard, memcache
    client, system), what and when. It survives restarts; secrets never appear."""
    return audit_out(control.audit_trail(cache, before, limit))


@admin_router.get("/audit", response_model=AuditOut)
async def service_audit(
    control: Control,
    cache_id: Annotated[str | None, Query(description="one cache's changes only")] = None,
    before: Before = None,
    limit: Limit = 100,
) -> AuditOut:
    """Every change of every cache (deleted ones included) and of the service, newest first."""
    if cache_id is None:
        return audit_out(control.audit_trail(None, before, limit))
    return audit_out(control.repository.audit(cache_id, before, limit))
