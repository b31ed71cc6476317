"""Public status (JSON, RSS, Prometheus) and the operator's fault injection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, overload
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from backend import jsonfeed, rss
from backend.api.conditional import conditional_response
from backend.api.deps import Control, Faults, Status, require_admin
from backend.api.errors import BODY_ERRORS, errors
from backend.api.schemas import (
    ClusterStatusOut,
    FaultIn,
    IncidentOut,
    ProxyStatus,
    RegionStatus,
    StatusOut,
)
from backend.control.errors import NotFound
from backend.control.repository import IncidentRow
from backend.monitor import ProxyHealth
from backend.status import StatusView

router = APIRouter(tags=["status"])
admin_router = APIRouter(
    prefix="/api/v1/admin",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
    responses=errors(401),
)
FEED_SIZE = 50


@overload
def rfc3339(unix: float) -> str: ...
@overload
def rfc3339(unix: None) -> None: ...
def rfc3339(unix: float | None) -> str | None:
    if unix is None:
        return None
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def public_url(
    request: Request, base_url: str, route: str, query: dict[str, str] | None = None
) -> str:
    """A route's URL as clients are told it (--public-url / --advertise-host, the control
    plane's ``api_base_url``), not as this request reached it: a feed reader keeps the
    link, so it must be the public one."""
    url = base_url + request.app.url_path_for(route)
    return f"{url}?{urlencode(query)}" if query else url


@dataclass(frozen=True)
class FeedScope:
    """Which clusters a feed covers: all of them, one region's, or one cluster's."""

    clusters: list[str] | None  # None: every cluster
    query: dict[str, str]  # what selects it, for the feed's own URL
    title: str


def feed_scope(
    view: Status,
    cluster: Annotated[
        str | None, Query(description="only this cluster's changes, e.g. use1-b")
    ] = None,
    region: Annotated[
        str | None, Query(description="only the changes of this region's clusters")
    ] = None,
) -> FeedScope:
    """Users subscribe to the cluster their caches are on; an unknown name is a 404 (a
    typo must not look like a quiet cluster)."""
    topology = view.topology
    query = {k: v for k, v in (("cluster", cluster), ("region", region)) if v is not None}
    if region is not None and topology.region(region) is None:
        raise NotFound(f"no region named {region!r}")
    if cluster is not None:
        found = topology.cluster(cluster)
        if found is None:
            raise NotFound(f"no cluster named {cluster!r}")
        if region is not None and found.region.name != region:
            raise NotFound(f"cluster {cluster!r} is not in region {region!r}")
        return FeedScope([cluster], query, f"cachier status: {cluster}")
    if region is not None:
        names = [c.name for c in topology.clusters() if c.region.name == region]
        return FeedScope(names, query, f"cachier status: {region}")
    return FeedScope(None, query, "cachier status")


Scope = Annotated[FeedScope, Depends(feed_scope)]
FEED_ERRORS = errors(404, 422)


def incident_out(row: IncidentRow) -> IncidentOut:
    return IncidentOut(
        id=row.id,
        cluster=row.cluster,
        light=row.light,
        previous=row.previous,
        started_at=rfc3339(row.started_at),
        ended_at=rfc3339(row.ended_at),
        cause=row.cause,
        proxies=row.proxies.split(),
    )


def proxy_status(view: StatusView, health: ProxyHealth) -> ProxyStatus:
    mode, delay_ms = view.monitor.fault(health.proxy.hostname)
    baseline = health.baseline_ms()
    return ProxyStatus(
        hostname=health.proxy.hostname,
        address=view.monitor.address(health.proxy),
        state=health.state,
        latency_ms=None if health.latency_ms is None else round(health.latency_ms, 3),
        baseline_ms=None if baseline is None else round(baseline, 3),
        fault=mode,
        delay_ms=delay_ms,
    )


@router.get("/api/v1/status", response_model=StatusOut)
async def status(request: Request, view: Status, control: Control) -> StatusOut:
    monitor = view.monitor
    regions = []
    for region in view.topology.regions:
        clusters = []
        for cluster in region.clusters:
            light = monitor.clusters[cluster.name]
            clusters.append(
                ClusterStatusOut(
                    name=cluster.name,
                    light=light.light,
                    label=rss.LABELS[light.light],
                    since=rfc3339(light.since),
                    proxies=[
                        proxy_status(view, monitor.health[p.hostname]) for p in cluster.proxies
                    ],
                    rss_url=public_url(
                        request, control.api_base_url, "status_feed", {"cluster": cluster.name}
                    ),
                )
            )
        regions.append(RegionStatus(name=region.name, clusters=clusters))
    incidents = [incident_out(r) for r in monitor.incidents(FEED_SIZE)]
    return StatusOut(
        regions=regions,
        incidents=incidents,
        rss_url=public_url(request, control.api_base_url, "status_feed"),
        json_feed_url=public_url(request, control.api_base_url, "status_json_feed"),
    )


def _last_change(rows: list[IncidentRow]) -> float | None:
    return rows[0].started_at if rows else None


@router.get(
    "/status.rss",
    name="status_feed",
    response_class=Response,
    responses={
        200: {"content": {"application/rss+xml": {}}},
        304: {"description": "Not modified (If-None-Match / If-Modified-Since)"},
        **FEED_ERRORS,
    },
)
async def status_feed(request: Request, view: Status, control: Control, scope: Scope) -> Response:
    """RSS 2.0 of the clusters' changes of light, newest first; ``?cluster=`` or
    ``?region=`` for one cluster's or one region's."""
    base = control.api_base_url
    rows = view.monitor.incidents(FEED_SIZE, scope.clusters)
    body = rss.feed(
        rows,
        public_url(request, base, "status"),
        public_url(request, base, "status_feed", scope.query),
        scope.title,
    )
    return conditional_response(request, body, "application/rss+xml", _last_change(rows))


@router.get(
    "/status.json",
    name="status_json_feed",
    response_class=Response,
    responses={
        200: {"content": {jsonfeed.MEDIA_TYPE: {}}},
        304: {"description": "Not modified (If-None-Match / If-Modified-Since)"},
        **FEED_ERRORS,
    },
)
async def status_json_feed(
    request: Request, view: Status, control: Control, scope: Scope
) -> Response:
    """The RSS feed's twin as a JSON Feed 1.1, with the same items, ids and filters."""
    base = control.api_base_url
    rows = view.monitor.incidents(FEED_SIZE, scope.clusters)
    body = jsonfeed.feed(
        rows,
        public_url(request, base, "status"),
        public_url(request, base, "status_json_feed", scope.query),
        scope.title,
    )
    return conditional_response(request, body, jsonfeed.MEDIA_TYPE, _last_change(rows))


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def prometheus(view: Status) -> Response:
    """The exposition's blocks, written one by one with the total as ``Content-Length``:
    joining them (8 MB at 10 000 caches) would be one GIL-holding copy (``metrics.py``)."""
    parts = view.metrics()

    async def blocks() -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    return StreamingResponse(
        blocks(),
        media_type="text/plain; version=0.0.4; charset=utf-8",
        headers={"Content-Length": str(sum(map(len, parts)))},
    )


@admin_router.post(
    "/proxies/{hostname}/fault",
    response_model=ProxyStatus,
    responses=errors(404, 409, *BODY_ERRORS),
)
async def inject_fault(
    hostname: str, body: FaultIn, faults: Faults, view: Status, control: Control
) -> ProxyStatus:
    proxy = await faults.set_fault(hostname, body.mode, body.delay_ms)
    what = {"slow": f"slow, +{body.delay_ms} ms", "down": "down", "none": "cleared"}[body.mode]
    with control.transaction():
        control.record_audit(None, "fault injected", f"{proxy.hostname}: {what}")
    return proxy_status(view, view.monitor.health[proxy.hostname])
