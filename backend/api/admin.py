"""Operator routes, behind the admin token."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response, status

from backend.api.dashboard import credential_out
from backend.api.deps import Control, NoBodyIn, require_admin
from backend.api.errors import BODY_ERRORS, errors
from backend.api.schemas import CacheCreate, CacheOut, CacheUsage, FlushOut
from backend.control.models import Cache, as_plan
from backend.control.plane import ControlPlane

router = APIRouter(
    prefix="/api/v1/admin",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
    responses=errors(401),
)


def cache_out(control: ControlPlane, cache: Cache) -> CacheOut:
    return CacheOut(
        id=cache.id,
        name=cache.name,
        plan=as_plan(cache.plan),
        memory_limit=cache.limit_bytes,
        region=cache.region,
        cluster=cache.cluster,
        servers=control.servers(cache),
        tls_servers=control.tls_servers(cache),
        dashboard_url=control.dashboard_url(cache),
        created_at=cache.created_at,
        credentials=[credential_out(c, with_activity=False) for c in cache.credentials],
        usage=usage_of(control, cache),
        alerts_firing=control.alerts_firing(cache.id),
    )


def usage_of(control: ControlPlane, cache: Cache) -> CacheUsage:
    usage = control.usage(cache)
    return CacheUsage(
        memory_used=usage.memory_used,
        items=usage.items,
        connections=usage.connections,
        get_hits=usage.get_hits,
        get_misses=usage.get_misses,
    )


@router.get("/caches", response_model=list[CacheOut])
async def list_caches(control: Control) -> Response:
    """Encoded one cache at a time, not by FastAPI's one call over the whole list.

    The API shares the GIL with the loop that serves memcache traffic (``backend.loops``),
    and a C or Rust call keeps the GIL until it returns: pydantic's and ``json``'s one
    call over 10 000 caches held it for ~130 ms, so a ``get`` waited that long. One small
    call per cache lets the serving loop in between. Same JSON, same OpenAPI.
    """
    encode = CacheOut.__pydantic_serializer__.to_json
    body = b",".join([encode(cache_out(control, c), by_alias=True) for c in control.list_caches()])
    return Response(b"[" + body + b"]", media_type="application/json")


@router.post(
    "/caches",
    response_model=CacheOut,
    status_code=status.HTTP_201_CREATED,
    responses=errors(409, *BODY_ERRORS),
)
async def create_cache(body: CacheCreate, control: Control) -> CacheOut:
    return cache_out(control, control.create_cache(body.name, body.plan, body.region))


@router.get("/caches/{cache_id}", response_model=CacheOut, responses=errors(404, 422))
async def get_cache(cache_id: str, control: Control) -> CacheOut:
    return cache_out(control, control.get_cache(cache_id))


@router.delete(
    "/caches/{cache_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(404, 422),
)
async def delete_cache(cache_id: str, control: Control) -> Response:
    """Delete the cache with its credentials, app and logs; its live connections close."""
    control.delete_cache(control.get_cache(cache_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/caches/{cache_id}/flush", response_model=FlushOut, responses=errors(404, *BODY_ERRORS)
)
async def flush_cache(cache_id: str, control: Control, body: NoBodyIn = None) -> FlushOut:
    proxy = control.flush(control.get_cache(cache_id), origin="admin operation")
    return FlushOut(cache_id=cache_id, proxy=proxy, origin="admin operation")
