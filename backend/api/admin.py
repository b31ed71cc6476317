"""Operator routes, behind the admin token."""

from __future__ import annotations

from fastapi import APIRouter, Depends, status

from backend.api.dashboard import credential_out
from backend.api.deps import Control, NoBodyIn, require_admin
from backend.api.schemas import CacheCreate, CacheOut, CacheUsage, ErrorOut, FlushOut
from backend.control.caches import ControlPlane
from backend.control.models import Cache

router = APIRouter(
    prefix="/api/v1/admin",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
    responses={401: {"model": ErrorOut}, 404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)


def cache_out(control: ControlPlane, cache: Cache) -> CacheOut:
    return CacheOut(
        id=cache.id,
        name=cache.name,
        plan=cache.plan,
        memory_limit=cache.limit_bytes,
        region=cache.region,
        cluster=cache.cluster,
        servers=control.servers(cache),
        tls_servers=control.tls_servers(cache),
        dashboard_url=control.dashboard_url(cache),
        created_at=cache.created_at,
        credentials=[credential_out(c) for c in cache.credentials],
        usage=usage_of(control, cache),
    )


def usage_of(control: ControlPlane, cache: Cache) -> CacheUsage:
    engine = control.dataplane.engine_for(cache)
    stats = engine.stats
    usage = engine.usage()
    return CacheUsage(memory_used=usage.bytes, items=usage.items,
                      connections=stats.curr_connections, get_hits=stats.get_hits,
                      get_misses=stats.get_misses)  # fmt: skip


@router.get("/caches", response_model=list[CacheOut])
async def list_caches(control: Control) -> list[CacheOut]:
    return [cache_out(control, c) for c in control.list_caches()]


@router.post(
    "/caches",
    response_model=CacheOut,
    status_code=status.HTTP_201_CREATED,
    responses={409: {"model": ErrorOut}},
)
async def create_cache(body: CacheCreate, control: Control) -> CacheOut:
    return cache_out(control, control.create_cache(body.name, body.plan, body.region))


@router.get("/caches/{cache_id}", response_model=CacheOut)
async def get_cache(cache_id: str, control: Control) -> CacheOut:
    return cache_out(control, control.get_cache(cache_id))


@router.post("/caches/{cache_id}/flush", response_model=FlushOut)
async def flush_cache(cache_id: str, control: Control, body: NoBodyIn = None) -> FlushOut:
    proxy = control.flush(control.get_cache(cache_id), origin="admin operation")
    return FlushOut(cache_id=cache_id, proxy=proxy, origin="admin operation")
