"""Public status (JSON, RSS, Prometheus) and the operator's fault injection."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload

from fastapi import APIRouter, Depends, Request, Response

from backend import rss
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


def public_url(request: Request, base_url: str, route: str) -> str:
    """A route's URL as clients are told it (--public-url / --advertise-host, the control
    plane's ``api_base_url``), not as this request reached it: a feed reader keeps the
    link, so it must be the public one."""
    return base_url + request.app.url_path_for(route)


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
        address=health.proxy.address,
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
                )
            )
        regions.append(RegionStatus(name=region.name, clusters=clusters))
    incidents = [incident_out(r) for r in monitor.incidents(FEED_SIZE)]
    return StatusOut(
        regions=regions,
        incidents=incidents,
        rss_url=public_url(request, control.api_base_url, "status_feed"),
    )


@router.get(
    "/status.rss",
    name="status_feed",
    response_class=Response,
    responses={200: {"content": {"application/rss+xml": {}}}},
)
async def status_feed(request: Request, view: Status, control: Control) -> Response:
    base = control.api_base_url
    body = rss.feed(
        view.monitor.incidents(FEED_SIZE),
        public_url(request, base, "status"),
        public_url(request, base, "status_feed"),
    )
    return Response(body, media_type="application/rss+xml")


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def prometheus(view: Status) -> Response:
    body = view.metrics()
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


@admin_router.post(
    "/proxies/{hostname}/fault",
    response_model=ProxyStatus,
    responses=errors(404, 409, *BODY_ERRORS),
)
async def inject_fault(hostname: str, body: FaultIn, faults: Faults, view: Status) -> ProxyStatus:
    proxy = await faults.set_fault(hostname, body.mode, body.delay_ms)
    return proxy_status(view, view.monitor.health[proxy.hostname])
