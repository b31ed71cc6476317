"""Public status (JSON, RSS, Prometheus) and the operator's fault injection."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Request, Response

from backend import metrics, rss
from backend.api.deps import require_admin
from backend.api.errors import BODY_ERRORS, errors
from backend.api.schemas import (
    ClusterStatusOut,
    FaultIn,
    IncidentOut,
    ProxyStatus,
    RegionStatus,
    StatusOut,
)  # fmt: skip
from backend.control.db import IncidentRow

router = APIRouter(tags=["status"])
admin_router = APIRouter(
    prefix="/api/v1/admin",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
    responses=errors(401),
)
FEED_SIZE = 50


def rfc3339(unix: float | None) -> str | None:
    if unix is None:
        return None
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def public_url(request: Request, route: str) -> str:
    """A route's URL as clients are told it (--public-url / --advertise-host), not as this
    request reached it: a feed reader keeps the link, so it must be the public one."""
    return request.app.state.control.api_base_url + request.app.url_path_for(route)


def incident_out(row: IncidentRow) -> IncidentOut:
    return IncidentOut(id=row.id, cluster=row.cluster, light=row.light, previous=row.previous,
                       started_at=rfc3339(row.started_at), ended_at=rfc3339(row.ended_at),
                       cause=row.cause, proxies=row.proxies.split())  # fmt: skip


def proxy_status(service, health) -> ProxyStatus:
    fault = service.dataplane.proxy_state[health.proxy]
    mode = "down" if fault.down else ("slow" if fault.delay_s else "none")
    baseline = health.baseline_ms()
    return ProxyStatus(
        hostname=health.proxy.hostname, address=health.proxy.address, state=health.state,
        latency_ms=None if health.latency_ms is None else round(health.latency_ms, 3),
        baseline_ms=None if baseline is None else round(baseline, 3), fault=mode,
        delay_ms=round(fault.delay_s * 1000),
    )  # fmt: skip


@router.get("/api/v1/status", response_model=StatusOut)
async def status(request: Request) -> StatusOut:
    service = request.app.state.service
    monitor = service.monitor
    regions = []
    for region in service.dataplane.topology.regions:
        clusters = []
        for cluster in region.clusters:
            light = monitor.clusters[cluster.name]
            clusters.append(ClusterStatusOut(
                name=cluster.name, light=light.light, label=rss.LABELS[light.light],
                since=rfc3339(light.since),
                proxies=[proxy_status(service, monitor.health[p.hostname])
                         for p in cluster.proxies],
            ))  # fmt: skip
        regions.append(RegionStatus(name=region.name, clusters=clusters))
    incidents = [incident_out(r) for r in monitor.incidents(FEED_SIZE)]
    return StatusOut(regions=regions, incidents=incidents,
                     rss_url=public_url(request, "status_feed"))  # fmt: skip


@router.get("/status.rss", name="status_feed", response_class=Response,
            responses={200: {"content": {"application/rss+xml": {}}}})  # fmt: skip
async def status_feed(request: Request) -> Response:
    monitor = request.app.state.service.monitor
    body = rss.feed(monitor.incidents(FEED_SIZE), public_url(request, "status"),
                    public_url(request, "status_feed"))  # fmt: skip
    return Response(body, media_type="application/rss+xml")


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}}})  # fmt: skip
async def prometheus(request: Request) -> Response:
    body = metrics.exposition(request.app.state.service)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


@admin_router.post("/proxies/{hostname}/fault", response_model=ProxyStatus,
                   responses=errors(404, *BODY_ERRORS))  # fmt: skip
async def inject_fault(hostname: str, body: FaultIn, request: Request) -> ProxyStatus:
    service = request.app.state.service
    proxy = await service.set_fault(hostname, body.mode, body.delay_ms)
    return proxy_status(service, service.monitor.health[proxy.hostname])
