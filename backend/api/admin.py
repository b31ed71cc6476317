"""Operator routes, behind the admin token."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from backend.api.dashboard import credential_out
from backend.api.deps import Control, NoBodyIn, require_admin
from backend.api.errors import BODY_ERRORS, errors
from backend.api.schemas import CacheCreate, CacheOut, CachePageOut, CacheUsage, FlushOut
from backend.control.listing import DEFAULT_PAGE, MAX_CURSOR_CHARS, MAX_PAGE, MAX_QUERY_CHARS
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


@router.get("/caches", response_model=CachePageOut, responses=errors(422))
async def list_caches(
    control: Control,
    limit: Annotated[
        int, Query(ge=1, le=MAX_PAGE, description=f"caches per page (at most {MAX_PAGE})")
    ] = DEFAULT_PAGE,
    cursor: Annotated[
        str | None,
        Query(
            max_length=MAX_CURSOR_CHARS,
            description="next_cursor of the previous page; omit for the first page. Pages "
            "resume after the last cache returned: caches created or deleted meanwhile never "
            "make a page repeat or skip one",
        ),
    ] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=MAX_QUERY_CHARS,
            description="only caches whose name, id, cluster or plan contains this text "
            "(case-insensitive)",
        ),
    ] = None,
) -> Response:
    """A page of the caches, by name; ``total`` counts every cache matching ``q``.

    Only the page's caches are encoded, with their live usage: the cost of a page does
    not grow with the number of caches (finding it is a bisection, or with ``q`` a scan
    of the names). Encoded one cache at a time, not by FastAPI's one call over the page:
    the API shares the GIL with the loop that serves memcache traffic (``backend.loops``)
    and a C or Rust call keeps it until it returns, so one small call per cache lets the
    serving loop in between. Same JSON as ``CachePageOut``.
    """
    page = control.page_caches(q, cursor, limit)
    encode = CacheOut.__pydantic_serializer__.to_json
    items = b",".join([encode(cache_out(control, c), by_alias=True) for c in page.caches])
    firing = control.alerts_firing_total()
    tail = (
        f'],"next_cursor":{json.dumps(page.cursor)},"total":{page.total},"alerts_firing":{firing}}}'
    )
    return Response(b'{"items":[' + items + tail.encode(), media_type="application/json")


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
