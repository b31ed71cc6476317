"""Cache-owner routes, reached through the cache's secret dashboard URL."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from backend.activity import NEVER_USED, ActivitySampler
from backend.api.deps import (
    Activity,
    AnalyticsDep,
    Control,
    Egress,
    NoBodyIn,
    PeerStatsDep,
    SsoCache,
)
from backend.api.errors import BODY_ERRORS, errors
from backend.api.schemas import (
    AppOut,
    CacheInfo,
    CapabilitiesPatch,
    CredentialActivityOut,
    CredentialOut,
    DeleteOut,
    FlushOut,
    LastAuthOut,
    LogDrainIn,
    LogLineOut,
    LogsOut,
    MigrateOut,
    ReleaseOut,
    RotateOut,
    StatsOut,
)
from backend.control import apps
from backend.control.errors import Invalid
from backend.control.models import Cache, Credential, as_plan
from backend.control.plane import ControlPlane
from backend.egress import EgressRefused

# Ids are SQL integers (64-bit signed): a larger number is out of range, not a server error.
SQL_INT_MAX = 2**63 - 1
# The last second of the year 9999, the latest time datetime can show. A bound for a time
# given as a float must be a float exactly: with 2**63 - 1 (which rounds up to 2**63 as a
# float) ``since=9223372036854775808`` passed although the document says it is too large.
UNIX_TIME_MAX = 253_402_300_799

# The query parameters of ``stats``, shared with /api/v2 (``backend.api.v2``).
Window = Annotated[
    float | None,
    Query(
        gt=0,
        le=30 * 86400,
        allow_inf_nan=False,
        description="seconds of history; omit for the full-resolution window",
    ),
]
Since = Annotated[
    float | None,
    Query(
        ge=0,
        le=UNIX_TIME_MAX,
        allow_inf_nan=False,
        description="only samples newer than this unix time: a client that keeps the "
        "series fetches just what is new",
    ),
]

router = APIRouter(
    prefix="/dashboard/{sso_secret}/api",
    tags=["dashboard"],
    responses=errors(404, 422),
)


def credential_out(
    credential: Credential, activity: ActivitySampler | None = None, with_activity: bool = True
) -> CredentialOut:
    """The credential as the API shows it; with its usage unless ``with_activity`` is off
    (the operator's listing of every cache: a tenant's client addresses are not theirs)."""
    return CredentialOut(
        username=credential.username,
        password=credential.password.decode(),
        primary=credential.primary,
        write=credential.write,
        flush=credential.flush,
        api=credential.api,
        activity=activity_out(credential, activity) if with_activity else None,
    )


def activity_out(credential: Credential, activity: ActivitySampler | None) -> CredentialActivityOut:
    report = activity.report(credential.username) if activity is not None else NEVER_USED
    last = report.last_auth
    return CredentialActivityOut(
        last_auth=None
        if last is None
        else LastAuthOut(at=last.at, protocol=last.protocol, proxy=last.proxy, peer=last.peer),
        connections=report.connections,
        peers=report.peers,
        commands_last_minute=report.commands_last_minute,
        commands_last_hour=report.commands_last_hour,
        refused_write=report.refused_write,
        refused_flush=report.refused_flush,
    )


def cache_info(control: ControlPlane, cache: Cache) -> CacheInfo:
    refusal = control.move_refusal(cache)
    return CacheInfo(
        id=cache.id,
        name=cache.name,
        plan=as_plan(cache.plan),
        memory_limit=cache.limit_bytes,
        region=cache.region,
        cluster=cache.cluster,
        servers=control.servers(cache),
        tls_servers=control.tls_servers(cache),
        dashboard_url=control.dashboard_url(cache),
        app=cache.app.name if cache.app else "",
        can_migrate=refusal is None,
        migrate_refusal=refusal,
        alerts_firing=control.alerts_firing(cache.id),
    )


def app_out(control: ControlPlane, cache: Cache) -> AppOut:
    app = cache.app
    assert app is not None
    releases = [
        ReleaseOut(number=r.number, description=r.description, t=r.t)
        for r in control.releases(cache)
    ]
    return AppOut(
        name=app.name,
        config_vars=app.config_vars,
        release=app.release,
        log_drain=app.log_drain,
        releases=releases,
    )


@router.get("/cache", response_model=CacheInfo)
async def get_cache(cache: SsoCache, control: Control) -> CacheInfo:
    return cache_info(control, cache)


@router.get("/stats", response_model=StatsOut, responses=errors(503))
async def stats(
    request: Request,
    cache: SsoCache,
    analytics: AnalyticsDep,
    peers: PeerStatsDep,
    window: Window = None,
    since: Since = None,
) -> StatsOut:
    # Another process serves the cache (several processes on one database): its series
    # are there, and so is the answer (``backend.peerstats``).
    if peers is not None and (answer := await peers.ask(request, cache)) is not None:
        return StatsOut.model_validate(answer)
    series = analytics.series(cache.id, window)
    if since is not None:
        series["samples"] = [s for s in series["samples"] if s["t"] > since]
    return StatsOut.model_validate(series)


@router.get("/credentials", response_model=list[CredentialOut])
async def list_credentials(cache: SsoCache, activity: Activity) -> list[CredentialOut]:
    """Each credential with its activity: last authentication, live connections and
    their addresses, commands in the last minute and hour, refused commands."""
    return [credential_out(c, activity) for c in cache.credentials]


@router.post(
    "/credentials",
    response_model=CredentialOut,
    status_code=status.HTTP_201_CREATED,
    responses=errors(*BODY_ERRORS),
)
async def add_credential(
    cache: SsoCache, control: Control, activity: Activity, body: NoBodyIn = None
) -> CredentialOut:
    return credential_out(control.add_credential(cache), activity)


@router.patch(
    "/credentials/{username}", response_model=CredentialOut, responses=errors(409, *BODY_ERRORS)
)
async def set_capabilities(
    username: str, body: CapabilitiesPatch, cache: SsoCache, control: Control, activity: Activity
) -> CredentialOut:
    changed = control.set_capabilities(cache, username, body.write, body.flush, body.api)
    return credential_out(changed, activity)


@router.post(
    "/credentials/{username}/promote",
    response_model=CredentialOut,
    responses=errors(409, *BODY_ERRORS),
)
async def promote_credential(
    username: str, cache: SsoCache, control: Control, activity: Activity, body: NoBodyIn = None
) -> CredentialOut:
    return credential_out(control.promote(cache, username), activity)


@router.delete("/credentials/{username}", response_model=DeleteOut, responses=errors(409))
async def delete_credential(username: str, cache: SsoCache, control: Control) -> DeleteOut:
    closed = control.delete_credential(cache, username)
    return DeleteOut(username=username, closed_connections=closed)


@router.post("/flush", response_model=FlushOut, responses=errors(*BODY_ERRORS))
async def flush(cache: SsoCache, control: Control, body: NoBodyIn = None) -> FlushOut:
    proxy = control.flush(cache, origin="web interface")
    return FlushOut(cache_id=cache.id, proxy=proxy, origin="web interface")


@router.post("/migrate", response_model=MigrateOut, responses=errors(403, 409, *BODY_ERRORS))
async def migrate(cache: SsoCache, control: Control, body: NoBodyIn = None) -> MigrateOut:
    previous = cache.cluster
    cluster = control.migrate(cache)
    return MigrateOut(cluster=cluster, previous_cluster=previous, servers=control.servers(cache))


@router.post("/sso/rotate", response_model=RotateOut, responses=errors(*BODY_ERRORS))
async def rotate_sso(cache: SsoCache, control: Control, body: NoBodyIn = None) -> RotateOut:
    return RotateOut(dashboard_url=control.rotate_sso(cache))


@router.get("/logs", response_model=LogsOut)
async def logs(
    cache: SsoCache,
    control: Control,
    after: Annotated[
        int | None,
        Query(ge=0, le=SQL_INT_MAX, description="lines after this id; omit for the newest"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> LogsOut:
    rows = control.logs(cache, after, limit)
    lines = [
        LogLineOut(
            id=r.id, t=r.t, source=r.source, message=r.message, origin=r.origin, proxy=r.proxy
        )
        for r in rows
    ]
    next_after = rows[-1].id if rows else (after or 0)
    return LogsOut(lines=lines, next_after=next_after)


@router.get("/app", response_model=AppOut)
async def get_app(cache: SsoCache, control: Control) -> AppOut:
    return app_out(control, cache)


@router.put("/app/log-drain", response_model=AppOut, responses=errors(*BODY_ERRORS))
async def put_log_drain(
    body: LogDrainIn, cache: SsoCache, control: Control, egress: Egress
) -> AppOut:
    if body.url is not None:  # before anything is stored: a clear error for the owner
        apps.check_drain_url(body.url)
        try:
            await egress.vet_url(body.url)
        except EgressRefused as exc:
            raise Invalid(f"this log drain cannot be used: {exc}") from None
    control.set_log_drain(cache, body.url)
    return app_out(control, cache)
